"""Known-answer self-test of the wasmtime fast paths against the public API.

Why: :mod:`vak.sandbox.fastcall` calls wasmtime-py's private, unchecked entry
points; a wasmtime-py release that changes their meaning (a struct layout, a
calling convention, how a trap is returned) would not fail loudly, it would
return wrong values. So each engine, at start, runs one tiny module through
both backends of :mod:`vak.sandbox.backend` (raw calls, raw callbacks, raw
memory access, raw fuel, trap classification) and compares every observable.
If anything differs, the engine runs on the public API (slower, but defined)
and reports why in :attr:`Report.mismatches`; nothing is silently trusted.

    >>> import wasmtime
    >>> run(wasmtime.Engine(), fuel=False).backend
    'fastcall'
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import wasmtime

from vak.sandbox import fastcall
from vak.sandbox.abi import pack, unpack
from vak.sandbox.backend import FAST, PUBLIC, Access, Backend

__all__ = ["Report", "run"]

_WAT = """
(module
  (import "vak" "echo" (func $echo (param i32 i32) (result i64)))
  (memory (export "memory") 1)
  (global $bump (mut i32) (i32.const 1024))
  (func (export "vak_alloc") (param $n i32) (result i32)
    (local $p i32)
    global.get $bump
    local.set $p
    global.get $bump
    local.get $n
    i32.add
    global.set $bump
    local.get $p)
  (func (export "run") (param $p i32) (param $n i32) (result i64)
    local.get $p
    local.get $n
    call $echo)
  (func (export "boom") (param i32 i32) (result i64)
    unreachable))
"""
_INPUT = b'{"known":"answer","n":[1,2,3]}'
_FUEL = 1_000_000


@dataclass(frozen=True, slots=True)
class Report:
    """What the self-test compared and which backend the engine runs on."""

    backend: str
    checks: dict[str, Any]
    mismatches: tuple[str, ...] = ()
    forced: bool = False  # the backend was chosen by the caller, no test ran
    notes: tuple[str, ...] = field(default=())

    @property
    def agreed(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "self_test": "skipped" if self.forced else ("passed" if self.agreed else "failed"),
            "checks": dict(self.checks),
            "mismatches": list(self.mismatches),
        }


def _echo_entry(index: int, access: Access, ptr: int, length: int) -> int:
    """Host function of the test module: reply with the argument bytes reversed."""
    state = _entry_state
    memory = access.memory(state["memory"])
    payload = memory.read(ptr, length, "self-test arguments")
    reply = payload[::-1]
    out = access.call_alloc(state["alloc"], len(reply))
    memory.write(out, reply, "self-test reply")
    return pack(out, len(reply))


#: the running test's handles; ``_lock`` makes the tests of engines started on
#: several threads run one at a time
_entry_state: dict[str, Any] = {}
_lock = threading.Lock()


def _observe(engine: wasmtime.Engine, backend: Backend, module: wasmtime.Module,
             fuel: bool) -> dict[str, Any]:
    holder = backend.linker(engine, ("echo",), "vak", _tool_type(), _echo_entry)
    pre = holder.linker.instantiate_pre(module)
    store = backend.new_store(engine)
    try:
        store.limit(1 << 20, 100)
        if fuel:
            store.set_fuel(_FUEL)
        store.set_epoch_deadline(1 << 30)
        instance = store.instantiate(pre)
        access = store.access()
        memory = access.export(instance, b"memory", "memory")
        alloc = access.export(instance, b"vak_alloc", "func")
        run_fn = access.export(instance, b"run", "func")
        boom = access.export(instance, b"boom", "func")
        _entry_state.update(memory=memory, alloc=alloc)
        in_ptr = access.call_alloc(alloc, len(_INPUT))
        access.memory(memory).write(in_ptr, _INPUT, "self-test input")
        packed = access.call_tool(run_fn, in_ptr, len(_INPUT), backend.new_buffer())
        ptr, length = unpack(packed)
        seen: dict[str, Any] = {
            "input_ptr": in_ptr,
            "output": access.memory(memory).read(ptr, length, "self-test output").hex(),
            "memory_bytes": access.memory(memory).size(),
            "fuel_left": store.fuel() if fuel else None,
        }
        try:
            access.call_tool(boom, 0, 0, backend.new_buffer())
            seen["trap"] = None
        except fastcall.GuestTrapped as trapped:
            code = trapped.trap.trap_code if trapped.trap is not None else None
            seen["trap"] = code.name if code is not None else "error"
        return seen
    finally:
        _entry_state.clear()
        store.close()


def _tool_type() -> wasmtime.FuncType:
    i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
    return wasmtime.FuncType([i32, i32], [i64])


def run(engine: wasmtime.Engine, fuel: bool) -> Report:
    """Compare the fast backend with the public one on ``engine``; never raises
    for a mismatch (it is reported), only for an engine that cannot run wasm.

    Raises:
        wasmtime.WasmtimeError: the test module cannot be compiled at all.
    """
    with _lock:
        return _compare(engine, fuel)


def _compare(engine: wasmtime.Engine, fuel: bool) -> Report:
    module = wasmtime.Module(engine, bytes(wasmtime.wat2wasm(_WAT)))
    expected_output = _INPUT[::-1].hex()
    public = _observe(engine, PUBLIC, module, fuel)
    mismatches: list[str] = []
    if public["output"] != expected_output or public["trap"] != "UNREACHABLE":
        # the reference itself is wrong: nothing to compare against, stay public
        return Report(PUBLIC.name, {"public": public}, ("public API gave a wrong answer",))
    try:
        fast = _observe(engine, FAST, module, fuel)
    except Exception as exc:  # any failure of the fast path is a mismatch, reported
        return Report(PUBLIC.name, {"public": public},
                      (f"fast path failed: {type(exc).__name__}: {exc}",))
    for key, want in public.items():
        if fast.get(key) != want:
            mismatches.append(f"{key}: fastcall {fast.get(key)!r} != public {want!r}")
    checks = {key: fast.get(key) == want for key, want in public.items()}
    return Report(PUBLIC.name if mismatches else FAST.name, checks, tuple(mismatches))
