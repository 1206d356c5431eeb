"""Engine: real skills built from source, called through the raw fast path."""

from __future__ import annotations

import gc
import threading
from pathlib import Path

import orjson
import pytest
from sandbox_helpers import HOST_NAMES, Echo, load_skill, no_host, small_settings

from vak.errors import (
    ABIError,
    DigestMismatchError,
    GuestTrap,
    HostCallLimitError,
    PolicyDeniedError,
    SkillLoadError,
    SkillTimeout,
    UnknownToolError,
)
from vak.identity.manifest import Limits
from vak.sandbox.engine import Engine, module_digest
from vak.sandbox.types import CallOutcome, Runner


@pytest.fixture
def engine(tmp_path: Path):
    with Engine(small_settings(tmp_path), HOST_NAMES) as eng:
        yield eng


def _json(out: CallOutcome) -> object:
    return orjson.loads(out.output)


CALC_CASES = [
    ({"operation": "add", "a": 1, "b": 2}, {"result": 3}),
    ({"operation": "subtract", "a": 10, "b": 25}, {"result": -15}),
    ({"operation": "multiply", "a": 6, "b": 7}, {"result": 42}),
    ({"operation": "divide", "a": 1, "b": 4}, {"result": 0.25}),
    ({"operation": "divide", "a": 1.5, "b": -0.5}, {"result": -3}),
    ({"operation": "add", "a": 0.1, "b": 0.2}, {"result": 0.3}),
    ({"operation": "multiply", "a": 2.5e3, "b": 4}, {"result": 10000}),
    ({"operation": "multiply", "a": 1e20, "b": 3}, {"result": 3e20}),
    ({"operation": "divide", "a": 5, "b": 0}, {"error": "division by zero"}),
    ({"operation": "modulo", "a": 5, "b": 2}, {"error": "unknown operation"}),
    ({"operation": "add", "a": "x", "b": 2}, {"error": "a must be a number"}),
    ({"a": 1, "b": 2}, {"error": "operation must be a string"}),
]


@pytest.mark.parametrize(("inp", "expected"), CALC_CASES,
                         ids=[str(i) for i in range(len(CALC_CASES))])
def test_calculator(engine: Engine, built_skills: Path, inp: dict, expected: dict) -> None:
    digest, limits = load_skill(engine, built_skills / "calculator")
    out = engine.call(digest, "execute", orjson.dumps(inp), limits, no_host)
    got = _json(out)
    if "result" in expected:
        assert got["result"] == pytest.approx(expected["result"], rel=1e-9)
    else:
        assert got == expected
    assert out.host_calls == 0
    assert out.fuel_used > 0
    assert out.duration_ns > 0


def test_engine_is_a_runner(engine: Engine) -> None:
    runner: Runner = engine
    assert callable(runner.call)


def test_wordstats(engine: Engine, built_skills: Path) -> None:
    digest, limits = load_skill(engine, built_skills / "wordstats")
    text = "the quick  brown\nfox jumps — über\nextraordinarily"
    out = _json(engine.call(digest, "execute", orjson.dumps({"text": text}), limits, no_host))
    assert out == {"words": 8, "characters": len(text), "lines": 3,
                   "longest_word": "extraordinarily"}


@pytest.mark.parametrize(("skill", "export", "fn"), [
    ("kvstore", "get", "kv_get"), ("kvstore", "put", "kv_put"),
    ("kvstore", "delete", "kv_delete"), ("kvstore", "list", "kv_list"),
    ("notes", "read", "fs_read"), ("notes", "list", "fs_list"), ("notes", "write", "fs_write"),
    ("fetch", "fetch", "http_request"),
], ids=lambda v: str(v))
def test_host_function_skills_pass_through(engine: Engine, built_skills: Path,
                                           skill: str, export: str, fn: str) -> None:
    digest, limits = load_skill(engine, built_skills / skill)
    echo = Echo()
    args = {"key": "k", "path": "/workspace/a.txt", "url": "http://127.0.0.1/", "x": "é\n"}
    out = engine.call(digest, export, orjson.dumps(args), limits, echo)
    assert _json(out) == {"fn": fn, "args": args}
    assert echo.calls == [(fn, orjson.dumps(args))]
    assert out.host_calls == 1


