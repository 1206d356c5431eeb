"""WebAssembly components (the ``vak:skill`` WIT world) on the kernel's one wasmtime engine.

Why: authors write Python and JavaScript, whose toolchains (componentize-py,
componentize-js) emit components, not core modules with the ``vak.<fn>`` ABI.
A component runs on the same engine (pooling allocator, epochs, fuel), under
the same manifest limits, and every ``vak:skill/*`` import it calls reaches the
same :class:`~vak.sandbox.types.HostHandler` with the same JSON arguments as a
core module's import would (:mod:`vak.sandbox.wit_binding` converts): there is
no second decision path.

WASI is linked (the language runtimes need it to start) but locked down:

* no preopened directories, no environment, no arguments, empty stdin;
* stdout and stderr go to a bounded per-call buffer that is **dropped** (only
  its tail is read, to attribute a Python ``MemoryError``; never logged);
* sockets: wasmtime's WASI context refuses every address and name lookup by
  default and VAK grants none, so ``wasi:sockets`` calls fail; ``wasi:http``
  is not linked at all;
* clocks and random (``wasi:clocks``, ``wasi:random``) are served by wasmtime
  unmediated: they reveal nothing the kernel guards (the mediated
  ``vak:skill/clock`` and ``vak:skill/random`` exist for recorded use).

A component importing any interface outside :data:`ALLOWED_INTERFACES` is
refused at load, naming the interface.

Invariants:
* compiled once per digest, served from the keyed disk cache (its own
  fingerprint: a core-module entry can never be deserialised as a component);
* one Store per call with the manifest's memory limit, fuel and epoch deadline
  (with session reuse, one per session's instance: fuel and deadline reset per
  call, discarded after any failure);
* whatever the guest does, :meth:`ComponentRunner.call` returns output bytes
  or raises a :class:`vak.errors.ToolCallError` subclass;
* a host-function error is kept in the call's state and re-raised as is:
  wasmtime-py's process-global "last exception" is never trusted (another
  thread's call may have set it).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import wasmtime
from wasmtime import component as wc

from vak.errors import (
    ABIError,
    CapacityError,
    FuelExhausted,
    GuestTrap,
    MemoryLimitExceeded,
    SkillLoadError,
    SkillTimeout,
    StackOverflow,
    UnknownToolError,
)
from vak.identity.manifest import Limits
from vak.sandbox.cache import ModuleCache
from vak.sandbox.types import START_HOST, HostHandler, refusal
from vak.sandbox.wit_binding import (
    BINDINGS,
    INTERFACE_VERSION,
    PACKAGE,
    ArgumentRefused,
    Binding,
    ReplyShapeError,
)

__all__ = [
    "ALLOWED_INTERFACES", "TOOL_INTERFACE", "CompiledComponent", "ComponentResident",
    "ComponentRunner",
]

#: the export every VAK component has: ``call(name, input) -> string``
TOOL_INTERFACE = f"{PACKAGE}/tool@{INTERFACE_VERSION}"
_VAK_INTERFACES = frozenset(
    {f"{iface}@{INTERFACE_VERSION}" for iface, _ in BINDINGS} | {f"{PACKAGE}/types@0.1.0"})
#: WASI 0.2 packages a component may import (served locked down, see the module doc)
_WASI = re.compile(r"wasi:(io|clocks|random|cli|filesystem|sockets)/[a-z0-9-]+@0\.2\.\d+")
#: the refusal id for arguments the JSON ABI cannot carry (same as the core ABI's)
INVALID_ARGS = "vak.invalid-args"
#: most bytes of a call's stdout + stderr kept (the rest is dropped unread)
STDIO_BOUND = 8192
#: most core instances, tables and memories one component's store may create (a
#: componentize-py component uses 9-16 instances, 2 tables, 1 memory; docs/COMPONENTS.md)
MAX_INSTANCES = 32
MAX_TABLES = 8
MAX_MEMORIES = 4
_T = TypeVar("_T")
_POOL_FULL = re.compile(r"maximum concurrent limit of (\d+) for ([a-z ]+?) reached")


def allowed_interface(name: str) -> bool:
    """Whether the kernel serves import ``name`` (``vak:skill/*@0.1.0`` or WASI 0.2)."""
    return name in _VAK_INTERFACES or _WASI.fullmatch(name) is not None


ALLOWED_INTERFACES = "vak:skill/*@0.1.0, wasi:{io,clocks,random,cli,filesystem,sockets}@0.2"


@dataclass(frozen=True, slots=True)
class CompiledComponent:
    """A compiled component whose imports were checked, ready for per-call stores."""

    digest: str
    component: wc.Component
    imports: tuple[str, ...]
    from_cache: bool


class _CallState:
    """Per-call state reachable from host functions (thread-local)."""

    __slots__ = ("host", "host_calls", "pending", "stdio", "stdio_len")

    def __init__(self, host: HostHandler) -> None:
        self.host = host
        self.host_calls = 0
        self.pending: BaseException | None = None
        self.stdio: list[bytes] = []
        self.stdio_len = 0

    def output(self, data: bytes) -> None:
        """Keep at most :data:`STDIO_BOUND` bytes of the guest's stdio; drop the rest."""
        room = STDIO_BOUND - self.stdio_len
        if room > 0:
            self.stdio.append(bytes(data[:room]))
            self.stdio_len += min(room, len(data))

    def fail(self, exc: BaseException) -> BaseException:
        if self.pending is None:
            self.pending = exc
        return self.pending


_tls = threading.local()


def _serve(binding: Binding, args: tuple[Any, ...]) -> Any:
    """One ``vak:skill`` host call: WIT values -> JSON -> the handler -> WIT result."""
    state: _CallState | None = getattr(_tls, "state", None)
    if state is None:
        raise RuntimeError("component host call outside a VAK call")
    name = binding.host_function
    if state.pending is not None:  # the guest caught a trap's cause and kept calling
        raise state.pending
    state.host_calls += 1
    try:
        try:
            payload = orjson.dumps(binding.args(*args))
        except ArgumentRefused as exc:
            raise refusal(state.host, name, INVALID_ARGS, str(exc)) from None
        reply = state.host(name, payload)
        if not isinstance(reply, bytes | bytearray):
            raise TypeError(f"HostHandler for {name} returned {type(reply).__name__}")
        value = orjson.loads(reply)
        if not isinstance(value, dict):
            raise ReplyShapeError("host reply is not a JSON object")
        return binding.reply(value)
    except (ReplyShapeError, orjson.JSONDecodeError) as exc:
        raise state.fail(GuestTrap(f"host function {name}: {exc}", host_function=name)) from None
    except BaseException as exc:  # noqa: BLE001 - kept as the call's cause, re-raised
        raise state.fail(exc) from None


def _host_func(binding: Binding) -> Callable[..., Any]:
    def func(_store: Any, *args: Any) -> Any:
        return _serve(binding, args)

    return func


class ComponentRunner:
    """Compiles, links and calls components on an existing wasmtime engine.

    Owned by :class:`vak.sandbox.engine.Engine`, which hands it the engine,
    the epoch ticker's enter/leave and a cache; thread-safe like the engine.
    """

    def __init__(self, engine: wasmtime.Engine, host_functions: Sequence[str],
                 cache: ModuleCache, *, fuel: bool, epoch_tick_ms: int,
                 table_elements: int, memory_cap: int,
                 enter: Callable[[], None], leave: Callable[[], None]) -> None:
        missing = sorted({b.host_function for b in BINDINGS.values()} - set(host_functions))
        if missing:
            raise SkillLoadError(f"the WIT world needs host functions the kernel lacks: "
                                 f"{', '.join(missing)}")
        self._engine = engine
        self._cache = cache
        self._fuel = fuel
        self._tick = epoch_tick_ms
        self._table_elements = table_elements
        self._memory_cap = memory_cap
        self._enter, self._leave = enter, leave
        self._linker = wc.Linker(engine)
        self._linker.add_wasip2()
        by_iface: dict[str, list[tuple[str, Binding]]] = {}
        for (iface, fn), binding in BINDINGS.items():
            by_iface.setdefault(iface, []).append((fn, binding))
        with self._linker.root() as root:
            for iface, funcs in by_iface.items():
                with root.add_instance(f"{iface}@{INTERFACE_VERSION}") as inst:
                    for fn, binding in funcs:
                        inst.add_func(fn, _host_func(binding))
        self._components: dict[str, CompiledComponent] = {}
        self._lock = threading.Lock()

    def compiled(self, digest: str) -> CompiledComponent | None:
        return self._components.get(digest)

    def compile(self, data: bytes, digest: str) -> CompiledComponent:
        """Compile (or load from the cache) and check a component, once per digest.

        The caller checked ``sha256(data) == digest``.

        Raises:
            SkillLoadError: not a valid component.
            ABIError: it imports an interface VAK does not offer (named), or
                lacks the ``vak:skill/tool`` export.
        """
        with self._lock:
            known = self._components.get(digest)
            if known is not None:
                return known
            return self._checked(digest, *self._load(data, digest))

    def adopt(self, compiled: bytes, digest: str) -> CompiledComponent:
        """Deserialise a component this engine's configuration compiled, then check it.

        Raises:
            SkillLoadError: not a compiled component for this engine.
            ABIError: as for :meth:`compile`.
        """
        with self._lock:
            known = self._components.get(digest)
            if known is not None:
                return known
            try:
                component = wc.Component.deserialize(self._engine, compiled)
            except wasmtime.WasmtimeError as exc:
                raise SkillLoadError(f"compiled component {digest} does not load in this "
                                     f"engine: {_cause(str(exc))}", digest=digest) from None
            return self._checked(digest, component, True)

    def _checked(self, digest: str, component: wc.Component,
                 from_cache: bool) -> CompiledComponent:
        """Check a component's imports and exports, then keep it (under the lock)."""
        ctype = component.type
        imports = tuple(ctype.imports(self._engine))
        for name in imports:
            if not allowed_interface(name):
                raise ABIError(
                    f"component imports {name}, which the kernel does not offer "
                    f"(only {ALLOWED_INTERFACES})", import_name=name)
        if TOOL_INTERFACE not in ctype.exports(self._engine):
            raise ABIError(f"component does not export {TOOL_INTERFACE} "
                           "(build it against the vak:skill world)", export=TOOL_INTERFACE)
        compiled = CompiledComponent(digest, component, imports, from_cache)
        self._components[digest] = compiled
        return compiled

    def _load(self, data: bytes, digest: str) -> tuple[wc.Component, bool]:
        def build() -> wc.Component:
            try:
                return wc.Component(self._engine, bytes(data))
            except wasmtime.WasmtimeError as exc:
                raise SkillLoadError(f"component {digest} is not a valid component: "
                                     f"{_cause(str(exc))}", digest=digest) from None

        return self._cache.load_or_build(
            digest, lambda blob: wc.Component.deserialize(self._engine, blob), build)

    def call(self, digest: str, export: str, input_json: bytes, limits: Limits,
             host: HostHandler) -> tuple[bytes, int, int, int]:
        """Run tool ``export`` on ``input_json`` in a fresh store.

        Returns ``(output, fuel_used, duration_ns, host_calls)``; the caller
        checks the output (size, JSON, bounds) exactly as for a core module.

        Raises:
            SkillTimeout, FuelExhausted, StackOverflow, MemoryLimitExceeded,
            GuestTrap, CapacityError: the guest failed for that reason.
            ToolCallError: whatever the handler raised or ``refuse`` returned.
        """
        resident = self.open_resident(digest, limits, instantiate=False)
        try:
            return self.call_resident(resident, export, input_json, limits, host)
        finally:
            resident.close()

    def open_resident(self, digest: str, limits: Limits, *,
                      instantiate: bool = True) -> ComponentResident:
        """A store with the manifest's limits and (by default) one live instance.

        For session reuse (``session_reuse``): the guest's state (a Python
        module's globals, its heap) persists between the calls made through
        :meth:`call_resident`; the instance holds its pooled slots until
        :meth:`ComponentResident.close`. Instantiation runs under the limits
        and may not call the host (no call is being served).

        Raises:
            UnknownToolError: ``digest`` was never compiled.
            SkillTrapError, CapacityError: instantiation failed for that reason.
        """
        compiled = self._components.get(digest)
        if compiled is None:
            raise UnknownToolError(f"component {digest} is not compiled in this engine",
                                   digest=digest)
        limit_bytes = min(limits.max_memory_pages * 65536, self._memory_cap)
        store = wasmtime.Store(self._engine)
        resident = ComponentResident(compiled, store, limit_bytes)
        try:
            store.set_limits(memory_size=limit_bytes, table_elements=self._table_elements,
                             instances=MAX_INSTANCES, tables=MAX_TABLES,
                             memories=MAX_MEMORIES)
            wasi = wasmtime.WasiConfig()  # no args, env, preopens; stdin empty
            wasi.stdout_custom = resident.output
            wasi.stderr_custom = resident.output
            store.set_wasi(wasi)
            if instantiate:
                self._guarded(resident, _CallState(START_HOST), "<start>", limits,
                              lambda: self._instantiate(resident))
        except BaseException:
            resident.close()
            raise
        return resident

    def call_resident(self, resident: ComponentResident, export: str, input_json: bytes,
                      limits: Limits, host: HostHandler) -> tuple[bytes, int, int, int]:
        """:meth:`call` on ``resident``'s instance (instantiated first if it has none).

        Fuel and the epoch deadline are reset for this call. Any failure closes
        ``resident``: a trapped instance is never entered again.

        Raises:
            The errors of :meth:`call`; UnknownToolError when ``resident`` is closed.
        """
        if resident.closed:
            raise UnknownToolError("the session's instance is closed",
                                   digest=resident.compiled.digest)
        state = _CallState(host)
        ok = False
        try:
            def run() -> str:
                func = resident.func or self._instantiate(resident)
                result = func(resident.live(), export, input_json.decode("utf-8"))
                func.post_return(resident.live())
                if not isinstance(result, str):
                    raise ABIError("component tool returned a non-string", export=export)
                return result

            start = time.perf_counter_ns()
            result = self._guarded(resident, state, export, limits, run)
            duration = time.perf_counter_ns() - start
            fuel_used = limits.max_fuel - resident.live().get_fuel() if self._fuel else 0
            resident.calls += 1
            ok = True
            return (result.encode("utf-8", "surrogatepass"), fuel_used, duration,
                    state.host_calls)
        finally:
            if not ok:
                resident.close()

    def _instantiate(self, resident: ComponentResident) -> wc.Func:
        store = resident.live()
        instance = self._linker.instantiate(store, resident.compiled.component)
        iface = instance.get_export_index(store, TOOL_INTERFACE)
        index = instance.get_export_index(store, "call", iface) if iface else None
        func = instance.get_func(store, index) if index is not None else None
        if func is None:  # checked at compile
            raise ABIError(f"component lacks {TOOL_INTERFACE}#call")
        resident.func = func
        return func

    def _guarded(self, resident: ComponentResident, state: _CallState, export: str,
                 limits: Limits, run: Callable[[], _T]) -> _T:
        """Run ``run`` as one guest entry: armed limits, the call's state reachable
        from host functions and stdio, every failure typed."""
        store = resident.live()
        if self._fuel:
            store.set_fuel(limits.max_fuel)
        store.set_epoch_deadline(-(-limits.max_execution_time_ms // self._tick) + 1)
        self._enter()
        outer = getattr(_tls, "state", None)
        _tls.state = resident.state = state
        try:
            result = run()
        except ABIError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified below, never swallowed
            # a trap, or an exception wasmtime-py relays from its process-global
            # "last exception" (which may be another thread's): only this call's
            # own recorded failure is ever re-raised. Its traceback is dropped:
            # wasmtime-py raises it from a frame holding it, a cycle through our
            # frames that would keep this engine alive until a collection
            exc.__traceback__ = None
            if state.pending is not None:
                raise state.pending from None
            message = str(exc) if isinstance(exc, wasmtime.WasmtimeError) else "host failure"
            raise _classify(message, state, export, resident.limit_bytes) from None
        finally:
            _tls.state = outer
            resident.state = None
            self._leave()
        if state.pending is not None:  # the guest swallowed a host error and returned
            raise state.pending
        return result


class ComponentResident:
    """A component's store and (once instantiated) its tool function, kept across calls.

    Not thread-safe on its own: the owner serialises calls and ``close``
    (:class:`vak._session.SessionTable`, or :meth:`ComponentRunner.call` for
    a one-call store).
    """

    __slots__ = ("calls", "compiled", "func", "limit_bytes", "state", "store")

    def __init__(self, compiled: CompiledComponent, store: wasmtime.Store,
                 limit_bytes: int) -> None:
        self.compiled = compiled
        self.store: wasmtime.Store | None = store
        self.limit_bytes = limit_bytes
        self.func: wc.Func | None = None
        #: the call being served (its stdio buffer), None between calls
        self.state: _CallState | None = None
        #: successful calls served so far
        self.calls = 0

    @property
    def digest(self) -> str:
        return self.compiled.digest

    @property
    def closed(self) -> bool:
        return self.store is None

    def live(self) -> wasmtime.Store:
        if self.store is None:
            raise UnknownToolError("the session's instance is closed", digest=self.digest)
        return self.store

    def output(self, data: bytes) -> None:
        """WASI stdout/stderr: into the current call's bounded buffer (else dropped)."""
        if self.state is not None:
            self.state.output(data)

    def close(self) -> None:
        """Delete the store (frees its pooled slots); idempotent."""
        if self.store is not None:
            self.store.close()
            self.store = None
        self.func = None


def _cause(message: str) -> str:
    """The last non-empty line of a wasmtime error: its innermost cause."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    return lines[-1] if lines else message


def _classify(message: str, state: _CallState, export: str, limit_bytes: int) -> BaseException:
    """Map a component trap's message to the typed error the caller sees."""
    where = {"export": export}
    # only wasmtime's cause (the last line) is read: the backtrace above it holds
    # guest-chosen function names
    cause = _cause(message)
    if "wasm trap: interrupt" in cause:
        return SkillTimeout(f"{export}: execution time limit reached", **where)
    if "all fuel consumed" in cause:
        return FuelExhausted(f"{export}: fuel exhausted", **where)
    if "call stack exhausted" in cause:
        return StackOverflow(f"{export}: wasm stack exhausted", **where)
    if (full := _POOL_FULL.search(cause)) is not None:
        return CapacityError(
            f"{export}: no free pooled slot for {full.group(2)} (all {full.group(1)} in use); "
            "retry later, end idle sessions, or raise pool_total_* in the config",
            resource=full.group(2), limit=int(full.group(1)), **where)
    stdio = b"".join(state.stdio)
    if b"MemoryError" in stdio or ("memory" in cause and "limit" in cause.lower()):
        # the guest's own runtime reported it could not grow its heap (memory.grow
        # returned -1 at the store limit); guest text only ever selects this, for its call
        return MemoryLimitExceeded(
            f"{export}: the component ran out of memory at the limit of {limit_bytes} bytes",
            limit_bytes=limit_bytes, **where)
    return GuestTrap(f"{export}: component trapped: {cause[:300]}",
                     trap_code=None, **where)
