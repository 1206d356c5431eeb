"""The front of ``vak serve``: one listening socket, N kernel workers behind it.

The front never handles an MCP request itself. It accepts a connection,
*peeks* at its first request's head (``MSG_PEEK``: nothing is consumed),
picks the worker -- the one a ``Mcp-Session-Id`` names (``w<i>-...``), else
the next ready worker in turn -- and hands the connection over whole
(``SCM_RIGHTS``); that worker's HTTP server reads the request as if it had
accepted it. So the front costs one peek per *connection*, not per request,
and is never the bottleneck of keep-alive clients. A request on a handed-over
connection naming another worker's session is answered 421 Misdirected
Request with ``connection: close`` by that worker, so the client retries on a
new connection, which is routed right (the MCP client keeps one connection
per session anyway).

The front answers ``/healthz`` (200 while it runs) and ``/readyz`` (200 once
every worker has loaded its kernel and until a drain starts; 503 otherwise)
itself, and keeps:

* ``<state_dir>/serve/serve.json``: pid, address, control socket, workers and
  their logs (written once all are ready, removed at exit) -- how
  ``vak reload --config`` finds the server;
* ``<state_dir>/serve/control.sock`` (0600): ``{"op": "reload"}`` reloads every
  worker and answers ``{"ok": ..., "workers": [...]}``.

Signals: SIGTERM and SIGINT drain (stop accepting, every worker drains and
closes its kernel, exit 0 when every worker closed cleanly); SIGHUP reloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from vak.serve.naming import worker_of_session
from vak.serve.settings import ServeSettings

__all__ = ["Front", "WorkerHandle"]

_log = logging.getLogger("vak.serve")
#: most bytes of a request head the front peeks at before it gives up on it
_MAX_HEAD = 16384
#: a client that has not sent its request head by then is dropped
_HEAD_TIMEOUT = 10.0
_HEALTH = {b"/healthz", b"/readyz"}
#: connections accepted but not yet handed over (their head still coming); past this
#: a new one is closed at once, so slow clients cannot pile up descriptors
_MAX_PENDING = 1024
#: a worker that dies after serving is restarted, at most this often per window
_MAX_RESTARTS, _RESTART_WINDOW = 5, 60.0


@dataclass
class WorkerHandle:
    """One worker process and the front's two channels to it."""

    index: int
    process: subprocess.Popen[bytes]
    conns: socket.socket
    control: socket.socket
    ready: bool = False
    closed: bool = False
    log: str = ""
    pending: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    failure: str = ""
    #: when this worker index was restarted (monotonic), within the restart window
    restarts: list[float] = field(default_factory=list)
    #: set once the control channel has been read to its end (every event seen)
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class Front:
    """Spawn the workers, route connections, answer health, drain and reload."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.workers: list[WorkerHandle] = []
        self.draining = False
        self._turn = itertools.count()
        self._ids = itertools.count(1)
        self._listener: socket.socket | None = None
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._control_server: asyncio.AbstractServer | None = None
        self.port = 0
        self._pending = 0

    # ------------------------------------------------------------ lifecycle
    def run(self) -> int:
        """Serve until drained; the exit code (0: every worker closed cleanly)."""
        return asyncio.run(self._main())

    async def _main(self) -> int:
        s = self.settings
        self._listener = _listen(s.host, s.port)
        self.port = self._listener.getsockname()[1]
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._begin_drain)
        loop.add_signal_handler(signal.SIGHUP, self._spawn_task_reload)
        s.serve_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            s.control_path.unlink()
        previous = os.umask(0o177)  # the socket is 0600 from its first moment
        try:
            self._control_server = await asyncio.start_unix_server(self._control,
                                                                   s.control_path)
        finally:
            os.umask(previous)
        for i in range(s.workers):
            self.workers.append(self._spawn(i))
        for w in self.workers:
            self._keep(self._watch(w))
        self._keep(self._accept_loop())
        _log.info("vak serve: http://%s/mcp, %d workers starting", self.address, s.workers)
        await self._stop.wait()
        code = await self._drain()
        return code

    @property
    def address(self) -> str:
        host = self.settings.host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    def _keep(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _spawn(self, index: int) -> WorkerHandle:
        s = self.settings
        conn_front, conn_worker = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ctl_front, ctl_worker = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        argv = [sys.executable, "-m", "vak.serve.worker", "--config", str(s.config_path),
                "--index", str(index), "--workers", str(s.workers),
                "--conn-fd", str(conn_worker.fileno()),
                "--control-fd", str(ctl_worker.fileno()), "--listen-host", s.host,
                "--drain-timeout", str(s.drain_timeout), "--log-format", s.log_format,
                "--log-level", s.log_level]
        if s.token_file is not None:
            argv += ["--token-file", str(s.token_file)]
        # the worker starts with SIGTERM and SIGINT ignored (inherited through exec) and
        # installs its own handlers once it can close its kernel; the drain itself is
        # the control channel's "drain" and the connection channel's end
        process = subprocess.Popen(argv, pass_fds=(conn_worker.fileno(), ctl_worker.fileno()),
                                   stdin=subprocess.DEVNULL, preexec_fn=_ignore_stop_signals)
        conn_worker.close()
        ctl_worker.close()
        conn_front.setblocking(False)
        return WorkerHandle(index, process, conn_front, ctl_front)

    def _begin_drain(self) -> None:
        if not self.draining:
            self.draining = True
            _log.info("vak serve: draining (in-flight calls finish, every log closes)")
            self._stop.set()

    async def _drain(self) -> int:
        if self._listener is not None:
            asyncio.get_running_loop().remove_reader(self._listener.fileno())
            self._listener.close()
        for w in self.workers:
            w.conns.close()  # the worker takes no new connection
            with contextlib.suppress(OSError):
                w.control.send(b'{"op": "drain"}\n')
            if w.process.poll() is None:
                w.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.drain_timeout + 30
        code = 0
        for w in self.workers:
            rc = await _wait_exit(w.process, deadline)
            if rc is None:
                _log.error("worker %d did not drain in time: killed", w.index)
                w.process.kill()
                rc = await _wait_exit(w.process, time.monotonic() + 5)
            with contextlib.suppress(TimeoutError):  # its last events (closed) read
                await asyncio.wait_for(w.ended.wait(), 5)
            if rc != 0 or not w.closed:
                _log.error("worker %d exited with %s%s", w.index, rc,
                           "" if w.closed else " before closing its kernel")
                code = 1
        if self._control_server is not None:
            self._control_server.close()
        for path in (self.settings.state_path, self.settings.control_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        _log.info("vak serve: stopped (%s)", "every log closed" if code == 0 else "with errors")
        return code

    # ------------------------------------------------------------ workers
    async def _watch(self, w: WorkerHandle) -> None:
        """Read a worker's control channel until it closes."""
        w.control.setblocking(False)
        reader, _ = await asyncio.open_connection(sock=w.control)
        while True:
            line = await reader.readline()
            if not line:
                break
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            event = msg.get("event")
            if event == "ready":
                w.ready, w.log = True, str(msg.get("log", ""))
                _log.info("worker %d ready (pid %s, log %s)", w.index, msg.get("pid"), w.log)
                if all(x.ready for x in self.workers):
                    self._write_state()
            elif event == "reloaded":
                fut = w.pending.pop(int(msg.get("id") or 0), None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
            elif event == "closed":
                w.closed = True
            elif event == "failed":
                w.failure = str(msg.get("message", ""))
        w.ended.set()
        was_ready, w.ready = w.ready, False
        for fut in w.pending.values():
            if not fut.done():
                fut.set_result({"ok": False, "message": "the worker exited"})
        if self.draining:
            return
        recent = [t for t in w.restarts if time.monotonic() - t < _RESTART_WINDOW]
        if was_ready and not w.failure and len(recent) < _MAX_RESTARTS:
            # a worker that served and then died (killed, crashed): start it again; its
            # sessions are gone (404, clients open new ones), its log is recovered on open
            _log.error("worker %d exited unexpectedly (%s); restarting it", w.index,
                       await _wait_exit(w.process, time.monotonic() + 5))
            await asyncio.sleep(0.5)
            if self._stop.is_set():  # a drain began meanwhile
                return
            fresh = self._spawn(w.index)
            fresh.restarts = [*recent, time.monotonic()]
            self.workers[w.index] = fresh
            self._keep(self._watch(fresh))
            return
        _log.error("worker %d exited%s; stopping", w.index,
                   f": {w.failure}" if w.failure else " (restarting too often)"
                   if was_ready else " before it was ready")
        self._begin_drain()

    def _write_state(self) -> None:
        s = self.settings
        state = {"pid": os.getpid(), "listen": self.address, "url": f"http://{self.address}/mcp",
                 "control": str(s.control_path), "config": str(s.config_path),
                 "workers": [{"index": w.index, "pid": w.process.pid, "log": w.log}
                             for w in self.workers]}
        tmp = s.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, s.state_path)
        _log.info("vak serve: ready on http://%s/mcp", self.address)

    def _spawn_task_reload(self) -> None:
        self._keep(self.reload())

    async def reload(self) -> dict[str, Any]:
        """Reload every worker; ok only when every worker installed the new set."""
        loop = asyncio.get_running_loop()
        futures = []
        for w in self.workers:
            rid = next(self._ids)
            fut: asyncio.Future[dict[str, Any]] = loop.create_future()
            w.pending[rid] = fut
            with contextlib.suppress(OSError):
                w.control.send(json.dumps({"op": "reload", "id": rid}).encode() + b"\n")
            futures.append((w, fut))
        answers = []
        for w, fut in futures:
            try:
                msg = await asyncio.wait_for(fut, 120)
            except TimeoutError:
                msg = {"ok": False, "message": "no answer within 120 s"}
            answers.append({"worker": w.index, **{k: v for k, v in msg.items()
                                                  if k not in ("event", "id")}})
        ok = all(a.get("ok") for a in answers)
        _log.log(logging.INFO if ok else logging.ERROR, "vak serve: reload %s",
                 "done" if ok else "refused")
        return {"ok": ok, "workers": answers}

    # ------------------------------------------------------------ control socket
    async def _control(self, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            try:
                op = json.loads(line).get("op")
            except (ValueError, AttributeError, RecursionError):
                op = None
            if op == "reload":
                answer = await self.reload()
            elif op == "status":
                answer = {"ok": True, "ready": self.ready, "draining": self.draining,
                          "workers": [{"index": w.index, "ready": w.ready, "log": w.log}
                                      for w in self.workers]}
            else:
                answer = {"ok": False, "message": "unknown op (valid: reload, status)"}
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, OSError):
            pass
        finally:
            writer.close()

    # ------------------------------------------------------------ connections
    @property
    def ready(self) -> bool:
        return bool(self.workers) and all(w.ready for w in self.workers) and not self.draining

    async def _accept_loop(self) -> None:
        assert self._listener is not None
        loop = asyncio.get_running_loop()
        while not self.draining:
            try:
                conn, _ = await loop.sock_accept(self._listener)
            except OSError:
                # closed by the drain (the loop then ends), or out of descriptors: back off
                await asyncio.sleep(0.05)
                continue
            if self._pending >= _MAX_PENDING:
                conn.close()
                continue
            self._keep(self._route(conn))

    async def _route(self, conn: socket.socket) -> None:
        self._pending += 1
        try:
            await self._hand_over(conn)
        finally:
            self._pending -= 1
            conn.close()

    async def _hand_over(self, conn: socket.socket) -> None:
        try:
            head = await _peek_head(conn)
            if head is None:
                return
            path, session = _parse_head(head)
            if path in _HEALTH:
                await self._health(conn, path, len(head))
                return
            target = self._pick(session)
            if isinstance(target, int):
                await _reply(conn, target, {"status": "unavailable" if target == 503
                                            else "session not found"})
                return
            socket.send_fds(target.conns, [b"c"], [conn.fileno()])
        except OSError:
            pass

    def _pick(self, session: str | None) -> WorkerHandle | int:
        """The worker for a request, or the HTTP status to answer instead.

        A session's worker if the id names one (404 when that worker is gone:
        the session is, and MCP clients then open a new one -- another worker
        would only answer 421); else the next ready worker in turn (503: none).
        """
        if session is not None:
            index = worker_of_session(session, len(self.workers))
            if index is not None:
                worker = self.workers[index]
                return worker if worker.ready else 404
        ready = [w for w in self.workers if w.ready]
        if not ready or self.draining:
            return 503
        return ready[next(self._turn) % len(ready)]

    async def _health(self, conn: socket.socket, path: bytes, head_len: int) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError):
            await loop.sock_recv(conn, head_len)  # consume the request head
        if path == b"/healthz":
            await _reply(conn, 200, {"status": "ok"})
        else:
            await _reply(conn, 200 if self.ready else 503, {
                "ready": self.ready, "draining": self.draining,
                "workers": [{"index": w.index, "ready": w.ready} for w in self.workers]})


