"""Pooling allocator configuration and the epoch ticker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import wasmtime
from sandbox_helpers import HOST_NAMES, load_skill, no_host, small_settings

from vak.errors import ConfigError
from vak.sandbox.engine import Engine
from vak.sandbox.pooling import apply_pooling
from vak.sandbox.settings import EngineSettings
from vak.sandbox.ticker import EpochTicker


@pytest.mark.parametrize("field", ["pool_total_instances", "pool_total_memories",
                                   "pool_total_tables", "pool_max_memory_bytes",
                                   "pool_table_elements"])
@pytest.mark.parametrize("value", [0, -1, True, "10"], ids=["zero", "neg", "bool", "str"])
def test_bad_pool_sizes_rejected(field: str, value: object) -> None:
    with pytest.raises(ConfigError):
        apply_pooling(wasmtime.Config(), EngineSettings(**{field: value}))  # type: ignore


@pytest.mark.parametrize("changes", [{"epoch_tick_ms": 0}, {"wasm_stack_bytes": 1024}],
                         ids=["tick", "stack"])
def test_bad_engine_settings_rejected(tmp_path: Path, changes: dict) -> None:
    with pytest.raises(ConfigError):
        Engine(small_settings(tmp_path, **changes), HOST_NAMES)


def test_pool_exhaustion_is_an_error_not_a_crash(tmp_path: Path, built_skills: Path) -> None:
    cfg = small_settings(tmp_path, pool_total_instances=1, pool_total_memories=1,
                       pool_total_tables=1)
    with Engine(cfg, HOST_NAMES) as eng:
        digest, limits = load_skill(eng, built_skills / "calculator")
        for _ in range(3):  # slots are returned after each call
            eng.call(digest, "execute", b'{"operation":"add","a":1,"b":1}', limits, no_host)


def test_ticker_advances_only_while_active() -> None:
    engine = wasmtime.Engine(_epoch_config())
    store = wasmtime.Store(engine)
    ticker = EpochTicker(engine.increment_epoch, 1)
    ticker.start()
    try:
        store.set_epoch_deadline(5)
        module = wasmtime.Module(engine, '(module (func (export "f") (loop (br 0))))')
        inst = wasmtime.Instance(store, module, [])
        ticker.enter()
        with pytest.raises(wasmtime.Trap):
            inst.exports(store)["f"](store)
        ticker.leave()
        time.sleep(0.01)
    finally:
        ticker.stop()
        ticker.stop()
    assert not ticker.running


def _epoch_config() -> wasmtime.Config:
    cfg = wasmtime.Config()
    cfg.epoch_interruption = True
    return cfg


def test_ticker_wakes_after_going_idle() -> None:
    # after LINGER_S without calls the ticker sleeps; the next enter() must wake
    # it, or a runaway guest would never reach its deadline
    from vak.sandbox.ticker import LINGER_S

    engine = wasmtime.Engine(_epoch_config())
    module = wasmtime.Module(engine, '(module (func (export "f") (loop (br 0))))')
    ticker = EpochTicker(engine.increment_epoch, 1)
    ticker.start()
    try:
        for _ in range(2):
            time.sleep(LINGER_S * 3)
            assert ticker._idle
            store = wasmtime.Store(engine)
            store.set_epoch_deadline(5)
            inst = wasmtime.Instance(store, module, [])
            ticker.enter()
            try:
                with pytest.raises(wasmtime.Trap):
                    inst.exports(store)["f"](store)
            finally:
                ticker.leave()
    finally:
        ticker.stop()
    assert not ticker.running