def test_large_host_reply_is_written_through_the_allocator(engine: Engine,
                                                           built_skills: Path) -> None:
    digest, limits = load_skill(engine, built_skills / "kvstore")
    blob = "v" * 200_000

    def host(fn: str, args: bytes) -> bytes:
        return orjson.dumps({"value": blob})

    out = engine.call(digest, "get", b'{"key":"k"}', limits, host)
    assert _json(out) == {"value": blob}


def test_host_error_is_reraised_unchanged(engine: Engine, built_skills: Path) -> None:
    digest, limits = load_skill(engine, built_skills / "kvstore")
    denial = PolicyDeniedError("denied by policy", policy_ids=["deny-kv"], audit_seq=7)

    def host(fn: str, args: bytes) -> bytes:
        raise denial

    with pytest.raises(PolicyDeniedError) as info:
        engine.call(digest, "put", b'{"key":"k","value":"v"}', limits, host)
    assert info.value is denial
    # and the engine keeps serving
    assert _json(engine.call(digest, "get", b'{"key":"k"}', limits, Echo()))["fn"] == "kv_get"


def test_host_handler_bug_is_not_hidden(engine: Engine, built_skills: Path) -> None:
    digest, limits = load_skill(engine, built_skills / "kvstore")

    def host(fn: str, args: bytes) -> bytes:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        engine.call(digest, "get", b'{"key":"k"}', limits, host)


def test_host_handler_must_return_bytes(engine: Engine, built_skills: Path) -> None:
    digest, limits = load_skill(engine, built_skills / "kvstore")
    with pytest.raises(TypeError):
        engine.call(digest, "get", b'{"key":"k"}', limits, lambda f, a: "str")  # type: ignore


def test_max_host_calls(engine: Engine, built_skills: Path) -> None:
    digest, _ = load_skill(engine, built_skills / "hostile" / "hostspin")
    # the handler counts and refuses (RULES contract 3); the engine raises its error
    echo = Echo(max_host_calls=5)
    with pytest.raises(HostCallLimitError):
        engine.call(digest, "execute", b"{}", Limits(max_host_calls=5), echo)
    assert len(echo.calls) == 5


def test_fuel_off_reports_zero(tmp_path: Path, built_skills: Path) -> None:
    with Engine(small_settings(tmp_path, fuel=False), HOST_NAMES) as eng:
        digest, limits = load_skill(eng, built_skills / "calculator")
        out = eng.call(digest, "execute", b'{"operation":"add","a":1,"b":1}', limits, no_host)
        assert out.fuel_used == 0 and _json(out) == {"result": 2}
        # the deadline is never off
        loop, _ = load_skill(eng, built_skills / "hostile" / "loop")
        with pytest.raises(SkillTimeout):
            eng.call(loop, "execute", b"{}", Limits(max_execution_time_ms=30), no_host)


def test_compile_checks_digest_and_validity(engine: Engine, built_skills: Path) -> None:
    wasm = (built_skills / "calculator" / "calculator.wasm").read_bytes()
    with pytest.raises(DigestMismatchError):
        engine.compile(wasm, "0" * 64)
    with pytest.raises(SkillLoadError):
        engine.compile(b"\0asm garbage", module_digest(b"\0asm garbage"))
    first = engine.compile(wasm, module_digest(wasm))
    assert engine.compile(wasm, module_digest(wasm)) is first


def test_unknown_digest_and_export(engine: Engine, built_skills: Path) -> None:
    with pytest.raises(UnknownToolError):
        engine.call("f" * 64, "execute", b"{}", Limits(), no_host)
    digest, limits = load_skill(engine, built_skills / "calculator")
    for export in ("nope", "vak_alloc", "memory"):
        with pytest.raises(ABIError):
            engine.call(digest, export, b"{}", limits, no_host)


def test_close_is_idempotent_and_stops_ticker(tmp_path: Path, built_skills: Path) -> None:
    eng = Engine(small_settings(tmp_path), HOST_NAMES)
    digest, limits = load_skill(eng, built_skills / "calculator")
    assert eng._ticker.running
    eng.close()
    eng.close()
    assert not eng._ticker.running
    with pytest.raises(UnknownToolError):
        eng.call(digest, "execute", b"{}", limits, no_host)
    with pytest.raises(SkillLoadError):
        eng.compile(b"", module_digest(b""))


