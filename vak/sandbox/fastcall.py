"""The one adapter to wasmtime-py's private API: raw C entry points (internal).

Every use of ``wasmtime._ffi`` and of underscored wasmtime-py names in VAK is
in this module, so an upgrade of wasmtime-py (pinned ``>=50,<51`` in
``pyproject.toml``) is reviewed in one file. What it holds: the unchecked call
and callback entry points of the hot path, raw stores, guest-memory access,
the caller's store context, and the pooling allocator's setters (wasmtime-py
50 has no public ``Config`` API for pooling). Everything here has a public
twin in :mod:`vak.sandbox.backend` (except pooling), and
:mod:`vak.sandbox.selftest` compares the two at engine start.

wasmtime-py's ``Func.__call__`` and ``Linker.define_func`` spend almost all of
their time converting values in Python. This module uses the *unchecked*
entry points instead (``wasmtime_func_call_unchecked``,
``wasmtime_linker_define_func_unchecked``) with preallocated raw value
buffers. They are unchecked: the caller must have verified the function's type
before calling (the engine checks every export and import signature once, at
compile time). The pitfalls this module exists to contain:

* an exception escaping a ctypes callback is printed and the callback returns
  0, which wasmtime reads as *success*: :func:`host_callback` wraps every
  callback so that anything raised becomes a trap;
* a ``FuncType`` binds to the first engine that uses it: types are created per
  engine by the caller, never shared at module level;
* passing ``.ptr()`` of a temporary object lets Python free it while C still
  holds it: :class:`RawLinker` keeps every type and callback it was given alive.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

__all__ = [
    "GuestTrapped",
    "PoolSizes",
    "RawLinker",
    "RawStore",
    "call_raw",
    "caller_context",
    "export_get",
    "host_callback",
    "memory_base",
    "memory_size",
    "new_trap",
    "raw_values",
    "release_trap",
    "set_pooling",
]

_TrapPtr = ctypes.POINTER(ffi.wasm_trap_t)
_NO_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(0)  # NULL function pointer
_ValRaw = ffi.wasmtime_val_raw_t


class GuestTrapped(Exception):  # a control-flow signal
    """A wasm call ended in a trap or error; ``trap`` owns the wasmtime object."""

    def __init__(self, trap: wasmtime.Trap | None, error: wasmtime.WasmtimeError | None) -> None:
        super().__init__(trap.message if trap is not None else str(error))
        self.trap = trap
        self.error = error


def new_trap(message: str) -> int:
    """A fresh ``wasm_trap_t*`` as an integer, ownership passed to the receiver."""
    raw = message.encode("utf-8", "replace")
    ptr = ffi.wasmtime_trap_new(ctypes.create_string_buffer(raw), len(raw))
    return ctypes.cast(ptr, ctypes.c_void_p).value or 0


def release_trap(trap: wasmtime.Trap) -> int:
    """Hand a trap we own back to wasmtime (as a callback result) without freeing it."""
    return ctypes.cast(trap._consume(), ctypes.c_void_p).value or 0


HostFn = Callable[[int, Any, Any], int]


def host_callback(fn: HostFn) -> Any:
    """Wrap ``fn(env, caller, args) -> trap_address_or_0`` as an unchecked callback.

    Whatever ``fn`` raises (``BaseException`` included) becomes a trap, because
    an exception escaping ctypes would report success to wasmtime and leave the
    guest running on garbage results.
    """

    def trampoline(env: int | None, caller: Any, args: Any, _nargs: int) -> int:
        try:
            return fn(env or 0, caller, args)
        except BaseException as exc:  # must never escape into C
            return new_trap(f"host callback failed: {type(exc).__name__}")

    return ffi.wasmtime_func_unchecked_callback_t(trampoline)


class RawLinker:
    """A ``wasmtime.Linker`` plus unchecked host functions that stay alive with it."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        self.linker = wasmtime.Linker(engine)
        self._keep: list[Any] = []

    def define_unchecked(
        self, module: str, name: str, ty: wasmtime.FuncType, callback: Any, env: int
    ) -> None:
        """Define import ``module.name`` of type ``ty`` as the raw ``callback``.

        Raises:
            wasmtime.WasmtimeError: wasmtime refused the definition.
        """
        self._keep.extend((ty, callback))
        mod, nm = module.encode(), name.encode()
        err = ffi.wasmtime_linker_define_func_unchecked(
            self.linker.ptr(), mod, len(mod), nm, len(nm), ty.ptr(), callback, env,
            _NO_FINALIZER,
        )
        if err:
            raise wasmtime.WasmtimeError._from_ptr(err)