def _ignore_stop_signals() -> None:
    """In the forked child, before exec: a drain signal cannot kill a starting worker."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def _peek_head(conn: socket.socket) -> bytes | None:
    """The first request's head (through the blank line), left unread in the socket."""
    loop = asyncio.get_running_loop()
    conn.setblocking(False)
    deadline = loop.time() + _HEAD_TIMEOUT
    while True:
        try:
            data: bytes | None = conn.recv(_MAX_HEAD, socket.MSG_PEEK)
        except BlockingIOError:
            data = None
        if data == b"":
            return None  # closed before sending a request
        if data:
            end = data.find(b"\r\n\r\n")
            if end >= 0:
                return data[:end + 4]
            if len(data) >= _MAX_HEAD:
                return None
        remaining = deadline - loop.time()
        if remaining <= 0:
            return None
        if data:
            await asyncio.sleep(0.002)  # a partial head stays readable: poll for the rest
            continue
        fut: asyncio.Future[None] = loop.create_future()
        loop.add_reader(conn.fileno(), _wake, fut)
        try:
            await asyncio.wait_for(fut, remaining)
        except TimeoutError:
            return None
        finally:
            loop.remove_reader(conn.fileno())


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _parse_head(head: bytes) -> tuple[bytes, str | None]:
    """The request path (no query) and the ``Mcp-Session-Id`` of a request head."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    target = parts[1] if len(parts) == 3 else b""
    path = target.split(b"?", 1)[0]
    session = None
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"mcp-session-id":
            try:
                session = value.strip().decode("ascii")
            except UnicodeDecodeError:
                session = None
    return path, session


async def _reply(conn: socket.socket, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}.get(status, "Error")
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(data)}\r\ncache-control: no-store\r\n"
            "connection: close\r\n\r\n").encode()
    with contextlib.suppress(OSError):
        await asyncio.get_running_loop().sock_sendall(conn, head + data)


async def _wait_exit(process: subprocess.Popen[bytes], deadline: float) -> int | None:
    while time.monotonic() < deadline:
        rc = process.poll()
        if rc is not None:
            return rc
        await asyncio.sleep(0.05)
    return process.poll()
