"""Settings of the sandbox room: the wasmtime engine and the OS-sandboxed worker.

These frozen values are all the sandbox knows of configuration: the composition
root (``vak.kernel.Kernel``) builds them from ``KernelConfig`` with every path
already resolved, so nothing in ``vak.sandbox`` imports the facade's config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["EngineSettings", "WorkerSettings"]


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """The one wasmtime engine: pooling allocator sizes, epochs, fuel, module cache."""

    #: most skill instances alive at once (pooling allocator slots, reserved up front)
    pool_total_instances: int = 1000
    #: linear memories reserved for those instances (one per instance)
    pool_total_memories: int = 1000
    #: address space reserved per memory; no skill may grow beyond it
    pool_max_memory_bytes: int = 64 << 20
    #: tables reserved for the instances (one per instance)
    pool_total_tables: int = 1000
    #: most elements of one table
    pool_table_elements: int = 10_000
    #: the epoch ticker's period: the granularity of execution deadlines
    epoch_tick_ms: int = 1
    #: most native stack one call may use (deep guest recursion traps beyond it)
    wasm_stack_bytes: int = 512 << 10
    #: fuel metering on; operators may turn it off for trusted skills only
    fuel: bool = True
    #: where compiled modules are kept; ``None`` keeps none on disk
    module_cache_dir: Path | None = None
    #: deepest nesting of arrays/objects a skill's output JSON may have
    output_max_depth: int = 64
    #: longest string or object key (characters) in a skill's output JSON
    output_max_string_chars: int = 1 << 20
    #: most items of one array or members of one object in a skill's output JSON
    output_max_items: int = 100_000


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """The pre-started, Landlock + seccomp restricted worker processes."""

    #: route every skill through a worker, whatever its tier
    force: bool = False
    #: refuse to start a worker whose OS barriers cannot all be applied
    require_os_sandbox: bool = False
    #: run untrusted skills even on a host without Landlock or seccomp (degraded)
    allow_unsandboxed: bool = False
    pool_size: int = 2
    #: calls a worker serves before it is replaced by a fresh one
    recycle_after: int = 1000
    #: RLIMIT_CPU of a worker over its whole life (SIGXCPU ends it; the pool replaces it)
    cpu_seconds: int = 3600
    #: how long a worker may take to start, restrict itself and compile its module
    start_timeout_ms: int = 30_000
    #: grace beyond max_execution_time_ms before a silent worker counts as hung
    hang_margin_ms: int = 1000
