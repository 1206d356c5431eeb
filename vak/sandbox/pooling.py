"""The pooling instance allocator, reached through wasmtime-py's raw FFI.

wasmtime-py 50 has no ``Config`` method for the pooling allocator, but the C
API does (``wasmtime_pooling_allocation_strategy_set`` and the
``wasmtime_pooling_allocation_config_*`` setters). This module is the only
place that touches them, so an upgrade that adds a Python API changes one file.

Pooling pre-reserves slots for instances, memories and tables, which makes a
fresh instance per call cheap (copy-on-write memory images, no mmap per call)
and bounds the total a kernel can ever allocate::

    >>> import wasmtime
    >>> from vak.config import KernelConfig
    >>> cfg = wasmtime.Config()
    >>> apply_pooling(cfg, KernelConfig(pool_total_instances=4, pool_total_memories=4,
    ...                                  pool_total_tables=4))
    >>> wasmtime.Engine(cfg) is not None
    True
"""

from __future__ import annotations

import wasmtime
from wasmtime import _ffi as ffi

from vak.config import KernelConfig
from vak.errors import ConfigError

__all__ = ["apply_pooling"]


def apply_pooling(config: wasmtime.Config, kernel: KernelConfig) -> None:
    """Switch ``config`` to the pooling allocator sized from ``kernel``.

    One skill instance owns at most one memory and one table (the ABI needs no
    more), so per-module maxima are 1; totals and sizes come from the config.

    Raises:
        ConfigError: a pool size is not a positive integer.
    """
    sizes = {
        "pool_total_instances": kernel.pool_total_instances,
        "pool_total_memories": kernel.pool_total_memories,
        "pool_total_tables": kernel.pool_total_tables,
        "pool_max_memory_bytes": kernel.pool_max_memory_bytes,
        "pool_table_elements": kernel.pool_table_elements,
    }
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}", field=name)
    pool = ffi.wasmtime_pooling_allocation_config_new()
    try:
        ffi.wasmtime_pooling_allocation_config_total_core_instances_set(
            pool, kernel.pool_total_instances)
        ffi.wasmtime_pooling_allocation_config_total_memories_set(
            pool, kernel.pool_total_memories)
        ffi.wasmtime_pooling_allocation_config_total_tables_set(pool, kernel.pool_total_tables)
        ffi.wasmtime_pooling_allocation_config_max_memory_size_set(
            pool, kernel.pool_max_memory_bytes)
        ffi.wasmtime_pooling_allocation_config_table_elements_set(
            pool, kernel.pool_table_elements)
        ffi.wasmtime_pooling_allocation_config_max_memories_per_module_set(pool, 1)
        ffi.wasmtime_pooling_allocation_config_max_tables_per_module_set(pool, 1)
        # the strategy setter copies the pool config, so it is freed right after
        ffi.wasmtime_pooling_allocation_strategy_set(config.ptr(), pool)
    finally:
        ffi.wasmtime_pooling_allocation_config_delete(pool)
