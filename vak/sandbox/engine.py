"""``Engine``: one wasmtime engine per kernel, and the in-process ``Runner``.

Configured in one place from :class:`EngineSettings`: pooling allocator,
epoch interruption with a ticker thread, fuel metering, a bounded wasm stack,
no WASI. Modules are compiled once per digest (with an on-disk cache) and
instantiated through ``InstancePre``; every call gets a fresh Store with the
manifest's limits and ends in a :class:`CallOutcome` or a typed
:class:`vak.errors.ToolCallError`::

    >>> with Engine(EngineSettings(), ("log", "kv_get")) as engine:  # doctest: +SKIP
    ...     engine.compile(wasm, sha256_hex(wasm))
    ...     out = engine.call(digest, "execute", b'{"operation":"add","a":1,"b":2}',
    ...                       Limits(), host=lambda fn, args: b'{}')
    ...     out.output
    b'{"result":3}'

Invariants:
* a module is callable only if every import is ``vak.<name>`` for a name in
  ``host_functions`` (the host catalog, handed in by the composition root) of
  type ``(i32, i32) -> i64`` and it exports ``memory`` and ``vak_alloc``
  (checked at compile, before anything unchecked touches it);
* the engine enforces wasm-level limits only (memory, fuel, epochs, pointer
  spans); it counts host calls but the handler decides them. A host call
  whose argument span it cannot read goes to ``handler.refuse(fn,
  "vak.invalid-args", reason)`` and what that returns is the trap, so the
  refusal is recorded like any other decision;
* output JSON is bounded (depth, string length, items) by
  :mod:`vak.jsonbound` before anything recursive sees it;
* the fast paths (:mod:`vak.sandbox.fastcall`) are used only after a
  known-answer self-test agreed with wasmtime-py's public API at start
  (:mod:`vak.sandbox.selftest`); otherwise the engine runs on the public API
  and says so (a warning log and :attr:`Engine.fast_paths`);
* an export is called only after its type was checked to be ``(i32, i32) -> i64``;
* host callbacks find their call's state in a thread-local: a ``HostHandler``
  is only ever invoked on the thread running its call;
* after any failure the Store is deleted and the engine keeps serving.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import orjson
import wasmtime

from vak.errors import (
    ABIError,
    CapacityError,
    ConfigError,
    DigestMismatchError,
    FuelExhausted,
    GuestTrap,
    MemoryLimitExceeded,
    OutputTooLarge,
    SkillLoadError,
    SkillTimeout,
    SkillTrapError,
    StackOverflow,
    UnknownToolError,
)
from vak.identity.manifest import Limits
from vak.jsonbound import JsonBounds, check
from vak.sandbox import fastcall, selftest
from vak.sandbox.abi import pack, unpack
from vak.sandbox.backend import Access, Backend, Store, backend_named
from vak.sandbox.cache import ModuleCache
from vak.sandbox.component import CompiledComponent, ComponentResident, ComponentRunner
from vak.sandbox.pooling import apply_pooling
from vak.sandbox.settings import EngineSettings
from vak.sandbox.ticker import EpochTicker
from vak.sandbox.types import START_HOST, CallOutcome, HostHandler, refusal

__all__ = [
    "ALLOCATOR_EXPORT", "MEMORY_EXPORT", "CompiledModule", "CoreResident", "Engine", "Resident",
    "cache_fingerprint", "component_cache", "module_digest",
]

#: the guest allocator the host calls to place input and host-call replies
ALLOCATOR_EXPORT = "vak_alloc"
MEMORY_EXPORT = "memory"
HOST_MODULE = "vak"
_MEMORY_NAME = MEMORY_EXPORT.encode()
_ALLOC_NAME = ALLOCATOR_EXPORT.encode()
PAGE = 65536

#: read at import: an OS-sandboxed worker cannot read package metadata later
_WASMTIME_VERSION = importlib.metadata.version("wasmtime")
#: the refusal policy id for a host call whose arguments cannot be read
INVALID_ARGS = "vak.invalid-args"
_log = logging.getLogger("vak.sandbox")
_TC = wasmtime.TrapCode
#: the pooling allocator out of slots, e.g.
#: "maximum concurrent limit of 2 for core instances reached"
_POOL_FULL = re.compile(r"maximum concurrent limit of (\d+) for ([a-z ]+?) reached")


def module_digest(module_bytes: bytes) -> str:
    """The digest ``compile`` expects: lowercase hex SHA-256 of the module bytes."""
    return hashlib.sha256(module_bytes).hexdigest()


def cache_fingerprint(settings: EngineSettings) -> str:
    """What a compiled artefact depends on besides its digest: the wasmtime version and
    the engine settings that change generated code (the module cache's key)."""
    parts = (
        _WASMTIME_VERSION, f"fuel={bool(settings.fuel)}", "epoch=1",
        f"stack={settings.wasm_stack_bytes}", f"mem={settings.pool_max_memory_bytes}",
        "pooling=1",
    )
    return "|".join(parts)


def component_cache(settings: EngineSettings) -> ModuleCache:
    """The keyed disk cache of compiled components of engines with ``settings``.

    Its own fingerprint: a core entry can never be read as a component. The
    worker pool reads it too, so a worker deserialises instead of compiling.
    """
    return ModuleCache(settings.module_cache_dir, cache_fingerprint(settings) + "|component=1")


@dataclass(frozen=True, slots=True)
class CompiledModule:
    """A validated, linked module ready for per-call instantiation."""

    digest: str
    module: wasmtime.Module
    pre: wasmtime.InstancePre
    #: export name -> True when it has the tool signature (i32, i32) -> i64
    exports: Mapping[str, bool]
    imports: tuple[str, ...]
    from_cache: bool


class _CallState:
    """Mutable per-call state, reachable from host callbacks via a thread-local."""

    __slots__ = ("alloc", "host", "host_calls", "in_host", "limit_bytes", "memory", "names",
                 "pending")

    def __init__(self, host: HostHandler, names: tuple[str, ...], limit_bytes: int) -> None:
        self.host = host
        self.names = names
        self.limit_bytes = limit_bytes
        self.host_calls = 0
        #: a host call is being served (its reply placed by the guest allocator)
        self.in_host = False
        self.pending: BaseException | None = None
        self.memory: Any = None
        self.alloc: Any = None


_tls = threading.local()


class Engine:
    """One wasmtime engine, its linker, module table, cache and epoch ticker.

    Thread-safe: ``compile`` serialises on a lock; ``call`` may run on many
    threads at once, each with its own Store.
    """

    def __init__(self, settings: EngineSettings, host_functions: Sequence[str], *,
                 backend: str | None = None) -> None:
        """Build the engine from ``settings`` and start the ticker.

        ``host_functions`` are the import names a module may use (``vak.<name>``);
        ``backend`` forces ``"fastcall"`` or ``"public"`` (tests); by default
        the self-test picks.

        Raises:
            ConfigError: a pool, tick, stack or output-bound setting is invalid.
        """
        if settings.epoch_tick_ms <= 0:
            raise ConfigError("epoch_tick_ms must be positive", field="epoch_tick_ms")
        if settings.wasm_stack_bytes < 64 << 10:
            raise ConfigError("wasm_stack_bytes must be at least 64 KiB", field="wasm_stack_bytes")
        for name in ("output_max_depth", "output_max_string_chars", "output_max_items"):
            value = getattr(settings, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}",
                                  field=f"engine.{name}")
        self.settings = settings
        self._names = tuple(host_functions)
        self._bounds = JsonBounds(settings.output_max_depth, settings.output_max_string_chars,
                                  settings.output_max_items)
        wcfg = wasmtime.Config()
        wcfg.epoch_interruption = True
        wcfg.consume_fuel = bool(settings.fuel)
        wcfg.wasm_threads = False
        wcfg.max_wasm_stack = settings.wasm_stack_bytes
        apply_pooling(wcfg, settings)
        try:
            self._engine = wasmtime.Engine(wcfg)
        except wasmtime.WasmtimeError as exc:
            raise ConfigError(f"wasmtime rejected the engine configuration: {exc}") from None
        # FuncTypes bind to the first engine that uses them: one set per engine.
        i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
        self._tool_type = wasmtime.FuncType([i32, i32], [i64])
        self._alloc_type = wasmtime.FuncType([i32], [i32])
        if backend is None:
            self._report = selftest.run(self._engine, bool(settings.fuel))
            if not self._report.agreed:
                _log.warning("wasmtime fast paths disagree with the public API (%s); "
                             "running on the public API", "; ".join(self._report.mismatches))
            self._backend: Backend = backend_named(self._report.backend)
        else:
            self._backend = backend_named(backend)
            self._report = selftest.Report(self._backend.name, {}, (), forced=True)
        self._linker = self._backend.linker(self._engine, self._names, HOST_MODULE,
                                            self._tool_type, _host_entry)
        self._modules: dict[str, CompiledModule] = {}
        self._lock = threading.Lock()
        self._cache = ModuleCache(settings.module_cache_dir, cache_fingerprint(settings))
        self._ticker = EpochTicker(self._engine.increment_epoch, settings.epoch_tick_ms)
        self._components = ComponentRunner(
            self._engine, self._names,
            component_cache(settings),
            fuel=bool(settings.fuel), epoch_tick_ms=settings.epoch_tick_ms,
            table_elements=settings.pool_table_elements,
            memory_cap=settings.pool_max_memory_bytes,
            enter=_entering(self._ticker), leave=self._ticker.leave)
        self._ticker.start()
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Refuse new calls and stop the ticker once calls in flight ended; idempotent.

        ``compile`` after close raises ``SkillLoadError``, ``call`` ``UnknownToolError``.
        """
        self._closed = True
        self._ticker.stop()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def wasmtime_engine(self) -> wasmtime.Engine:
        """The underlying engine (benchmarks and tests compare against it)."""
        return self._engine

    @property
    def cache_enabled(self) -> bool:
        return self._cache.enabled

    @property
    def fast_paths(self) -> dict[str, Any]:
        """Which call path runs and what the start self-test found (``vak status``)."""
        return self._report.to_dict()

    # ------------------------------------------------------------------ loading
    def compile(self, module_bytes: bytes, digest: str) -> CompiledModule:
        """Validate, compile (or load from cache) and link a module, once per digest.

        Call only after the manifest's signature verified (the digest is the one
        it binds); the bytes are re-hashed here so the cache key cannot lie.

        Raises:
            DigestMismatchError: ``sha256(module_bytes) != digest``.
            SkillLoadError: the bytes are not a valid module, or the engine is closed.
            ABIError: the module imports anything but ``vak.<catalog fn>`` with the
                ABI type, or lacks the ``memory``/``vak_alloc`` exports.
        """
        self._check_bytes(module_bytes, digest, "module")
        with self._lock:
            known = self._modules.get(digest)
            if known is not None:
                return known
            module, from_cache = self._load_module(module_bytes, digest)
            imports = self._check_imports(module)
            exports = self._check_exports(module)
            try:
                pre = self._linker.linker.instantiate_pre(module)
            except wasmtime.WasmtimeError as exc:
                raise SkillLoadError(f"cannot link module {digest}: {exc}") from None
            compiled = CompiledModule(digest, module, pre, exports, imports, from_cache)
            self._modules[digest] = compiled
            return compiled

    def _load_module(self, module_bytes: bytes, digest: str) -> tuple[wasmtime.Module, bool]:
        def build() -> wasmtime.Module:
            try:
                wasmtime.Module.validate(self._engine, module_bytes)
                return wasmtime.Module(self._engine, module_bytes)
            except wasmtime.WasmtimeError as exc:
                raise SkillLoadError(f"module {digest} is not valid wasm: {exc}",
                                     digest=digest) from None

        return self._cache.load_or_build(
            digest, lambda blob: wasmtime.Module.deserialize(self._engine, blob), build)

    def _check_imports(self, module: wasmtime.Module) -> tuple[str, ...]:
        names = []
        for imp in module.imports:
            where = f"{imp.module}.{imp.name}"
            ty = imp.type
            if imp.module != HOST_MODULE or imp.name not in self._names:
                raise ABIError(
                    f"module imports {where}, which the kernel does not offer "
                    f"(only {HOST_MODULE}.<host function>; no WASI)", import_name=where)
            if not isinstance(ty, wasmtime.FuncType) or not _same_type(ty, self._tool_type):
                raise ABIError(f"import {where} must have type (i32, i32) -> i64",
                               import_name=where)
            names.append(imp.name or "")
        return tuple(names)

    def _check_exports(self, module: wasmtime.Module) -> dict[str, bool]:
        exports: dict[str, bool] = {}
        kinds: dict[str, Any] = {}
        for exp in module.exports:
            ty = exp.type
            kinds[exp.name] = ty
            if isinstance(ty, wasmtime.FuncType):
                exports[exp.name] = _same_type(ty, self._tool_type)
        if not isinstance(kinds.get(MEMORY_EXPORT), wasmtime.MemoryType):
            raise ABIError(f"module does not export its memory as {MEMORY_EXPORT!r}",
                           export=MEMORY_EXPORT)
        alloc = kinds.get(ALLOCATOR_EXPORT)
        if not isinstance(alloc, wasmtime.FuncType) or not _same_type(alloc, self._alloc_type):
            raise ABIError(
                f"module does not export the allocator {ALLOCATOR_EXPORT}(i32) -> i32",
                export=ALLOCATOR_EXPORT)
        return exports

    def compiled(self, digest: str) -> CompiledModule | None:
        """The compiled module for ``digest``, if ``compile`` ran for it."""
        return self._modules.get(digest)

    def compile_component(self, component_bytes: bytes, digest: str) -> CompiledComponent:
        """Compile (or load from the cache) a ``vak:skill`` component, once per digest.

        The component twin of :meth:`compile`; :meth:`call` then runs either kind.

        Raises:
            DigestMismatchError: ``sha256(component_bytes) != digest``.
            SkillLoadError: not a valid component, or the engine is closed.
            ABIError: it imports an interface the kernel does not offer (named)
                or lacks the ``vak:skill/tool`` export.
        """
        self._check_bytes(component_bytes, digest, "component")
        return self._components.compile(component_bytes, digest)

    def load_compiled_component(self, compiled: bytes, digest: str) -> CompiledComponent:
        """Adopt a component compiled earlier by an engine with the same settings.

        Only for bytes the kernel itself produced and authenticated (an entry of
        :func:`component_cache`, HMAC-checked, handed to an OS-sandboxed worker
        by its pool): deserialising runs the machine code they hold. The
        imports and exports are checked as for :meth:`compile_component`.

        Raises:
            SkillLoadError: the bytes are not a compiled component of this engine,
                or the engine is closed.
            ABIError: as for :meth:`compile_component`.
        """
        if self._closed:
            raise SkillLoadError("engine is closed")
        return self._components.adopt(compiled, digest)

    def _check_bytes(self, data: bytes, digest: str, what: str) -> None:
        """Refuse a closed engine and bytes that do not hash to the signed digest."""
        if self._closed:
            raise SkillLoadError("engine is closed")
        actual = module_digest(data)
        if actual != digest:
            raise DigestMismatchError(
                f"{what} bytes hash to {actual}, expected {digest}", expected=digest,
                actual=actual)

    def compiled_component(self, digest: str) -> CompiledComponent | None:
        """The compiled component for ``digest``, if ``compile_component`` ran for it."""
        return self._components.compiled(digest)

    # ------------------------------------------------------------------ calling
    def call(
        self,
        module_digest: str,
        export: str,
        input_json: bytes,
        limits: Limits,
        host: HostHandler,
    ) -> CallOutcome:
        """Run ``export`` of a compiled module on ``input_json`` in a fresh Store.

        Raises:
            UnknownToolError: the digest was never compiled, or the engine is closed.
            ABIError: missing export, wrong signature, bad pointer/length, output
                not UTF-8 JSON.
            OutputStructureError: output JSON over a structural bound.
            OutputTooLarge: output longer than ``limits.max_output_bytes``.
            CapacityError: every pooled instance slot is in use.
            SkillTimeout, FuelExhausted, MemoryLimitExceeded, StackOverflow,
            GuestTrap: the guest trapped for that reason.
            ToolCallError: whatever the ``HostHandler`` raised or its ``refuse``
                returned, unchanged (e.g. ``HostCallLimitError``).
        """
        if self._components.compiled(module_digest) is not None and not self._closed:
            return self._call_component(module_digest, export, input_json, limits, host)
        compiled = self._callable(module_digest, export)
        limit_bytes = self._memory_limit(limits)
        state = _CallState(host, self._names, limit_bytes)
        store = self._backend.new_store(self._engine)
        try:
            store.limit(limit_bytes, self.settings.pool_table_elements)
            outer = self._enter(state, module_digest)
            try:
                self._arm(store, limits)
                start = time.perf_counter_ns()
                instance = store.instantiate(compiled.pre)
                access = store.access()
                _bind(access, instance, state)
                func = _export_func(access, instance, export)
                output = self._call_export(access, func, input_json, limits, state, None)
                return self._outcome(store, limits, output, start, state)
            except fastcall.GuestTrapped as trapped:
                raise _classify(trapped, state, store, export) from None
            finally:
                self._leave(outer)
        finally:
            store.close()

    def _call_component(self, digest: str, export: str, input_json: bytes, limits: Limits,
                        host: HostHandler) -> CallOutcome:
        """A component's call; its output is checked exactly like a core module's."""
        return self._checked(*self._components.call(digest, export, input_json, limits, host),
                             limits)

    def _checked(self, output: bytes, fuel_used: int, duration: int, host_calls: int,
                 limits: Limits) -> CallOutcome:
        """A component call's outcome, its output checked exactly like a core module's."""
        if len(output) > limits.max_output_bytes:
            raise OutputTooLarge(
                f"output of {len(output)} bytes exceeds max_output_bytes="
                f"{limits.max_output_bytes}", size=len(output), limit=limits.max_output_bytes)
        check_output(output, self._bounds)
        return CallOutcome(output, fuel_used, duration, host_calls)

    def _memory_limit(self, limits: Limits) -> int:
        """Bytes one store may grow to: the manifest's pages, capped by the pool's slot size."""
        return min(limits.max_memory_pages * PAGE, self.settings.pool_max_memory_bytes)

    def open_resident(self, module_digest: str, limits: Limits) -> Resident:
        """A Store with one live instance of the module or component, kept for later calls.

        For the opt-in per-session reuse mode (``session_reuse``):
        guest state (globals, heap) persists between calls made through
        :meth:`call_resident`, which is exactly what the operator opted into.
        The instance holds a pooled slot until :meth:`Resident.close`.

        Raises:
            UnknownToolError: the digest was never compiled, or the engine is closed.
            CapacityError: every pooled instance slot is in use.
            SkillTrapError: the start function trapped or instantiation failed.
        """
        if self._components.compiled(module_digest) is not None and not self._closed:
            return self._components.open_resident(module_digest, limits)
        compiled = self._callable(module_digest, None)
        limit_bytes = self._memory_limit(limits)
        state = _CallState(START_HOST, self._names, limit_bytes)
        store = self._backend.new_store(self._engine)
        try:
            store.limit(limit_bytes, self.settings.pool_table_elements)
            outer = self._enter(state, module_digest)
            try:
                self._arm(store, limits)  # a start function runs under the same limits
                instance = store.instantiate(compiled.pre)
                _bind(store.access(), instance, state)
            except fastcall.GuestTrapped as trapped:
                raise _classify(trapped, state, store, "<start>") from None
            finally:
                self._leave(outer)
        except BaseException:
            store.close()
            raise
        return CoreResident(module_digest, store, instance, state.memory, state.alloc,
                            limit_bytes, self._backend.new_buffer())

    def call_resident(
        self,
        resident: Resident,
        export: str,
        input_json: bytes,
        limits: Limits,
        host: HostHandler,
    ) -> CallOutcome:
        """Like :meth:`call`, on ``resident``'s instance instead of a fresh one.

        Fuel is reset to ``limits.max_fuel`` and the epoch deadline re-armed for
        this call; memory and table limits are those of the resident's Store.
        Any failure closes ``resident`` (a trapped instance is never reused),
        and so does a core module's heap past half its limit after a successful
        call (the SDK's bump allocator never frees, so a long session would
        otherwise end in a spurious memory error; a component's memories are
        not visible, see :meth:`ComponentRunner.call_resident`). The caller
        serialises calls on one resident.

        Raises:
            The same errors as :meth:`call`; UnknownToolError also when
            ``resident`` is closed.
        """
        if isinstance(resident, ComponentResident):
            result = self._components.call_resident(resident, export, input_json, limits, host)
            try:
                return self._checked(*result, limits)
            except BaseException:
                resident.close()  # an output refused is a failed call, too
                raise
        if resident.closed:
            raise UnknownToolError("the session's instance is closed", digest=resident.digest)
        self._callable(resident.digest, export)
        state = _CallState(host, self._names, resident.limit_bytes)
        state.memory, state.alloc = resident.memory, resident.alloc
        store = resident.store
        ok = False
        try:
            outer = self._enter(state, resident.digest)
            try:
                self._arm(store, limits)
                start = time.perf_counter_ns()
                access = store.access()
                func = resident.funcs.get(export)
                if func is None:
                    func = resident.funcs[export] = _export_func(
                        access, resident.instance, export)
                output = self._call_export(access, func, input_json, limits, state,
                                           resident.buf)
                outcome = self._outcome(store, limits, output, start, state)
            except fastcall.GuestTrapped as trapped:
                raise _classify(trapped, state, store, export) from None
            finally:
                self._leave(outer)
            ok = access.memory(resident.memory).size() * 2 <= resident.limit_bytes
            resident.calls += 1
            return outcome
        finally:
            if not ok:
                resident.close()

    def _callable(self, module_digest: str, export: str | None) -> CompiledModule:
        compiled = self._modules.get(module_digest)
        if compiled is None or self._closed:
            raise UnknownToolError(f"module {module_digest} is not compiled in this engine",
                                   digest=module_digest)
        if export is None:
            return compiled
        kind = compiled.exports.get(export)
        if kind is None or export in (ALLOCATOR_EXPORT,):
            raise ABIError(f"module has no export {export!r}", export=export)
        if not kind:
            raise ABIError(f"export {export!r} must have type (i32, i32) -> i64", export=export)
        return compiled

    def _enter(self, state: _CallState, module_digest: str) -> Any:
        """Start ticking and make ``state`` reachable from host callbacks.

        Returns the thread's previous state, for :meth:`_leave` (a HostHandler
        may itself call an engine). A plain pair rather than a context manager:
        this is on every call's path.

        Raises:
            UnknownToolError: the engine is closed.
        """
        try:
            self._ticker.enter()
        except RuntimeError:
            raise UnknownToolError("engine is closed", digest=module_digest) from None
        outer = getattr(_tls, "state", None)
        _tls.state = state
        return outer

    def _leave(self, outer: Any) -> None:
        _tls.state = outer
        self._ticker.leave()

    def _arm(self, store: Store, limits: Limits) -> None:
        """Fuel and epoch deadline for one call (reset on every call)."""
        if self.settings.fuel:
            store.set_fuel(limits.max_fuel)
        tick = self.settings.epoch_tick_ms
        store.set_epoch_deadline(-(-limits.max_execution_time_ms // tick) + 1)

    def _call_export(self, access: Access, func: Any, input_json: bytes, limits: Limits,
                     state: _CallState, buf: Any) -> bytes:
        """Place the input, call the export, read and check the output."""
        memory = access.memory(state.memory)
        in_ptr = _guest_alloc(access, state, len(input_json), "input")
        memory.write(in_ptr, input_json, "input")
        if buf is None:
            buf = self._backend.new_buffer()
        packed = access.call_tool(func, in_ptr, len(input_json), buf)
        if state.pending is not None:  # a host error swallowed by a guest that kept going
            raise state.pending
        out_ptr, out_len = unpack(packed)
        if out_len > limits.max_output_bytes:
            raise OutputTooLarge(
                f"output of {out_len} bytes exceeds max_output_bytes={limits.max_output_bytes}",
                size=out_len, limit=limits.max_output_bytes)
        output = memory.read(out_ptr, out_len, "output")
        check_output(output, self._bounds)
        return output

    def _outcome(self, store: Store, limits: Limits, output: bytes, start: int,
                 state: _CallState) -> CallOutcome:
        fuel_used = limits.max_fuel - store.fuel() if self.settings.fuel else 0
        return CallOutcome(output, fuel_used, time.perf_counter_ns() - start, state.host_calls)


def check_output(output: bytes, bounds: JsonBounds) -> None:
    """The ABI's check of a guest's output bytes (also run by the worker pool's parent).

    Raises:
        ABIError: not UTF-8 JSON (the message never quotes the output).
        OutputStructureError: over a structural bound.
    """
    try:
        check(output, bounds, "output")
    except orjson.JSONDecodeError as exc:
        raise ABIError(f"output is not UTF-8 JSON: {exc}", output_bytes=len(output)) from None


class CoreResident:
    """A Store and its one core-module instance, alive across calls (session reuse; internal).

    Not thread-safe on its own: the owner serialises calls and ``close``.
    """

    __slots__ = ("alloc", "buf", "calls", "digest", "funcs", "instance", "limit_bytes",
                 "memory", "store")

    def __init__(self, digest: str, store: Store, instance: Any, memory: Any,
                 alloc: Any, limit_bytes: int, buf: Any) -> None:
        self.digest = digest
        self.store = store
        self.instance = instance
        self.memory = memory
        self.alloc = alloc
        self.limit_bytes = limit_bytes
        self.funcs: dict[str, Any] = {}
        #: raw argument/result slots reused by every call (calls are serialised)
        self.buf = buf
        #: successful calls served so far
        self.calls = 0

    @property
    def closed(self) -> bool:
        return self.store.closed

    def close(self) -> None:
        """Delete the Store (frees the pooled slot); idempotent."""
        self.store.close()


#: what :meth:`Engine.open_resident` hands out: a core module's or a component's
Resident: TypeAlias = CoreResident | ComponentResident


def _entering(ticker: EpochTicker) -> Callable[[], None]:
    """The component runner's "a call starts" hook: the ticker's ``enter``, typed.

    A closure over the ticker, not a bound method of the engine: the engine
    holds the runner, so a reference back would make a cycle that keeps the
    wasmtime engine, and the pooling allocator's terabytes of reserved address
    space, alive until the garbage collector happens to run.
    """
    def enter() -> None:
        try:
            ticker.enter()
        except RuntimeError:
            raise UnknownToolError("engine is closed") from None

    return enter


def _same_type(a: wasmtime.FuncType, b: wasmtime.FuncType) -> bool:
    return [str(t) for t in a.params] == [str(t) for t in b.params] and \
        [str(t) for t in a.results] == [str(t) for t in b.results]


def _bind(access: Access, instance: Any, state: _CallState) -> None:
    """Find the ABI exports of a fresh instance and keep them in ``state``."""
    memory = access.export(instance, _MEMORY_NAME, "memory")
    alloc = access.export(instance, _ALLOC_NAME, "func")
    if memory is None or alloc is None:  # checked at compile
        raise ABIError("instance lacks an ABI export")
    state.memory = memory
    state.alloc = alloc


def _export_func(access: Access, instance: Any, export: str) -> Any:
    func = access.export(instance, export.encode(), "func")
    if func is None:  # checked at compile
        raise ABIError("instance lacks an ABI export", export=export)
    return func


def _guest_alloc(access: Access, state: _CallState, size: int, what: str) -> int:
    """Call the guest's ``vak_alloc(size)``; 0 means it could not allocate.

    Raises:
        MemoryLimitExceeded: the allocator failed with memory at the store limit.
        ABIError: the allocator failed otherwise.
        fastcall.GuestTrapped: the allocator trapped (or re-entered the host,
            which failed): the original cause stays in ``state.pending``.
    """
    ptr = access.call_alloc(state.alloc, size)
    if ptr == 0 and size:
        if access.memory(state.memory).size() + max(size, PAGE) > state.limit_bytes:
            raise MemoryLimitExceeded(
                f"{ALLOCATOR_EXPORT}({size}) for {what} failed at the memory limit "
                f"of {state.limit_bytes} bytes", limit_bytes=state.limit_bytes)
        raise ABIError(f"{ALLOCATOR_EXPORT}({size}) for {what} returned 0")
    return ptr


def _host_entry(index: int, access: Access, ptr: int, length: int) -> int:
    """The one entry behind every ``vak.<fn>`` import; returns the packed reply.

    Whatever fails is recorded in ``state.pending`` (the first failure wins: a
    host call made by the guest allocator that failed must not be reported as
    an allocator failure) and raised, which the backend turns into a trap.
    """
    state: _CallState | None = getattr(_tls, "state", None)
    if state is None:
        raise RuntimeError("host call outside a VAK call")
    name = state.names[index]
    state.host_calls += 1
    reentrant = state.in_host
    state.in_host = True
    try:
        if reentrant:
            # only the guest allocator runs while a host call is served: an allocator
            # that calls the host is hostile (unbounded recursion through Python)
            raise refusal(state.host, name, INVALID_ARGS,
                          f"host call {name} made by {ALLOCATOR_EXPORT} while the kernel "
                          "placed a host-call reply (re-entrant host calls are refused)")
        if state.memory is None:
            raise refusal(state.host, name, INVALID_ARGS,
                           f"host call {name} during instantiation (start function): "
                           "no guest memory to read its arguments from")
        memory = access.memory(state.memory)
        try:
            payload = memory.read(ptr, length, f"arguments of host call {name}")
        except ABIError as exc:
            raise refusal(state.host, name, INVALID_ARGS, exc.message) from None
        reply = state.host(name, payload)
        if not isinstance(reply, bytes | bytearray):
            raise TypeError(f"HostHandler for {name} returned {type(reply).__name__}")
        reply_ptr = _guest_alloc(access, state, len(reply), f"reply of host call {name}")
        memory.write(reply_ptr, bytes(reply), f"reply of host call {name}")
        return pack(reply_ptr, len(reply))
    except fastcall.GuestTrapped as trapped:  # the guest allocator itself failed
        if state.pending is None and trapped.trap is None:
            state.pending = ABIError(f"{ALLOCATOR_EXPORT} failed in host call {name}: "
                                     f"{trapped}", host_function=name)
        raise
    except BaseException as exc:
        if state.pending is None:
            state.pending = exc
        raise
    finally:
        state.in_host = reentrant


def _classify(trapped: fastcall.GuestTrapped, state: _CallState, store: Store,
              export: str) -> BaseException:
    """Map a trap to the typed error the caller sees."""
    if state.pending is not None:
        return state.pending
    trap = trapped.trap
    code = trap.trap_code if trap is not None else None
    message = trap.message if trap is not None else str(trapped.error)
    where = {"export": export}
    if code is _TC.INTERRUPT:
        return SkillTimeout(f"{export}: execution time limit reached", **where)
    if code is _TC.OUT_OF_FUEL:
        return FuelExhausted(f"{export}: fuel exhausted", **where)
    if code is _TC.STACK_OVERFLOW:
        return StackOverflow(f"{export}: wasm stack exhausted", **where)
    if state.memory is not None and not store.closed:
        size = store.access().memory(state.memory).size()
        if size + PAGE > state.limit_bytes:
            return MemoryLimitExceeded(
                f"{export}: trapped with memory at the limit of {state.limit_bytes} bytes",
                limit_bytes=state.limit_bytes, memory_bytes=size, trap=message.splitlines()[0],
                **where)
    elif trap is None and (full := _POOL_FULL.search(message)) is not None:
        return CapacityError(
            f"{export}: no free pooled slot for {full.group(2)} (all {full.group(1)} in use); "
            "retry later, end idle sessions, or raise pool_total_* in the config",
            resource=full.group(2), limit=int(full.group(1)), **where)
    elif trap is None and "memory" in message and "limit" in message.lower():
        return MemoryLimitExceeded(f"{export}: instantiation over the memory limit: {message}",
                                   **where)
    frames = _backtrace(trap)
    err: SkillTrapError = GuestTrap(f"{export}: guest trapped: {message.splitlines()[0]}",
                                    backtrace=frames, trap_code=code.name if code else None,
                                    **where)
    return err


def _backtrace(trap: wasmtime.Trap | None) -> list[str]:
    if trap is None:
        return []
    out = []
    for frame in trap.frames:
        name = frame.func_name or f"func[{frame.func_index}]"
        out.append(f"{name} @ 0x{frame.module_offset:x}")
    return out
