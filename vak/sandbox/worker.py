"""The OS-sandboxed worker process: ``python -I -m vak.sandbox.worker``.

Started by :class:`vak.sandbox.pool.WorkerPool`; speaks
:mod:`vak.sandbox.protocol` on its stdin/stdout pipes. Life of a worker:

1. move the protocol pipes off fds 0/1 (stray prints cannot corrupt frames);
2. import everything it will ever need (wasmtime, the engine): after step 4
   no file can be opened, so no module can be imported;
3. read ``init`` (engine settings + module bytes of one skill digest);
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
   to the parent as ``host_call`` and blocks for ``host_reply``. The worker
   performs no effect itself. EOF on stdin means "exit".

``--probe`` swaps the wasm engine for :class:`ProbeRunner`, a test-only
runner whose exports try to escape (open files, sockets, fork, exec, signal
the parent) and report what the kernel refused.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from vak import errors as _errors
from vak.errors import ToolCallError, WorkerCrashedError
from vak.identity.manifest import Limits
from vak.sandbox.oslock import restrict_current_process
from vak.sandbox.protocol import DEFAULT_MAX_BODY, Frame, FrameReader, encode_frame, write_all
from vak.sandbox.types import CallOutcome, HostHandler, Runner

__all__ = ["ProbeRunner", "error_from_wire", "error_to_wire", "limits_from_wire", "main"]


# --- error and limits transport (shared with the pool) ------------------------
def error_to_wire(exc: BaseException) -> dict[str, Any]:
    """A ToolCallError as a JSON-ready dict; anything else as WorkerCrashedError."""
    if isinstance(exc, ToolCallError):
        details = orjson.loads(orjson.dumps(exc.to_dict(), default=str))
        details.pop("error", None)
        details.pop("message", None)
        return {"class": type(exc).__name__, "message": exc.message, "details": details}
    return {"class": "WorkerCrashedError", "message": f"{type(exc).__name__}: {exc}",
            "details": {}}


def error_from_wire(
    data: Mapping[str, Any], allowed: tuple[type[ToolCallError], ...] = (ToolCallError,)
) -> ToolCallError:
    """Rebuild an error sent over the pipe; classes outside ``allowed`` become
    :class:`WorkerCrashedError` (a worker must not pick arbitrary exceptions)."""
    name = data.get("class")
    message = data.get("message")
    details = data.get("details")
    cls = getattr(_errors, name, None) if isinstance(name, str) else None
    if (
        not isinstance(cls, type)
        or not issubclass(cls, allowed)
        or not isinstance(message, str)
        or not isinstance(details, dict)
    ):
        return WorkerCrashedError(
            "the worker reported an error the kernel does not accept from it",
            reported_class=str(name)[:64],
        )
    return cls(message[:4096], **{str(k)[:64]: v for k, v in details.items()})


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


# --- the test-only probe runner -------------------------------------------------
def _attempt(action: Callable[[], object]) -> str:
    try:
        action()
    except OSError as exc:
        return f"refused:{exc.errno}"
    return "allowed"


def _libc_call(name: str, *args: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _is_socket(fd: int) -> bool:
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False


class ProbeRunner:
    """Test-only :class:`Runner` (``--probe``): escape attempts and misbehaviour."""

    def __init__(self, out_fd: int) -> None:
        self._out_fd = out_fd

    def call(
        self, module_digest: str, export: str, input_json: bytes, limits: Limits,
        host: HostHandler,
    ) -> CallOutcome:
        start = time.monotonic_ns()
        arg = orjson.loads(input_json) if input_json else {}
        hosts = 0
        if export == "probe":
            out: Any = self._probe(int(arg.get("parent_pid", os.getppid())),
                                   int(arg.get("port", 9)))
        elif export == "echo":
            out = arg
        elif export == "host":
            replies = []
            for fn, fargs in arg["calls"]:
                replies.append(orjson.loads(host(fn, orjson.dumps(fargs))))
                hosts += 1
            out = {"replies": replies}
        elif export == "sleep":
            time.sleep(float(arg["seconds"]))
            out = {}
        elif export == "garbage":
            os.write(self._out_fd, b"\x00\x00\x00\x05\x00\x00\x00\x00{bad}")
            time.sleep(60)
            out = {}
        elif export == "exit":
            os._exit(3)
        else:
            raise _errors.ABIError(f"probe runner has no export {export!r}", export=export)
        return CallOutcome(orjson.dumps(out), 0, time.monotonic_ns() - start, hosts)

    @staticmethod
    def _probe(parent_pid: int, port: int) -> dict[str, str]:
        results: dict[str, str] = {}

        def connect() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.connect(("127.0.0.1", port))

        def fork() -> None:
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)

        def thread() -> None:
            t = threading.Thread(target=lambda: None)
            t.start()
            t.join()

        probes: dict[str, Callable[[], object]] = {
            "read_file": lambda: open("/etc/passwd", "rb").close(),
            "read_proc_self": lambda: open("/proc/self/status", "rb").close(),
            "write_tmp": lambda: open("/tmp/vak-probe-escape", "wb").close(),
            "list_root": lambda: os.listdir("/"),
            "tcp_connect_loopback": connect,
            "unix_socket": lambda: socket.socket(socket.AF_UNIX).close(),
            "socketpair": lambda: [s.close() for s in socket.socketpair()],
            "fork": fork,
            "exec": lambda: os.execv("/bin/true", ["true"]),
            "signal_parent": lambda: os.kill(parent_pid, 0),
            "signal_group": lambda: os.kill(0, 0),
            "unshare_user": lambda: _libc_call("unshare", 0x10000000),
            "ptrace_parent": lambda: _libc_call("ptrace", 16, parent_pid, 0, 0),
            "thread": thread,
        }
        for name, action in probes.items():
            results[name] = _attempt(action)
        # what a compromised guest could find in memory or among inherited fds
        results["environ"] = ",".join(sorted(os.environ))
        results["inherited_sockets"] = ",".join(
            str(fd) for fd in range(256) if _is_socket(fd))
        return results


# --- the worker loop -------------------------------------------------------------
class _ForwardingHost:
    """HostHandler that forwards each call to the parent and waits for its reply."""

    def __init__(self, reader: FrameReader, out_fd: int, call_id: int) -> None:
        self._reader = reader
        self._out_fd = out_fd
        self._id = call_id

    def __call__(self, function: str, args: bytes, /) -> bytes:
        write_all(self._out_fd, encode_frame("host_call", {"id": self._id, "function": function},
                                             args))
        reply = self._reader.read()
        if reply.kind != "host_reply" or reply.header["id"] != self._id:
            raise WorkerCrashedError("parent sent an unexpected frame during a host call")
        if reply.header["ok"]:
            return reply.body
        error = reply.header.get("error")
        raise error_from_wire(error if isinstance(error, dict) else {})


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
        except Exception as exc:  # fail closed: report, then die so the pool replaces us
            write_all(out_fd, encode_frame("error", {"id": call_id, "error": error_to_wire(exc)}))
            os._exit(1)
        else:
            reply = encode_frame("result", {
                "id": call_id, "fuel_used": outcome.fuel_used,
                "duration_ns": outcome.duration_ns, "host_calls": outcome.host_calls,
            }, outcome.output)
        write_all(out_fd, reply)


def _build_engine_runner(config: Mapping[str, Any], module: bytes, digest: str) -> Runner:
    from vak.config import KernelConfig
    from vak.sandbox.engine import Engine  # type: ignore[import-not-found,unused-ignore]

    engine = Engine(KernelConfig(**config))
    engine.compile(module, digest)
    return engine  # type: ignore[no-any-return]


def _pin_package_versions(names: tuple[str, ...]) -> None:
    """Answer ``importlib.metadata.version`` for ``names`` from memory.

    The engine fingerprints its cache with the wasmtime version, which reads
    package metadata from disk; after Landlock that read is refused, so the
    answer is looked up now, while files can still be opened.
    """
    import importlib.metadata as md

    known = {n: md.version(n) for n in names}
    original = md.version

    def version(name: str) -> str:
        return known[name] if name in known else original(name)

    md.version = version


def main(argv: list[str] | None = None) -> int:
    """Worker entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    probe = "--probe" in argv
    in_fd, out_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    sys.stdout = sys.stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent's Ctrl-C is the parent's
    if not probe:
        import wasmtime  # noqa: F401  (imported before the sandbox forbids opening files)

        with contextlib.suppress(ImportError):
            import vak.sandbox.engine
        import vak.config  # noqa: F401

        _pin_package_versions(("wasmtime",))
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
            require=bool(header["require"]),
            cpu_seconds=int(header["config"].get("worker_cpu_seconds", 3600)),
        )
        runner: Runner
        if probe:
            runner = ProbeRunner(out_fd)
        else:
            cfg = {k: v for k, v in header["config"].items() if k != "worker_cpu_seconds"}
            runner = _build_engine_runner(cfg, init.body, str(header["digest"]))
    except Exception as exc:
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