def test_two_engines_in_one_process(tmp_path: Path, built_skills: Path) -> None:
    """FuncTypes bind to the first engine that uses them: each engine has its own."""
    with Engine(small_settings(tmp_path / "a"), HOST_NAMES) as a, \
            Engine(small_settings(tmp_path / "b"), HOST_NAMES) as b:
        for eng in (a, b, a):
            digest, limits = load_skill(eng, built_skills / "kvstore")
            gc.collect()
            assert _json(eng.call(digest, "get", b'{"key":"k"}', limits, Echo()))["fn"] == "kv_get"


RUNAWAY = Limits(max_execution_time_ms=20, max_fuel=10**12)


def test_concurrent_calls_with_hostile_mixed_in(engine: Engine, built_skills: Path) -> None:
    calc, calc_limits = load_skill(engine, built_skills / "calculator")
    kv, kv_limits = load_skill(engine, built_skills / "kvstore")
    loop, _ = load_skill(engine, built_skills / "hostile" / "loop")
    crash, crash_limits = load_skill(engine, built_skills / "hostile" / "crash")
    errors: list[BaseException] = []
    barrier = threading.Barrier(10)

    def worker(i: int) -> None:
        try:
            barrier.wait()
            for j in range(15):
                kind = (i + j) % 4
                if kind == 0:
                    out = engine.call(calc, "execute", orjson.dumps(
                        {"operation": "multiply", "a": i, "b": j}), calc_limits, no_host)
                    assert _json(out) == {"result": i * j}
                elif kind == 1:
                    echo = Echo()
                    out = engine.call(kv, "get", orjson.dumps({"key": f"{i}-{j}"}), kv_limits, echo)
                    assert _json(out) == {"fn": "kv_get", "args": {"key": f"{i}-{j}"}}
                    assert echo.calls == [("kv_get", orjson.dumps({"key": f"{i}-{j}"}))]
                elif kind == 2:
                    with pytest.raises(SkillTimeout):
                        engine.call(loop, "execute", b"{}", RUNAWAY, no_host)
                else:
                    with pytest.raises(GuestTrap):
                        engine.call(crash, "execute", b"{}", crash_limits, no_host)
        except BaseException as exc:  # collected and re-raised on the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_host_handler_may_call_the_engine_reentrantly(engine: Engine, built_skills: Path) -> None:
    calc, calc_limits = load_skill(engine, built_skills / "calculator")
    kv, kv_limits = load_skill(engine, built_skills / "kvstore")

    def host(fn: str, args: bytes) -> bytes:
        return engine.call(calc, "execute", b'{"operation":"add","a":20,"b":22}', calc_limits,
                           no_host).output

    for _ in range(2):
        out = engine.call(kv, "get", b'{"key":"k"}', kv_limits, host)
        assert _json(out) == {"result": 42}
        assert out.host_calls == 1


@pytest.mark.parametrize(("text", "log"), [("hello, World\n\\ é", False), ("abc", True)],
                         ids=["escapes", "with-log"])
def test_zig_sdk_skill(engine: Engine, built_skills: Path, text: str, log: bool) -> None:
    digest, limits = load_skill(engine, built_skills / "uppercase")
    echo = Echo()
    out = engine.call(digest, "execute", orjson.dumps({"text": text, "log": log}), limits, echo)
    expected = "".join(c.upper() if "a" <= c <= "z" else c for c in text)
    assert _json(out) == {"text": expected}
    assert [fn for fn, _ in echo.calls] == (["log"] if log else [])


def test_close_waits_for_calls_in_flight_to_hit_their_deadline(tmp_path: Path,
                                                               built_skills: Path) -> None:
    eng = Engine(small_settings(tmp_path), HOST_NAMES)
    loop, _ = load_skill(eng, built_skills / "hostile" / "loop")
    errors: list[BaseException] = []
    started = threading.Event()

    def run() -> None:
        started.set()
        try:
            eng.call(loop, "execute", b"{}", Limits(max_execution_time_ms=200,
                                                     max_fuel=10**15), no_host)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    started.wait()
    eng.close()  # must not strand the running call without epoch ticks
    t.join(timeout=10)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], SkillTimeout | UnknownToolError)