class RawStore:
    """One ``wasmtime_store_t`` owned explicitly: created per call, deleted in ``close``."""

    __slots__ = ("context", "ptr")

    def __init__(self, engine: wasmtime.Engine) -> None:
        self.ptr: Any = ffi.wasmtime_store_new(engine.ptr(), None, _NO_FINALIZER)
        self.context: Any = ffi.wasmtime_store_context(self.ptr)

    def limit(self, memory_bytes: int, table_elements: int) -> None:
        ffi.wasmtime_store_limiter(self.ptr, memory_bytes, table_elements, 1, 1, 1)

    def set_fuel(self, fuel: int) -> None:
        err = ffi.wasmtime_context_set_fuel(self.context, fuel)
        if err:
            raise wasmtime.WasmtimeError._from_ptr(err)

    def fuel(self) -> int:
        out = ctypes.c_uint64()
        err = ffi.wasmtime_context_get_fuel(self.context, ctypes.byref(out))
        if err:
            raise wasmtime.WasmtimeError._from_ptr(err)
        return out.value

    def set_epoch_deadline(self, ticks: int) -> None:
        ffi.wasmtime_context_set_epoch_deadline(self.context, ticks)

    def instantiate(self, pre: wasmtime.InstancePre) -> ffi.wasmtime_instance_t:
        """Instantiate through ``InstancePre`` (imports already resolved).

        Raises:
            GuestTrapped: the start function trapped or instantiation failed
                (e.g. the module's memory is over the store's limit).
        """
        instance = ffi.wasmtime_instance_t()
        trap = _TrapPtr()
        err = ffi.wasmtime_instance_pre_instantiate(
            pre.ptr(), self.context, ctypes.byref(instance), ctypes.byref(trap))
        _raise_trapped(err, trap)
        return instance

    def close(self) -> None:
        if self.ptr is not None:
            ffi.wasmtime_store_delete(self.ptr)
            self.ptr = None
            self.context = None


def export_get(context: Any, instance: ffi.wasmtime_instance_t, name: bytes) -> Any:
    """The ``wasmtime_extern_t`` exported as ``name``, or None."""
    item = ffi.wasmtime_extern_t()
    if not ffi.wasmtime_instance_export_get(
            context, ctypes.byref(instance), name, len(name), ctypes.byref(item)):
        return None
    return item


def _raise_trapped(err: Any, trap: Any) -> None:
    if err:
        raise GuestTrapped(None, wasmtime.WasmtimeError._from_ptr(err))
    if trap:
        raise GuestTrapped(wasmtime.Trap._from_ptr(trap), None)


def call_raw(context: Any, func: ffi.wasmtime_func_t, buf: Any, n: int) -> None:
    """Call ``func`` with raw ``buf`` (args in, results out) of ``n`` slots.

    The caller guarantees the function's type matches ``buf``'s use.

    Raises:
        GuestTrapped: the call trapped or failed.
    """
    trap = _TrapPtr()
    err = ffi.wasmtime_func_call_unchecked(context, ctypes.byref(func), buf, n, ctypes.byref(trap))
    _raise_trapped(err, trap)


def raw_values(n: int) -> Any:
    """A zeroed buffer of ``n`` raw values."""
    return (_ValRaw * n)()


def caller_context(caller: Any) -> Any:
    """The store context of a raw callback's ``caller`` (valid during the callback)."""
    return ffi.wasmtime_caller_context(caller)


def memory_size(context: Any, memory: Any) -> int:
    """Current byte size of a ``wasmtime_memory_t`` in ``context``."""
    return int(ffi.wasmtime_memory_data_size(context, ctypes.byref(memory)))


def memory_base(context: Any, memory: Any) -> int:
    """Current base address of a memory (growth may move it: re-read per access)."""
    data = ffi.wasmtime_memory_data(context, ctypes.byref(memory))
    return ctypes.cast(data, ctypes.c_void_p).value or 0


@dataclass(frozen=True, slots=True)
class PoolSizes:
    """What the pooling allocator reserves (already validated by the caller)."""

    total_instances: int
    total_memories: int
    total_tables: int
    max_memory_bytes: int
    table_elements: int


def set_pooling(config: wasmtime.Config, sizes: PoolSizes) -> None:
    """Switch ``config`` to the pooling allocator (no public API in wasmtime-py 50).

    One skill instance owns at most one memory and one table (the ABI needs no
    more), so per-module maxima are 1.
    """
    pool = ffi.wasmtime_pooling_allocation_config_new()
    try:
        ffi.wasmtime_pooling_allocation_config_total_core_instances_set(
            pool, sizes.total_instances)
        ffi.wasmtime_pooling_allocation_config_total_memories_set(pool, sizes.total_memories)
        ffi.wasmtime_pooling_allocation_config_total_tables_set(pool, sizes.total_tables)
        ffi.wasmtime_pooling_allocation_config_max_memory_size_set(pool, sizes.max_memory_bytes)
        ffi.wasmtime_pooling_allocation_config_table_elements_set(pool, sizes.table_elements)
        ffi.wasmtime_pooling_allocation_config_max_memories_per_module_set(pool, 1)
        ffi.wasmtime_pooling_allocation_config_max_tables_per_module_set(pool, 1)
        # the strategy setter copies the pool config, so it is freed right after
        ffi.wasmtime_pooling_allocation_strategy_set(config.ptr(), pool)
    finally:
        ffi.wasmtime_pooling_allocation_config_delete(pool)
