"""Subprocess helper: RSS growth of N instantiated-but-idle calculator instances.

``python -m benchmarks._idle_instances pooled|default N`` prints the resident
set growth in bytes. Each measurement runs in a fresh process so that the heap
one allocator freed cannot flatter the other. The engine has no idle-instance
API, so "idle instances in the pool" are measured as N Stores, each holding one
instance made through ``InstancePre`` and kept alive; ``pooled`` uses VAK's
engine (pooling allocator), ``default`` the same settings with wasmtime's
default allocator.
"""

from __future__ import annotations

import gc
import sys
import tempfile
from pathlib import Path

import wasmtime

from benchmarks._fixtures import SKILLS, host_names, rss_bytes


def measure(kind: str, n: int) -> int:
    """RSS delta in bytes after instantiating ``n`` instances of the calculator."""
    wasm = (SKILLS / "calculator" / "calculator.wasm").read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "pooled":
            from vak.sandbox.engine import Engine
            from vak.sandbox.settings import EngineSettings

            vak_engine = Engine(EngineSettings(module_cache_dir=Path(tmp) / "cache",
                                               pool_total_instances=n + 8,
                                               pool_total_memories=n + 8,
                                               pool_total_tables=n + 8), host_names())
            engine = vak_engine.wasmtime_engine
        else:
            cfg = wasmtime.Config()
            cfg.epoch_interruption = True
            cfg.consume_fuel = True
            engine = wasmtime.Engine(cfg)
        pre = wasmtime.Linker(engine).instantiate_pre(wasmtime.Module(engine, wasm))
        for _ in range(10):  # warm: first-use allocations are not per-instance cost
            pre.instantiate(wasmtime.Store(engine))
        gc.collect()
        before = rss_bytes()
        kept = []
        for _ in range(n):
            store = wasmtime.Store(engine)
            kept.append((store, pre.instantiate(store)))
        gc.collect()
        return rss_bytes() - before


if __name__ == "__main__":
    print(measure(sys.argv[1], int(sys.argv[2])))
