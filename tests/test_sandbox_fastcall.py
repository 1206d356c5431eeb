"""Pitfalls of the raw ctypes path (vak.sandbox.fastcall)."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import wasmtime
from sandbox_helpers import HOST_NAMES, load_skill, small_settings

from vak.identity.manifest import Limits
from vak.sandbox import fastcall
from vak.sandbox.engine import Engine

WAT = """
(module
  (import "t" "f" (func $f (param i32 i32) (result i64)))
  (func (export "go") (result i64) (call $f (i32.const 1) (i32.const 2))))
"""


def _instance(callback_fn) -> tuple[fastcall.RawStore, object, wasmtime.Engine, fastcall.RawLinker]:
    engine = wasmtime.Engine()
    linker = fastcall.RawLinker(engine)
    ty = wasmtime.FuncType([wasmtime.ValType.i32(), wasmtime.ValType.i32()],
                           [wasmtime.ValType.i64()])
    linker.define_unchecked("t", "f", ty, fastcall.host_callback(callback_fn), 0)
    del ty  # RawLinker must keep the type (and the callback) alive
    gc.collect()
    module = wasmtime.Module(engine, WAT)
    pre = linker.linker.instantiate_pre(module)
    store = fastcall.RawStore(engine)
    instance = store.instantiate(pre)
    go = fastcall.export_get(store.context, instance, b"go").of.func
    return store, go, engine, linker


def test_callback_result_and_args() -> None:
    def cb(env, caller, args):
        args[0].i64 = args[0].i32 * 100 + args[1].i32
        return 0

    store, go, _engine, _linker = _instance(cb)
    buf = fastcall.raw_values(1)
    fastcall.call_raw(store.context, go, buf, 1)
    assert buf[0].i64 == 102
    store.close()


@pytest.mark.parametrize("exc", [ValueError("x"), KeyboardInterrupt(), SystemExit(3)],
                         ids=["ValueError", "KeyboardInterrupt", "SystemExit"])
def test_exception_in_callback_becomes_trap_not_success(exc: BaseException) -> None:
    def cb(env, caller, args):
        raise exc

    store, go, _engine, _linker = _instance(cb)
    with pytest.raises(fastcall.GuestTrapped) as info:
        fastcall.call_raw(store.context, go, fastcall.raw_values(1), 1)
    assert type(exc).__name__ in str(info.value)
    store.close()


def test_store_close_is_idempotent() -> None:
    store = fastcall.RawStore(wasmtime.Engine())
    store.close()
    store.close()
    assert store.ptr is None


def test_functype_per_engine(tmp_path: Path, built_skills: Path) -> None:
    """A FuncType used by one engine must not be reused by another: each Engine owns its own."""
    a = Engine(small_settings(tmp_path / "a"), HOST_NAMES)
    b = Engine(small_settings(tmp_path / "b"), HOST_NAMES)
    try:
        assert a._tool_type is not b._tool_type
        for eng in (b, a):
            digest, limits = load_skill(eng, built_skills / "kvstore")
            out = eng.call(digest, "get", b'{"key":"k"}', limits, lambda f, x: b'{"ok":1}')
            assert out.output == b'{"ok":1}'
    finally:
        a.close()
        b.close()


def test_host_call_outside_a_call_traps(tmp_path: Path, built_skills: Path) -> None:
    """The thread-local state is cleared after each call; a stray callback traps."""
    from vak.sandbox import engine as engine_mod

    assert getattr(engine_mod._tls, "state", None) is None
    with Engine(small_settings(tmp_path), HOST_NAMES) as eng:
        digest, _ = load_skill(eng, built_skills / "kvstore")
        eng.call(digest, "get", b"{}", Limits(), lambda f, x: b"{}")
    assert engine_mod._tls.state is None
