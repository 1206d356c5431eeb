"""The pooling instance allocator, sized from :class:`EngineSettings`.

Pooling pre-reserves slots for instances, memories and tables, which makes a
fresh instance per call cheap (copy-on-write memory images, no mmap per call)
and bounds the total a kernel can ever allocate. wasmtime-py 50 has no public
``Config`` method for it; the raw setters live in the adapter
(:func:`vak.sandbox.fastcall.set_pooling`), this module validates the sizes::

    >>> import wasmtime
    >>> from vak.sandbox.settings import EngineSettings
    >>> cfg = wasmtime.Config()
    >>> apply_pooling(cfg, EngineSettings(pool_total_instances=4, pool_total_memories=4,
    ...                                   pool_total_tables=4))
    >>> wasmtime.Engine(cfg) is not None
    True
"""

from __future__ import annotations

import wasmtime

from vak.errors import ConfigError
from vak.sandbox import fastcall
from vak.sandbox.settings import EngineSettings

__all__ = ["apply_pooling"]


def apply_pooling(config: wasmtime.Config, settings: EngineSettings) -> None:
    """Switch ``config`` to the pooling allocator sized from ``settings``.

    Raises:
        ConfigError: a pool size is not a positive integer.
    """
    sizes = {
        "pool_total_instances": settings.pool_total_instances,
        "pool_total_memories": settings.pool_total_memories,
        "pool_total_tables": settings.pool_total_tables,
        "pool_max_memory_bytes": settings.pool_max_memory_bytes,
        "pool_table_elements": settings.pool_table_elements,
    }
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}", field=name)
    fastcall.set_pooling(config, fastcall.PoolSizes(
        total_instances=settings.pool_total_instances,
        total_memories=settings.pool_total_memories,
        total_tables=settings.pool_total_tables,
        max_memory_bytes=settings.pool_max_memory_bytes,
        table_elements=settings.pool_table_elements,
    ))
