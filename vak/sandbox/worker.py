"""The OS-sandboxed worker process: ``python -I -m vak.sandbox.worker``.

Started by :class:`vak.sandbox.pool.WorkerPool`; speaks
:mod:`vak.sandbox.protocol` on its stdin/stdout pipes. Life of a worker:

1. move the protocol pipes off fds 0/1 (stray prints cannot corrupt frames);
2. import everything it will ever need (wasmtime, the engine): after step 4
   no file can be opened, so no module can be imported;
3. read ``init`` (engine settings + module bytes of one skill digest, or, for a
   component the parent has in its keyed cache, the compiled component:
   ``precompiled``, so a worker start does not pay a seconds-long compile);
4. **restrict itself while still single-threaded**
   (:func:`vak.sandbox.oslock.restrict_current_process`). Landlock up to
   ABI 7 binds only the calling thread and threads created *later*, and
   seccomp is installed with TSYNC; restricting before wasmtime starts any
   thread (the engine's epoch ticker, Cranelift's parallel compilation) means
   every thread of the worker is under both layers. The price is that the
   module is compiled inside the sandbox, which is also what we want: a
   compiler bug triggered by hostile wasm runs behind the barriers too.
   ``ready`` reports ``threads_at_restrict`` so tests can hold us to it;
5. build the engine, compile the module, send ``ready`` with the barriers;
6. serve ``invoke`` frames one at a time; each guest host call is forwarded
   to the parent as ``host_call`` and blocks for ``host_reply``; a call the
   engine refuses (arguments it cannot read) is forwarded as ``host_refuse``
   so the parent's mediation records that decision too. The worker performs
   no effect itself. EOF on stdin means "exit".

Errors cross the pipe typed (:func:`error_to_wire`): the parent sees the error
the worker's engine raised, and an unexpected exception in the worker arrives
as a :class:`WorkerCrashedError` that carries the exception's class and
bounded message (the worker then exits and is replaced).

Tests start workers through their own entry point that calls :func:`main`
with a different runner (``make_runner``); no test code lives here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import orjson

from vak import errors as _errors
from vak.errors import ToolCallError, WorkerCrashedError
from vak.identity.manifest import Limits
from vak.sandbox.kinds import binary_kind
from vak.sandbox.oslock import restrict_current_process
from vak.sandbox.protocol import DEFAULT_MAX_BODY, Frame, FrameReader, encode_frame, write_all
from vak.sandbox.types import Runner

__all__ = ["RunnerFactory", "error_from_wire", "error_to_wire", "limits_from_wire", "main"]

#: longest error message taken from a worker (or sent by one)
_MAX_MESSAGE = 4096


# --- error and limits transport (shared with the pool) ------------------------
def error_to_wire(exc: BaseException) -> dict[str, Any]:
    """A ToolCallError as a JSON-ready dict; anything else as WorkerCrashedError
    naming the exception's class (its message bounded)."""
    if isinstance(exc, ToolCallError):
        details = orjson.loads(orjson.dumps(exc.to_dict(), default=str))
        details.pop("error", None)
        details.pop("message", None)
        return {"class": type(exc).__name__, "message": exc.message[:_MAX_MESSAGE],
                "details": details}
    return {"class": "WorkerCrashedError",
            "message": f"{type(exc).__name__}: {exc}"[:_MAX_MESSAGE],
            "details": {"cause": type(exc).__name__}}


def error_from_wire(
    data: Mapping[str, Any], allowed: tuple[type[ToolCallError], ...] = (ToolCallError,)
) -> ToolCallError:
    """Rebuild an error sent over the pipe; classes outside ``allowed`` become
    :class:`WorkerCrashedError` (a worker must not pick arbitrary exceptions)."""
    name = data.get("class")
    message = data.get("message")
    details = data.get("details")
    cls = getattr(_errors, name, None) if isinstance(name, str) else None
    if not isinstance(message, str) or not isinstance(details, dict):
        return WorkerCrashedError("the worker reported a malformed error",
                                  reported_class=str(name)[:64])
    if (
        not isinstance(cls, type)
        or not issubclass(cls, (*allowed, WorkerCrashedError))
    ):
        return WorkerCrashedError(
            "the worker reported an error the kernel does not accept from it",
            reported_class=str(name)[:64],
        )
    error_cls = cast("type[ToolCallError]", cls)
    return error_cls(message[:_MAX_MESSAGE], **{str(k)[:64]: v for k, v in details.items()})


def limits_to_wire(limits: Limits) -> dict[str, int]:
    return {
        "max_memory_pages": limits.max_memory_pages,
        "max_execution_time_ms": limits.max_execution_time_ms,
        "max_fuel": limits.max_fuel,
        "max_output_bytes": limits.max_output_bytes,
        "max_host_calls": limits.max_host_calls,
    }


