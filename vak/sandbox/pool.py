"""``WorkerPool``: the :class:`vak.sandbox.types.Runner` that runs calls in OS-sandboxed workers.

Warm workers are pre-started per module digest (``WorkerSettings.pool_size``
each) so no process starts on the hot path; a worker serves one call at a
time and is retired after ``recycle_after`` calls. The parent keeps the real
mediation: every ``host_call`` a worker forwards is answered by the
``HostHandler`` passed to :meth:`WorkerPool.call`, in the calling thread, and
every ``host_refuse`` (a span the worker's engine could not read) goes to the
handler's ``refuse``, so the decision is recorded in the parent. The handler
counts host calls and enforces ``max_host_calls`` (RULES contract 3); the
limits the worker gets are the call's limits as the kernel passed them.

A worker that dies, hangs past its deadline (``max_execution_time_ms`` +
``hang_margin_ms``, not counting time spent in the parent's host handler), or
sends a malformed or unexpected frame is killed and replaced in the
background; the call raises :class:`WorkerCrashedError`. A failure the worker
reports (its engine's typed error) is raised as that error.

On a host without Landlock or seccomp, :meth:`WorkerPool.register` refuses
(``OSSandboxUnavailableError``) unless ``WorkerSettings.allow_unsandboxed``.

Workers are spawned from one long-lived thread owned by the pool because
``PR_SET_PDEATHSIG`` fires when the *thread* that forked the worker exits.

Example::

    >>> pool = WorkerPool(WorkerSettings(), EngineSettings(), names)  # doctest: +SKIP
    >>> pool.register(digest, module_bytes)                   # doctest: +SKIP
    >>> pool.call(digest, "execute", b'{"a":1}', Limits(), host)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vak.errors import (
    ABIError,
    CapacityError,
    DigestMismatchError,
    HostCallLimitError,
    OSSandboxUnavailableError,
    SkillLoadError,
    SkillTrapError,
    UnknownToolError,
    VakError,
    WorkerCrashedError,
)
from vak.identity.manifest import Limits
from vak.jsonbound import JsonBounds
from vak.sandbox.engine import check_output, component_cache
from vak.sandbox.kinds import binary_kind
from vak.sandbox.oslock import barrier_status
from vak.sandbox.protocol import (
    DEFAULT_MAX_BODY,
    Frame,
    FrameReader,
    encode_frame,
    write_all,
)
from vak.sandbox.settings import EngineSettings, WorkerSettings
from vak.sandbox.types import CallOutcome, HostHandler, refusal
from vak.sandbox.worker import error_from_wire, error_to_wire, limits_to_wire

__all__ = ["WorkerPool"]

#: a worker runs one call at a time: a few pooled slots are plenty
_WORKER_POOL_SLOTS = 2
#: core instances of one call: a component (vak:skill) instantiates up to this many
_WORKER_CORE_INSTANCES = 32
#: errors a worker may report for failing to start (others: WorkerCrashedError)
_FATAL_ERRORS: dict[str, type[VakError]] = {
    cls.__name__: cls
    for cls in (OSSandboxUnavailableError, SkillLoadError, ABIError, DigestMismatchError)
}
#: errors a worker's engine may report for a call (WorkerCrashedError is accepted
#: too, and retires the worker); anything else is a misbehaving worker
_WORKER_ERRORS = (SkillTrapError, CapacityError, UnknownToolError, HostCallLimitError)


@dataclass(slots=True, eq=False)
class _Worker:
    digest: str
    proc: subprocess.Popen[bytes]
    in_fd: int
    reader: FrameReader
    barriers: dict[str, Any] = field(default_factory=dict)
    calls: int = 0
    successor: bool = False  # a replacement was already requested (early recycling)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()
        with contextlib.suppress(OSError):
            os.close(self.in_fd)
        if self.proc.stdout is not None:
            with contextlib.suppress(OSError):
                self.proc.stdout.close()


def _successor_lead(recycle_after: int) -> int:
    # Half the worker's life: a successor needs ~0.2 s to start and compile,
    # which is many calls; it then waits idle (LIFO keeps using the older one).
    return max(1, recycle_after // 2)


class WorkerPool:
    """Runs calls of registered modules in pre-started, OS-sandboxed workers.

    Thread-safe: many threads may ``call`` at once; each call holds one worker.
    """

    def __init__(
        self,
        settings: WorkerSettings,
        engine: EngineSettings,
        host_functions: Sequence[str],
        *,
        command: Sequence[str] | None = None,
        stderr: int | None = subprocess.DEVNULL,
    ) -> None:
        """``engine`` configures each worker's engine (its pool is shrunk and
        its module cache dropped: a worker cannot open files); ``command``
        (tests only) replaces ``python -I -m vak.sandbox.worker``.

        Raises:
            OSSandboxUnavailableError: ``require_os_sandbox`` is set and this
                kernel lacks Landlock or seccomp (refuse loudly, up front).
        """
        self._offered = barrier_status()
        if settings.require_os_sandbox and not self._offered.complete:
            raise OSSandboxUnavailableError(
                "require_os_sandbox is set but this kernel lacks: "
                + ", ".join(self._offered.missing),
                missing=list(self._offered.missing), barriers=self._offered.to_dict(),
            )
        self._config = settings
        self._engine = dataclasses.replace(
            engine, pool_total_instances=_WORKER_CORE_INSTANCES,
            pool_total_memories=_WORKER_POOL_SLOTS, pool_total_tables=2 * _WORKER_POOL_SLOTS,
            module_cache_dir=None)
        # the parent's own keyed cache (HMAC-checked here, in the parent): a worker
        # is handed a component compiled already instead of compiling it again
        self._artefacts = component_cache(engine)
        #: digests whose cached artefact a worker refused (they get the module instead)
        self._stale: set[str] = set()
        self._bounds = JsonBounds(engine.output_max_depth, engine.output_max_string_chars,
                                  engine.output_max_items)
        self._names = tuple(host_functions)
        self._command = tuple(command or (sys.executable, "-I", "-m", "vak.sandbox.worker"))
        self._stderr = stderr
        self._modules: dict[str, bytes] = {}
        self._idle: dict[str, list[_Worker]] = {}
        self._alive: dict[str, int] = {}  # started or starting, per digest
        self._failure: dict[str, VakError] = {}
        self._barriers: dict[str, Any] | None = None
        self._cond = threading.Condition()
        self._closed = False
        self._next_id = 0
        self._spawn_q: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._spawner = threading.Thread(target=self._spawn_loop, name="vak-worker-spawner",
                                         daemon=True)
        self._spawner.start()

    # --- public -------------------------------------------------------------
    def register(self, digest: str, module: bytes) -> None:
        """Make ``module`` (already signature-verified) callable; starts its warm workers.

        Raises:
            OSSandboxUnavailableError: this host lacks Landlock or seccomp and
                the operator did not set ``allow_unsandboxed`` (fail closed).
        """
        if not self._offered.complete and not self._config.allow_unsandboxed:
            raise OSSandboxUnavailableError(
                "this host lacks OS barriers the worker needs ("
                + ", ".join(self._offered.missing) + "), so skills routed to the worker "
                "(untrusted tier) are refused; run on a kernel with Landlock and seccomp, or "
                "set [worker] allow_unsandboxed = true to run them with fewer barriers",
                missing=list(self._offered.missing), barriers=self._offered.to_dict(),
                field="worker.allow_unsandboxed")
        with self._cond:
            if digest in self._modules:
                return
            self._modules[digest] = bytes(module)
            self._alive[digest] = 0
            self._idle[digest] = []
            for _ in range(max(1, self._config.pool_size)):
                self._request_spawn(digest)

    def barriers(self) -> dict[str, Any] | None:
        """The barriers the last started worker reported it applied (``BarrierStatus`` dict)."""
        with self._cond:
            return self._barriers

    def pids(self, digest: str) -> tuple[int, ...]:
        """PIDs of the idle workers of ``digest`` (for status and tests)."""
        with self._cond:
            return tuple(w.pid for w in self._idle.get(digest, ()))

    def wait_ready(self, digest: str, count: int | None = None, timeout: float = 30.0) -> None:
        """Block until ``count`` (default: pool size) workers of ``digest`` are idle.

        Raises:
            WorkerCrashedError: not ready in time.
            OSSandboxUnavailableError: the workers cannot restrict themselves.
        """
        want = max(1, self._config.pool_size) if count is None else count
        end = time.monotonic() + timeout
        with self._cond:
            while len(self._idle.get(digest, ())) < want:
                self._raise_failure(digest)
                if not self._cond.wait(max(0.0, end - time.monotonic())):
                    raise WorkerCrashedError(f"workers for {digest[:16]} not ready in {timeout}s")

    def call(
        self, module_digest: str, export: str, input_json: bytes, limits: Limits,
        host: HostHandler,
    ) -> CallOutcome:
        """Run one export call in a worker (see :class:`vak.sandbox.types.Runner`).

        Raises:
            ToolCallError: the guest's failure as the worker's engine typed it
                (SkillTrapError subclasses, CapacityError), the host handler's own
                error or its ``refuse`` result (re-raised unchanged), or
                WorkerCrashedError (the worker was killed and replaced).
            OSSandboxUnavailableError: workers cannot start with the required barriers.
        """
        worker, call_id = self._acquire(module_digest)
        healthy = False
        try:
            result = self._converse(worker, call_id, export, input_json, limits, host)
            healthy = True  # the conversation ended cleanly: the worker may serve again
        finally:
            self._release(worker, healthy)
        if isinstance(result, Exception):
            raise result
        return result

    def close(self) -> None:
        """Stop every worker and the spawner; idempotent."""
        with self._cond:
            self._closed = True
            workers = [w for ws in self._idle.values() for w in ws]
            self._idle.clear()
            self._cond.notify_all()
        self._spawn_q.put(None)
        for w in workers:
            w.kill()
        if threading.current_thread() is not self._spawner:
            # a start in flight ends within its start timeout; then the spawner exits
            self._spawner.join(self._config.start_timeout_ms / 1000)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- workers ---------------------------------------------------------------
    def _request_spawn(self, digest: str) -> None:
        self._alive[digest] += 1
        self._spawn_q.put(digest)

    def _spawn_loop(self) -> None:
        while (digest := self._spawn_q.get()) is not None:
            with self._cond:
                closed = self._closed
            if closed:
                continue  # drain to the sentinel: a closed pool starts nothing more
            try:
                worker = self._start(digest)
            except VakError as exc:
                with self._cond:
                    self._alive[digest] -= 1
                    self._failure[digest] = exc
                    self._cond.notify_all()
                continue
            with self._cond:
                if self._closed:
                    worker.kill()
                    continue
                self._failure.pop(digest, None)
                self._barriers = worker.barriers
                self._idle[digest].append(worker)
                self._cond.notify_all()

    def _start(self, digest: str) -> _Worker:
        """Start one worker; a component is served compiled from the cache when it can be.

        A worker that cannot load the cached artefact (fatal at start) is
        started again with the module, which it then compiles itself.
        """
        artefact = self._artefact(digest)
        if artefact is None:
            return self._spawn(digest, self._modules[digest], precompiled=False)
        try:
            return self._spawn(digest, artefact, precompiled=True)
        except SkillLoadError:
            with self._cond:
                self._stale.add(digest)
            return self._spawn(digest, self._modules[digest], precompiled=False)

    def _artefact(self, digest: str) -> bytes | None:
        """The compiled component for ``digest`` from the keyed cache, if there and authentic."""
        with self._cond:
            module, stale = self._modules[digest], digest in self._stale
        if stale or binary_kind(module) != "component":
            return None
        blob = self._artefacts.load(digest)
        return blob if blob is not None and len(blob) <= DEFAULT_MAX_BODY else None

    def _spawn(self, digest: str, body: bytes, *, precompiled: bool) -> _Worker:
        proc = subprocess.Popen(
            self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            close_fds=True, start_new_session=True, env={"PATH": "/usr/bin:/bin"},
        )
        assert proc.stdin is not None and proc.stdout is not None
        in_fd = os.dup(proc.stdin.fileno())
        proc.stdin.close()
        os.set_blocking(in_fd, False)
        worker = _Worker(digest, proc, in_fd, FrameReader(proc.stdout.fileno()))
        cfg = self._config
        init = {
            "digest": digest,
            "require": cfg.require_os_sandbox,
            "config": dataclasses.asdict(self._engine),
            "host_functions": list(self._names),
            "cpu_seconds": cfg.cpu_seconds,
            "precompiled": precompiled,
        }
        deadline = time.monotonic() + cfg.start_timeout_ms / 1000
        try:
            write_all(in_fd, encode_frame("init", init, body), deadline)
            ready = worker.reader.read(deadline)
        except VakError:
            worker.kill()
            raise
        if ready.kind == "fatal":
            worker.kill()
            err = ready.header["error"]
            cls = _FATAL_ERRORS.get(str(err.get("class")), WorkerCrashedError)
            raise cls(f"worker for {digest[:16]} failed to start: {err.get('message')}",
                      digest=digest)
        if ready.kind != "ready":
            worker.kill()
            raise WorkerCrashedError(f"worker sent {ready.kind!r} instead of 'ready'")
        worker.barriers = dict(ready.header["barriers"])
        try:
            self._verify_from_outside(worker)
        except VakError:
            worker.kill()
            raise
        return worker

    def _verify_from_outside(self, worker: _Worker) -> None:
        """Check the worker's own report against what ``/proc`` says about it.

        The report is sent after the module was compiled inside the sandbox, so
        it is not taken on trust: no_new_privs and seccomp filter mode are
        read from the kernel.

        Raises:
            WorkerCrashedError: the worker is not restricted as it claims.
        """
        try:
            with open(f"/proc/{worker.pid}/status", encoding="ascii") as fh:
                status = dict(line.split(":", 1) for line in fh if ":" in line)
        except OSError as exc:
            raise WorkerCrashedError(f"cannot inspect worker {worker.pid}: {exc}") from None
        if status.get("NoNewPrivs", "").strip() != "1":
            raise WorkerCrashedError("worker is not no_new_privs", pid=worker.pid)
        if self._offered.seccomp and status.get("Seccomp", "").strip() != "2":
            raise WorkerCrashedError("worker has no seccomp filter", pid=worker.pid)

    def _raise_failure(self, digest: str) -> None:
        if self._closed:
            raise WorkerCrashedError("the worker pool is closed")
        if digest not in self._modules:
            raise WorkerCrashedError(f"module {digest[:16]} is not registered with the pool")
        failure = self._failure.get(digest)
        if failure is not None and not self._idle[digest] and self._alive[digest] == 0:
            del self._failure[digest]  # raised once; the next call tries a fresh worker
            raise failure

    def _acquire(self, digest: str) -> tuple[_Worker, int]:
        end = time.monotonic() + self._config.start_timeout_ms / 1000
        with self._cond:
            while True:
                self._raise_failure(digest)
                if self._idle[digest]:
                    self._next_id = (self._next_id + 1) % (1 << 62)
                    return self._idle[digest].pop(), self._next_id
                if self._alive[digest] == 0:
                    self._request_spawn(digest)
                if not self._cond.wait(max(0.0, end - time.monotonic())):
                    raise WorkerCrashedError(f"no worker for {digest[:16]} became available")

    def _release(self, worker: _Worker, healthy: bool) -> None:
        worker.calls += 1
        recycle_after = self._config.recycle_after
        retire = not healthy or worker.calls >= recycle_after
        if retire:
            worker.kill()
        with self._cond:
            # Start the successor a few calls early so that recycling never puts
            # a process start on the hot path.
            wants_successor = retire or worker.calls >= recycle_after - _successor_lead(
                recycle_after)
            if wants_successor and not worker.successor and not self._closed:
                worker.successor = True
                self._request_spawn(worker.digest)
            if retire:
                self._alive[worker.digest] -= 1
            elif self._closed:
                worker.kill()
            else:
                self._idle[worker.digest].append(worker)
            self._cond.notify_all()

    # --- one call ----------------------------------------------------------------
    def _converse(
        self, w: _Worker, call_id: int, export: str, input_json: bytes, limits: Limits,
        host: HostHandler,
    ) -> CallOutcome | Exception:
        """The call's outcome, or the error to raise while keeping the worker.

        Raises (and so retires the worker) on any misbehaviour.
        """
        budget = (limits.max_execution_time_ms + self._config.hang_margin_ms) / 1000
        # host-call arguments cannot exceed guest memory, output its own limit
        w.reader.max_body = max(limits.max_output_bytes, limits.max_memory_pages << 16)
        deadline = time.monotonic() + budget
        write_all(w.in_fd, encode_frame(
            "invoke", {"id": call_id, "export": export, "limits": limits_to_wire(limits)},
            input_json), deadline)
        host_calls = 0
        host_error: Exception | None = None
        while True:
            frame = w.reader.read(deadline)
            if frame.header.get("id") != call_id:
                raise WorkerCrashedError("worker answered a call it was not given", pid=w.pid)
            if frame.kind in ("host_call", "host_refuse"):
                host_calls += 1
                started = time.monotonic()
                host_error = self._host_call(w, frame, host, host_error)
                deadline += time.monotonic() - started  # parent time is not the worker's
            elif frame.kind == "result":
                if host_error is not None:
                    raise host_error  # the guest must trap on a failed host call
                return self._outcome(w, frame, limits, host_calls)
            elif frame.kind == "error":
                if host_error is not None:
                    return host_error  # the parent's own exception, not the worker's story
                err = error_from_wire(frame.header["error"], _WORKER_ERRORS)
                if isinstance(err, WorkerCrashedError):
                    raise err
                return err
            else:
                raise WorkerCrashedError(f"unexpected {frame.kind!r} frame", pid=w.pid)

    def _host_call(
        self, w: _Worker, frame: Frame, host: HostHandler, previous: Exception | None,
    ) -> Exception | None:
        """Answer one forwarded host call or refusal; returns the call's error, if any.

        After a failed host call the guest must trap: a further call is not
        performed, it gets the first error again.
        """
        function = str(frame.header["function"])
        if function not in self._names:
            raise WorkerCrashedError(f"worker forwarded unknown host function {function!r}",
                                     pid=w.pid)
        error: Exception | None = previous
        reply = b""
        try:
            if error is None and frame.kind == "host_refuse":
                refused = refusal(host, function, str(frame.header["policy_id"]),
                                  str(frame.header["reason"]))
                error = refused if isinstance(refused, Exception) else WorkerCrashedError(
                    f"refusal of {function} produced {type(refused).__name__}")
            elif error is None:
                reply = host(function, frame.body)
        except Exception as exc:  # noqa: BLE001 - the handler's own failure is the call's cause
            error = exc
        fields: dict[str, Any] = {"id": frame.header["id"], "ok": error is None}
        if error is not None:
            fields["error"] = error_to_wire(error)
        write_all(w.in_fd, encode_frame("host_reply", fields, reply),
                  time.monotonic() + self._config.hang_margin_ms / 1000)
        return error

    def _outcome(self, w: _Worker, frame: Frame, limits: Limits,
                 host_calls: int) -> CallOutcome:
        """The worker's result, checked again here: the worker is not trusted.

        Raises:
            WorkerCrashedError: output over its limit or a miscounted call.
            ABIError, OutputStructureError: output not JSON or over a bound
                (the worker's engine should have refused it: retired).
        """
        if len(frame.body) > limits.max_output_bytes:
            raise WorkerCrashedError("worker returned output over max_output_bytes", pid=w.pid)
        check_output(frame.body, self._bounds)
        if int(frame.header["host_calls"]) != host_calls:
            raise WorkerCrashedError("worker miscounted its host calls", pid=w.pid)
        return CallOutcome(frame.body, int(frame.header["fuel_used"]),
                           int(frame.header["duration_ns"]), host_calls)
