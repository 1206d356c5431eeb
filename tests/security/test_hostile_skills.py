"""Every hostile skill ends with its typed error, and the engine keeps serving."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from sandbox_helpers import HOST_NAMES, Echo, load_skill, small_settings

from vak.errors import (
    ABIError,
    FuelExhausted,
    GuestTrap,
    HostCallLimitError,
    MemoryLimitExceeded,
    OutputStructureError,
    OutputTooLarge,
    SkillTimeout,
    StackOverflow,
)
from vak.identity.manifest import Limits
from vak.sandbox.engine import Engine

# (skill, export, limits overrides, expected error)
CASES = [
    ("loop", "execute", {"max_execution_time_ms": 50, "max_fuel": 10**13}, SkillTimeout),
    ("loop", "execute", {"max_fuel": 100_000}, FuelExhausted),
    ("membomb", "execute", {"max_memory_pages": 16}, MemoryLimitExceeded),
    ("recursion", "execute", {}, StackOverflow),
    ("recursion", "shadow", {}, GuestTrap),
    ("oob", "output", {}, ABIError),
    ("oob", "hostarg", {}, ABIError),
    ("oob", "hostlen", {}, ABIError),
    ("badalloc", "execute", {}, ABIError),
    ("hugeoutput", "execute", {"max_output_bytes": 65536}, OutputTooLarge),
    ("garbage", "execute", {}, ABIError),
    ("garbage", "utf8", {}, ABIError),
    ("crash", "execute", {}, GuestTrap),
    ("noexport", "execute", {}, ABIError),
    ("hostspin", "execute", {"max_host_calls": 3}, HostCallLimitError),
    ("deepnest", "execute", {}, OutputStructureError),
    ("deepnest", "deep300", {}, OutputStructureError),
    ("deepnest", "deep100k", {}, OutputStructureError),
    ("deepnest", "objects", {}, OutputStructureError),
    ("deepnest", "wide", {}, OutputStructureError),
    ("reenter", "execute", {}, ABIError),
]
#: cases whose host call the engine cannot serve: it asks the handler to refuse
REFUSED = {("oob", "hostarg"), ("oob", "hostlen"), ("reenter", "execute")}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    with Engine(small_settings(tmp_path_factory.mktemp("hostile")), HOST_NAMES) as eng:
        yield eng


@pytest.mark.parametrize(("skill", "export", "overrides", "error"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[3].__name__}" for c in CASES])
def test_hostile_call_fails_typed(engine: Engine, built_skills: Path, skill: str, export: str,
                                  overrides: dict, error: type[Exception]) -> None:
    _assert_fails_typed(engine, built_skills, skill, export, overrides, error)


@pytest.fixture(scope="module")
def public_engine(tmp_path_factory: pytest.TempPathFactory):
    """The same engine on wasmtime-py's public API (the self-test's fallback)."""
    with Engine(small_settings(tmp_path_factory.mktemp("hostile-public")), HOST_NAMES,
                backend="public") as eng:
        yield eng


@pytest.mark.parametrize(("skill", "export", "overrides", "error"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[3].__name__}" for c in CASES])
def test_hostile_call_fails_typed_on_public_api(
    public_engine: Engine, built_skills: Path, skill: str, export: str, overrides: dict,
    error: type[Exception],
) -> None:
    assert public_engine.fast_paths["backend"] == "public"
    _assert_fails_typed(public_engine, built_skills, skill, export, overrides, error)


def _assert_fails_typed(engine: Engine, built_skills: Path, skill: str, export: str,
                        overrides: dict, error: type[Exception]) -> None:
    digest, limits = load_skill(engine, built_skills / "hostile" / skill)
    limits = Limits(**{**_fields(limits), **overrides})
    handler = Echo(limits.max_host_calls)  # the handler enforces max_host_calls (contract 3)
    with pytest.raises(error) as info:
        engine.call(digest, export, b'{"x":1}', limits, handler)
    assert info.type is error
    if (skill, export) in REFUSED:  # handed to refuse exactly once, its error raised
        assert [r[1] for r in handler.refusals] == ["vak.invalid-args"]
        assert info.value.details.get("policy_id") == "vak.invalid-args"
    elif skill == "hostspin":
        assert [r[1] for r in handler.refusals] == ["vak.host-call-limit"]
    else:
        assert handler.refusals == []
    # the engine keeps serving
    calc, calc_limits = load_skill(engine, built_skills / "calculator")
    out = engine.call(calc, "execute", b'{"operation":"add","a":2,"b":2}', calc_limits, Echo())
    assert orjson.loads(out.output) == {"result": 4}


def test_reentrant_allocator_reports_its_real_cause(engine: Engine, built_skills: Path) -> None:
    """The refusal is the cause, not "vak_alloc failed"; no Python recursion."""
    digest, limits = load_skill(engine, built_skills / "hostile" / "reenter")
    with pytest.raises(ABIError) as info:
        engine.call(digest, "execute", b"{}", limits, Echo())
    assert "re-entrant" in info.value.message
    assert "vak_alloc failed" not in info.value.message


@pytest.mark.parametrize(("skill", "export"), [("oob", "hostarg"), ("reenter", "execute")])
def test_a_refusal_that_cannot_be_recorded_is_the_cause(engine: Engine, built_skills: Path,
                                                        skill: str, export: str) -> None:
    """If ``refuse`` itself fails (e.g. the audit log is poisoned), that failure is
    what the caller sees: fail closed, with the real cause."""
    from vak.errors import AuditError

    class Unrecordable(Echo):
        def refuse(self, function: str, policy_id: str, reason: str) -> BaseException:
            raise AuditError("audit log poisoned")

    digest, limits = load_skill(engine, built_skills / "hostile" / skill)
    with pytest.raises(AuditError, match="poisoned"):
        engine.call(digest, export, b"{}", limits, Unrecordable())


def test_output_structure_error_never_quotes_the_output(engine: Engine,
                                                         built_skills: Path) -> None:
    digest, limits = load_skill(engine, built_skills / "hostile" / "deepnest")
    with pytest.raises(OutputStructureError) as info:
        engine.call(digest, "execute", b"{}", limits, Echo())
    assert "[[" not in str(info.value.to_dict())
    assert info.value.details == {"bound": "max_depth", "limit": 64}


def test_guest_trap_carries_backtrace(engine: Engine, built_skills: Path) -> None:
    digest, limits = load_skill(engine, built_skills / "hostile" / "crash")
    with pytest.raises(GuestTrap) as info:
        engine.call(digest, "execute", b"{}", limits, Echo())
    assert info.value.details["backtrace"]
    assert info.value.details["trap_code"] == "UNREACHABLE"


@pytest.mark.parametrize(("skill", "needle"), [
    ("notoffered", "vak.not_offered"),
    ("wasi", "wasi_snapshot_preview1.fd_write"),
    ("noalloc", "vak_alloc"),
], ids=["not-offered-import", "wasi-import", "missing-allocator"])
def test_hostile_module_refused_at_compile(tmp_path: Path, built_skills: Path, skill: str,
                                           needle: str) -> None:
    with Engine(small_settings(tmp_path), HOST_NAMES) as eng, pytest.raises(ABIError) as info:
        load_skill(eng, built_skills / "hostile" / skill)
    assert needle in str(info.value)


def test_memory_over_limit_at_instantiation(engine: Engine, built_skills: Path) -> None:
    digest, _ = load_skill(engine, built_skills / "calculator")
    with pytest.raises(MemoryLimitExceeded):
        engine.call(digest, "execute", b"{}", Limits(max_memory_pages=1), Echo())


def test_huge_input_over_memory_limit(engine: Engine, built_skills: Path) -> None:
    digest, _ = load_skill(engine, built_skills / "calculator")
    big = b'{"a":"' + b"x" * (2 << 20) + b'"}'
    with pytest.raises(MemoryLimitExceeded):
        engine.call(digest, "execute", big, Limits(max_memory_pages=16), Echo())


def _fields(limits: Limits) -> dict:
    return {name: getattr(limits, name) for name in Limits.__dataclass_fields__}


START_CALLS_HOST = """
(module
  (import "vak" "log" (func $log (param i32 i32) (result i64)))
  (memory (export "memory") 1)
  (func (export "vak_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "execute") (param i32 i32) (result i64) (i64.const 0))
  (func $start (drop (call $log (i32.const 0) (i32.const 2))))
  (start $start))
"""

WRONG_EXPORT_TYPE = """
(module
  (memory (export "memory") 1)
  (func (export "vak_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "execute") (param i32) (result i32) (i32.const 0)))
"""

WRONG_IMPORT_TYPE = """
(module
  (import "vak" "log" (func $log (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "vak_alloc") (param i32) (result i32) (i32.const 1024)))
"""

IMPORTED_MEMORY = """
(module
  (import "vak" "memory" (memory 1))
  (func (export "vak_alloc") (param i32) (result i32) (i32.const 1024)))
"""


def _wat_module(engine: Engine, wat: str) -> str:
    import wasmtime

    from vak.sandbox.engine import module_digest

    wasm = wasmtime.wat2wasm(wat)
    engine.compile(wasm, module_digest(wasm))
    return module_digest(wasm)


def test_host_call_from_start_function(engine: Engine) -> None:
    digest = _wat_module(engine, START_CALLS_HOST)
    echo = Echo()
    with pytest.raises(ABIError, match="start function"):
        engine.call(digest, "execute", b"{}", Limits(), echo)
    assert echo.calls == []


def test_export_with_wrong_type(engine: Engine) -> None:
    digest = _wat_module(engine, WRONG_EXPORT_TYPE)
    with pytest.raises(ABIError, match=r"\(i32, i32\) -> i64"):
        engine.call(digest, "execute", b"{}", Limits(), Echo())


@pytest.mark.parametrize("wat", [WRONG_IMPORT_TYPE, IMPORTED_MEMORY],
                         ids=["import-wrong-type", "import-memory"])
def test_bad_imports_refused(engine: Engine, wat: str) -> None:
    with pytest.raises(ABIError, match="vak"):
        _wat_module(engine, wat)