def limits_from_wire(data: Mapping[str, Any]) -> Limits:
    """Raises: WorkerCrashedError: a field is missing or not a non-negative int."""
    values: dict[str, int] = {}
    for name in limits_to_wire(Limits()):
        v = data.get(name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise WorkerCrashedError(f"invoke frame: bad limit {name!r}")
        values[name] = v
    return Limits(**values)


# --- the worker loop -------------------------------------------------------------
class _ForwardingHost:
    """HostHandler that forwards each call (and each refusal) to the parent."""

    def __init__(self, reader: FrameReader, out_fd: int, call_id: int) -> None:
        self._reader = reader
        self._out_fd = out_fd
        self._id = call_id

    def __call__(self, function: str, args: bytes, /) -> bytes:
        ok, body, error = self._ask("host_call", {"function": function}, args)
        if ok:
            return body
        raise error

    def refuse(self, function: str, policy_id: str, reason: str, /) -> BaseException:
        ok, _body, error = self._ask("host_refuse", {
            "function": function, "policy_id": policy_id, "reason": reason[:_MAX_MESSAGE]})
        if ok:
            return WorkerCrashedError("parent accepted a refused host call")
        return error

    def _ask(self, kind: str, fields: Mapping[str, Any],
             body: bytes = b"") -> tuple[bool, bytes, BaseException]:
        write_all(self._out_fd, encode_frame(kind, {"id": self._id, **fields}, body))
        reply = self._reader.read()
        if reply.kind != "host_reply" or reply.header["id"] != self._id:
            raise WorkerCrashedError("parent sent an unexpected frame during a host call")
        error = reply.header.get("error")
        return bool(reply.header["ok"]), reply.body, error_from_wire(
            error if isinstance(error, dict) else {})


def _serve(runner: Runner, digest: str, reader: FrameReader, out_fd: int) -> None:
    while True:
        try:
            frame = reader.read()
        except _errors.VakError:
            return  # parent closed the pipe (or spoke garbage): exit quietly
        if frame.kind != "invoke":
            return
        call_id = int(frame.header["id"])
        try:
            limits = limits_from_wire(frame.header["limits"])
            outcome = runner.call(digest, str(frame.header["export"]), frame.body, limits,
                                  _ForwardingHost(reader, out_fd, call_id))
        except ToolCallError as exc:
            reply = encode_frame("error", {"id": call_id, "error": error_to_wire(exc)})
        # fail closed: report, then die so the pool replaces us
        except Exception as exc:  # noqa: BLE001
            write_all(out_fd, encode_frame("error", {"id": call_id, "error": error_to_wire(exc)}))
            os._exit(1)
        else:
            reply = encode_frame("result", {
                "id": call_id, "fuel_used": outcome.fuel_used,
                "duration_ns": outcome.duration_ns, "host_calls": outcome.host_calls,
            }, outcome.output)
        write_all(out_fd, reply)


#: builds the worker's runner from the init frame: ``(out_fd, header, module) -> Runner``
RunnerFactory = Callable[[int, Mapping[str, Any], bytes], Runner]


def _build_engine_runner(out_fd: int, header: Mapping[str, Any], module: bytes) -> Runner:
    from vak.sandbox.engine import Engine
    from vak.sandbox.settings import EngineSettings

    names = header["host_functions"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise WorkerCrashedError("init frame: host_functions must be a list of names")
    engine = Engine(EngineSettings(**header["config"]), names)
    if header.get("precompiled") is True:
        # the parent's keyed cache entry (it checked the HMAC): no compile here
        engine.load_compiled_component(module, str(header["digest"]))
    elif binary_kind(module) == "component":
        engine.compile_component(module, str(header["digest"]))
    else:
        engine.compile(module, str(header["digest"]))
    return engine


def _pin_package_versions(names: tuple[str, ...]) -> None:
    """Answer ``importlib.metadata.version`` for ``names`` from memory.

    The engine fingerprints its cache with the wasmtime version, which reads
    package metadata from disk; after Landlock that read is refused, so the
    answer is looked up now, while files can still be opened.
    """
    import importlib.metadata as md

    known = {n: md.version(n) for n in names}
    original = md.version

    def version(distribution_name: str) -> str:
        if distribution_name in known:
            return known[distribution_name]
        return original(distribution_name)

    md.version = version


def main(argv: Sequence[str] | None = None, make_runner: RunnerFactory | None = None) -> int:
    """Worker entry point; returns the exit status.

    ``make_runner`` replaces the wasm engine (test entry points only).
    """
    in_fd, out_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    sys.stdout = sys.stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent's Ctrl-C is the parent's
    if make_runner is None:
        import wasmtime  # noqa: F401  (imported before the sandbox forbids opening files)

        with contextlib.suppress(ImportError):
            import vak.sandbox.engine
            import vak.sandbox.settings  # noqa: F401

        _pin_package_versions(("wasmtime",))
        make_runner = _build_engine_runner
    reader = FrameReader(in_fd, DEFAULT_MAX_BODY)
    try:
        init: Frame = reader.read()
    except _errors.VakError:
        return 2
    if init.kind != "init":
        return 2
    header = init.header
    try:
        status = restrict_current_process(
            require=bool(header["require"]), cpu_seconds=int(header["cpu_seconds"]))
        runner = make_runner(out_fd, header, init.body)
    except Exception as exc:  # noqa: BLE001 - reported or converted, never hidden
        err = error_to_wire(exc)
        if isinstance(exc, _errors.VakError) and not isinstance(exc, ToolCallError):
            err = {"class": type(exc).__name__, "message": exc.message, "details": {}}
        write_all(out_fd, encode_frame("fatal", {"error": err}))
        return 1
    write_all(out_fd, encode_frame("ready", {"barriers": status.to_dict()}))
    _serve(runner, str(header["digest"]), reader, out_fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
