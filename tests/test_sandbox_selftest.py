"""The start self-test: fast paths are used only when they agree with the public API."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import orjson
import pytest
import wasmtime
from sandbox_helpers import HOST_NAMES, Echo, load_skill, small_settings

from vak.sandbox import backend, selftest
from vak.sandbox.engine import Engine

ADD = b'{"operation":"add","a":2,"b":3}'


def test_fast_paths_agree_on_this_wasmtime(tmp_path: Path) -> None:
    with Engine(small_settings(tmp_path), HOST_NAMES) as eng:
        report = eng.fast_paths
    assert report["backend"] == "fastcall" and report["self_test"] == "passed"
    assert report["checks"] and all(report["checks"].values())
    assert report["mismatches"] == []


def _wrong_call_tool(self: Any, func: Any, ptr: int, length: int, buf: Any) -> int:
    buf[0].i32 = ptr
    buf[1].i32 = length
    from vak.sandbox import fastcall

    fastcall.call_raw(self.context, func, buf, 2)
    return int(buf[0].i64) - 1  # one byte short: a changed calling convention


def _raising_alloc(self: Any, alloc: Any, size: int) -> int:
    raise OSError("raw entry point gone")


@pytest.mark.parametrize(("attr", "fake", "needle"), [
    ("call_tool", _wrong_call_tool, "output"),
    ("call_alloc", _raising_alloc, "fast path failed"),
], ids=["wrong-answer", "fast-path-raises"])
def test_mismatch_falls_back_to_the_public_api_and_says_so(
    tmp_path: Path, built_skills: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, attr: str, fake: Any, needle: str,
) -> None:
    monkeypatch.setattr(backend._RawAccess, attr, fake)
    with caplog.at_level(logging.WARNING, logger="vak.sandbox"), \
            Engine(small_settings(tmp_path), HOST_NAMES) as eng:
        report = eng.fast_paths
        assert report["backend"] == "public" and report["self_test"] == "failed"
        assert any(needle in m for m in report["mismatches"])
        assert "running on the public API" in caplog.text
        # the engine works, on the public path (the broken fast path is never used)
        digest, limits = load_skill(eng, built_skills / "calculator")
        out = eng.call(digest, "execute", ADD, limits, Echo())
        assert orjson.loads(out.output) == {"result": 5}
        kv, kv_limits = load_skill(eng, built_skills / "kvstore")
        handler = Echo()
        eng.call(kv, "get", b'{"key":"k"}', kv_limits, handler)
        assert [f for f, _ in handler.calls] == ["kv_get"]


def test_forced_backend_skips_the_test(tmp_path: Path) -> None:
    with Engine(small_settings(tmp_path), HOST_NAMES, backend="public") as eng:
        assert eng.fast_paths["self_test"] == "skipped"
        assert eng.fast_paths["backend"] == "public"


@pytest.mark.parametrize("fuel", [True, False])
def test_report_compares_every_observable(fuel: bool) -> None:
    cfg = wasmtime.Config()
    cfg.consume_fuel = fuel
    cfg.epoch_interruption = True
    report = selftest.run(wasmtime.Engine(cfg), fuel)
    assert report.agreed
    assert set(report.checks) == {"input_ptr", "output", "memory_bytes", "fuel_left", "trap"}
