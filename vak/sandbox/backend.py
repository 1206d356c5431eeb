"""Two ways to drive wasmtime behind one interface: the fast path and the public API.

Why: the engine's hot path uses wasmtime-py's raw C entry points
(:mod:`vak.sandbox.fastcall`, the one module touching private API) because
``Func.__call__`` and ``Linker.define_func`` spend most of a call converting
values in Python. Private API can change meaning in a patch release, so the
same operations also exist on wasmtime-py's public API; at engine start
:mod:`vak.sandbox.selftest` runs a known-answer module through both and the
engine keeps the fast backend only if they agree.

A backend makes stores; a store (and, inside a host call, the caller) gives an
:class:`Access`: the operations the engine performs on guest state. Handles
(instance, memory, function) are opaque to the engine and only ever handed
back to the backend that made them.

Errors: every wasm-level failure surfaces as
:class:`vak.sandbox.fastcall.GuestTrapped`, whichever backend ran.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import wasmtime

from vak.sandbox import fastcall
from vak.sandbox.abi import GuestMemory, check_span

__all__ = [
    "FAST",
    "PUBLIC",
    "Access",
    "Backend",
    "HostEntry",
    "LinkerHolder",
    "PublicMemory",
    "Store",
    "backend_named",
]

#: the engine's host-call entry: ``(function index, access, ptr, len) -> packed reply``
HostEntry = Callable[[int, "Access", int, int], int]


class Memory(Protocol):
    def size(self) -> int: ...
    def read(self, ptr: int, length: int, what: str) -> bytes: ...
    def write(self, ptr: int, data: bytes, what: str) -> None: ...


class Access(Protocol):
    """Guest operations in one store context (a store, or a host call's caller)."""

    def memory(self, handle: Any) -> Memory: ...
    def export(self, instance: Any, name: bytes, kind: str) -> Any: ...
    def call_alloc(self, alloc: Any, size: int) -> int: ...
    def call_tool(self, func: Any, ptr: int, length: int, buf: Any) -> int: ...


class Store(Protocol):
    """One store: limits, fuel, deadline, one instance; deleted by ``close``."""

    @property
    def closed(self) -> bool: ...
    def limit(self, memory_bytes: int, table_elements: int) -> None: ...
    def set_fuel(self, fuel: int) -> None: ...
    def fuel(self) -> int: ...
    def set_epoch_deadline(self, ticks: int) -> None: ...
    def instantiate(self, pre: wasmtime.InstancePre) -> Any: ...
    def access(self) -> Access: ...
    def close(self) -> None: ...


class LinkerHolder(Protocol):
    """Owns a ``wasmtime.Linker`` and whatever its host functions need kept alive."""

    @property
    def linker(self) -> wasmtime.Linker: ...


@dataclass(frozen=True, slots=True)
class _Linked:
    linker: wasmtime.Linker


class Backend(Protocol):
    name: str

    def linker(self, engine: wasmtime.Engine, names: tuple[str, ...], module: str,
               ty: wasmtime.FuncType, entry: HostEntry) -> LinkerHolder: ...
    def new_store(self, engine: wasmtime.Engine) -> Store: ...
    def new_buffer(self) -> Any: ...


# --- fast: raw entry points -------------------------------------------------------
class _RawAccess:
    __slots__ = ("context",)

    def __init__(self, context: Any) -> None:
        self.context = context

    def memory(self, handle: Any) -> Memory:
        return GuestMemory(self.context, handle)

    def export(self, instance: Any, name: bytes, kind: str) -> Any:
        item = fastcall.export_get(self.context, instance, name)
        return None if item is None else getattr(item.of, kind)

    def call_alloc(self, alloc: Any, size: int) -> int:
        buf = fastcall.raw_values(1)
        buf[0].i32 = size
        fastcall.call_raw(self.context, alloc, buf, 1)
        return int(buf[0].i32) & 0xFFFF_FFFF

    def call_tool(self, func: Any, ptr: int, length: int, buf: Any) -> int:
        buf[0].i32 = ptr
        buf[1].i32 = length
        fastcall.call_raw(self.context, func, buf, 2)
        return int(buf[0].i64)


class _RawStore(fastcall.RawStore):
    __slots__ = ()

    @property
    def closed(self) -> bool:
        return self.ptr is None

    def access(self) -> Access:
        return _RawAccess(self.context)


class _FastBackend:
    name = "fastcall"

    def linker(self, engine: wasmtime.Engine, names: tuple[str, ...], module: str,
               ty: wasmtime.FuncType, entry: HostEntry) -> LinkerHolder:
        def raw(env: int, caller: Any, args: Any) -> int:
            access = _RawAccess(fastcall.caller_context(caller))
            try:
                args[0].i64 = entry(env, access, args[0].i32 & 0xFFFF_FFFF,
                                    args[1].i32 & 0xFFFF_FFFF)
            except fastcall.GuestTrapped as trapped:  # the guest's own trap, passed on
                if trapped.trap is not None:
                    return fastcall.release_trap(trapped.trap)
                return fastcall.new_trap(str(trapped))
            except BaseException as exc:  # noqa: BLE001 - the engine recorded the reason; trap
                return fastcall.new_trap(f"host call {names[env]} failed: "
                                         f"{type(exc).__name__}")
            return 0

        raw_linker = fastcall.RawLinker(engine)
        callback = fastcall.host_callback(raw)
        for index, name in enumerate(names):
            raw_linker.define_unchecked(module, name, ty, callback, index)
        return raw_linker  # keeps every type and callback alive with the linker

    def new_store(self, engine: wasmtime.Engine) -> Store:
        return _RawStore(engine)

    def new_buffer(self) -> Any:
        return fastcall.raw_values(2)


# --- public: wasmtime-py's documented API -----------------------------------------
def _trapped(exc: Exception) -> fastcall.GuestTrapped:
    # wasmtime-py raises a trap from a frame that holds it in a local: with its
    # traceback the error is a reference cycle through every caller's frame (an
    # engine's __init__ runs the self-test), keeping that engine and its pooled
    # address space alive until the garbage collector runs. The trap's own
    # frames (wasm) are kept; the Python traceback is dropped.
    exc.__traceback__ = None
    if isinstance(exc, wasmtime.Trap):
        return fastcall.GuestTrapped(exc, None)
    if isinstance(exc, wasmtime.WasmtimeError):
        return fastcall.GuestTrapped(None, exc)
    # a host entry's own exception re-raised by wasmtime-py; the engine kept the reason
    return fastcall.GuestTrapped(None, wasmtime.WasmtimeError(
        f"host call failed: {type(exc).__name__}"))


class PublicMemory:
    """A guest memory read and written through ``wasmtime.Memory``."""

    __slots__ = ("_memory", "_store")

    def __init__(self, store: Any, memory: wasmtime.Memory) -> None:
        self._store = store
        self._memory = memory

    def size(self) -> int:
        return int(self._memory.data_len(self._store))

    def read(self, ptr: int, length: int, what: str) -> bytes:
        check_span(ptr, length, self.size(), what)
        return bytes(self._memory.read(self._store, ptr, ptr + length)) if length else b""

    def write(self, ptr: int, data: bytes, what: str) -> None:
        check_span(ptr, len(data), self.size(), what)
        if data:
            self._memory.write(self._store, data, ptr)


class _PublicAccess:
    __slots__ = ("store",)

    def __init__(self, store: Any) -> None:
        self.store = store

    def memory(self, handle: Any) -> Memory:
        return PublicMemory(self.store, handle)

    def export(self, instance: Any, name: bytes, kind: str) -> Any:
        item = instance.exports(self.store).get(name.decode())
        want = wasmtime.Memory if kind == "memory" else wasmtime.Func
        return item if isinstance(item, want) else None

    def call_alloc(self, alloc: Any, size: int) -> int:
        try:
            return int(alloc(self.store, size)) & 0xFFFF_FFFF
        except Exception as exc:  # noqa: BLE001 - reported or converted, never hidden
            raise _trapped(exc) from None

    def call_tool(self, func: Any, ptr: int, length: int, buf: Any) -> int:
        try:
            return int(func(self.store, ptr, length))
        except Exception as exc:  # noqa: BLE001 - reported or converted, never hidden
            raise _trapped(exc) from None


class _PublicStore:
    __slots__ = ("_store",)

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._store: wasmtime.Store | None = wasmtime.Store(engine)

    def _live(self) -> wasmtime.Store:
        if self._store is None:
            raise RuntimeError("store is closed")
        return self._store

    @property
    def closed(self) -> bool:
        return self._store is None

    def limit(self, memory_bytes: int, table_elements: int) -> None:
        self._live().set_limits(memory_size=memory_bytes, table_elements=table_elements,
                                instances=1, tables=1, memories=1)

    def set_fuel(self, fuel: int) -> None:
        self._live().set_fuel(fuel)

    def fuel(self) -> int:
        return int(self._live().get_fuel())

    def set_epoch_deadline(self, ticks: int) -> None:
        self._live().set_epoch_deadline(ticks)

    def instantiate(self, pre: wasmtime.InstancePre) -> Any:
        try:
            return pre.instantiate(self._live())
        except Exception as exc:  # noqa: BLE001 - reported or converted, never hidden
            raise _trapped(exc) from None

    def access(self) -> Access:
        return _PublicAccess(self._live())

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


class _PublicBackend:
    name = "public"

    def linker(self, engine: wasmtime.Engine, names: tuple[str, ...], module: str,
               ty: wasmtime.FuncType, entry: HostEntry) -> LinkerHolder:
        linker = wasmtime.Linker(engine)
        for index, name in enumerate(names):
            linker.define_func(module, name, ty, _public_host(entry, index), access_caller=True)
        return _Linked(linker)

    def new_store(self, engine: wasmtime.Engine) -> Store:
        return _PublicStore(engine)

    def new_buffer(self) -> Any:
        return None


def _public_host(entry: HostEntry, index: int) -> Callable[[Any, int, int], int]:
    def host(caller: Any, ptr: int, length: int) -> int:
        try:
            return entry(index, _PublicAccess(caller), ptr & 0xFFFF_FFFF, length & 0xFFFF_FFFF)
        except fastcall.GuestTrapped as trapped:  # the guest allocator's own trap
            if trapped.trap is not None:
                raise trapped.trap from None
            raise
    return host


FAST: Backend = _FastBackend()
PUBLIC: Backend = _PublicBackend()


def backend_named(name: str) -> Backend:
    """``"fastcall"`` or ``"public"``.

    Raises:
        KeyError: no backend has that name.
    """
    return {FAST.name: FAST, PUBLIC.name: PUBLIC}[name]
