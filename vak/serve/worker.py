"""One ``vak serve`` worker: a whole kernel behind an MCP streamable-HTTP app.

Started by the front (:mod:`vak.serve.front`) as ``python -m vak.serve.worker``
with two inherited sockets: the *connection channel*, on which the front hands
over accepted client connections (``SCM_RIGHTS``, the bytes still unread:
the front only peeked at them), and the *control channel*, JSON lines both
ways (``ready``, ``reload``/``reloaded``, ``drain``).

Invariants:

* MCP session ids name this worker (``w<i>-<hex>``, :mod:`vak.serve.naming`),
  so the front sends every later request of a session here;
* drain (SIGTERM, SIGINT, ``drain`` or the front going away): no new
  connection is taken, open connections close once their response is sent,
  every call in flight finishes and is answered, the MCP sessions end, and
  only then does the kernel close -- so the log ends with a clean close;
* a reload (:meth:`vak.kernel.Kernel.reload`) runs off the event loop and is
  answered on the control channel with the new digest or the error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import uvicorn

from vak.config import KernelConfig
from vak.errors import VakError
from vak.invocation import Invocation, Principal
from vak.kernel import Kernel
from vak.serve.auth import PRINCIPAL_KEY, BearerGate, Message, Receive, Scope, Send
from vak.serve.logsetup import configure_logging
from vak.serve.naming import new_session_id, worker_config, worker_of_session
from vak.serve.tokens import TokenFile

__all__ = ["ServedKernel", "main"]

_log = logging.getLogger("vak.serve")
#: idle keep-alive connections are closed after this many seconds
_KEEP_ALIVE_S = 60


class ServedKernel(Kernel):
    """A kernel that knows how many calls are running, so a drain can wait for them."""

    def __init__(self, config: KernelConfig) -> None:
        self._running = 0
        self._idle = threading.Condition()
        super().__init__(config)

    def invoke(self, name: str, input: Mapping[str, Any] | None = None, *,
               principal: Principal | None = None, session: str | None = None,
               call_id: str | None = None) -> Invocation:
        with self._idle:
            self._running += 1
        try:
            return super().invoke(name, input, principal=principal, session=session,
                                  call_id=call_id)
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no call runs (True) or ``timeout`` seconds pass (False)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._running == 0, timeout)


class _SessionIds:
    """Stands in for ``uuid4`` in the MCP session manager: ids that name this worker."""

    def __init__(self, index: int) -> None:
        self.index = index

    def __call__(self) -> _SessionIds:
        return self

    @property
    def hex(self) -> str:
        return new_session_id(self.index)


class _Misdirected:
    """Sessions stay where their id says: the two checks of it, on this worker.

    * A request for another worker's session, on a connection handed here (a
      client or a proxy pooling connections may send a later request of
      another session on it), gets HTTP's 421 Misdirected Request with
      ``connection: close``: the client retries on a new connection, which the
      front routes to the right worker.
    * A session opened here must carry an id naming this worker (the MCP SDK's
      id source is replaced at start, :class:`_SessionIds`); should the SDK stop
      using it, the opening answer is refused (500) instead of handing out a
      session the front would route anywhere.
    """

    def __init__(self, app: Any, index: int, workers: int) -> None:
        self.app = app
        self.index = index
        self.workers = workers
        self.prefix = f"w{index}-".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers") or ():
            if name == b"mcp-session-id":
                owner = worker_of_session(value.decode("latin-1"), self.workers)
                if owner is not None and owner != self.index:
                    await send({"type": "http.response.start", "status": 421, "headers": [
                        (b"content-length", b"0"), (b"connection", b"close")]})
                    await send({"type": "http.response.body", "body": b""})
                    return
                await self.app(scope, receive, send)
                return
        await self.app(scope, receive, self._checked(send))

    def _checked(self, send: Send) -> Send:
        refused = False

        async def checked(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start":
                for name, value in message.get("headers") or ():
                    if name.lower() == b"mcp-session-id" and not value.startswith(self.prefix):
                        _log.error("worker %d: the MCP SDK handed out a session id that does "
                                   "not name this worker; refused", self.index)
                        refused = True
                        message = {"type": "http.response.start", "status": 500,
                                   "headers": [(b"content-length", b"0")]}
            elif refused:
                if not message.get("more_body"):
                    await send({"type": "http.response.body", "body": b""})
                return
            await send(message)

        return checked


class _InFlight:
    """ASGI middleware counting HTTP requests whose response is not finished."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") == "GET":
            # a GET is the session's server-to-client stream: it ends with the session
            await self.app(scope, receive, send)
            return
        self.count += 1
        self.idle.clear()
        try:
            await self.app(scope, receive, send)
        finally:
            self.count -= 1
            if self.count == 0:
                self.idle.set()


class _Worker:
    def __init__(self, args: argparse.Namespace) -> None:
        self.index: int = args.index
        self.workers: int = args.workers
        self.conn_chan = socket.socket(fileno=args.conn_fd)
        self.ctl = socket.socket(fileno=args.control_fd)
        self.token_path = Path(args.token_file) if args.token_file else None
        self.tokens: TokenFile | None = None
        self.listen_host: str = args.listen_host
        self.drain_timeout: float = args.drain_timeout
        self.config_path = Path(args.config)
        self.kernel: ServedKernel | None = None
        self.server: _HandedServer | None = None
        self.log_path = Path()
        self.ctl_lock = threading.Lock()
        #: SIGTERM/SIGINT before the server runs: stop once the kernel is open
        self.stop_requested = False

    def early_stop(self, sig: int, frame: object) -> None:
        self.stop_requested = True

    # ------------------------------------------------------------ control channel
    def tell(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\n"
        with self.ctl_lock, contextlib.suppress(OSError):
            self.ctl.sendall(data)

    def load_tokens(self) -> None:
        if self.token_path is not None:
            self.tokens = TokenFile.load(self.token_path)

    def start_kernel(self) -> ServedKernel:
        config = worker_config(KernelConfig.from_toml(self.config_path), self.index)
        self.log_path = config.audit_settings().log
        self.kernel = ServedKernel(config)
        return self.kernel

    async def control_loop(self) -> None:
        loop = asyncio.get_running_loop()
        reader, _ = await asyncio.open_connection(sock=self.ctl.dup())
        while True:
            line = await reader.readline()
            if not line:
                break  # the front is gone: drain
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("op") == "reload":
                result = await loop.run_in_executor(None, self.reload)
                self.tell({"event": "reloaded", "id": msg.get("id"), **result})
            elif msg.get("op") == "drain":
                break
        self.request_exit()

    def reload(self) -> dict[str, Any]:
        kernel = self.kernel
        assert kernel is not None
        try:
            tokens = TokenFile.load(self.token_path) if self.token_path is not None else None
            result = kernel.reload()
        except VakError as exc:
            _log.error("worker %d: reload refused, the old policy set stays: %s",
                       self.index, exc.message)
            return {"ok": False, "error": exc.to_dict(), "message": exc.message}
        self.tokens = tokens
        _log.info("worker %d: policy set %s in force (audit seq %d)", self.index,
                  result.policy_set, result.audit_seq)
        return {"ok": True, "policy_set": result.policy_set,
                "previous_policy_set": result.previous_policy_set,
                "audit_seq": result.audit_seq, "changed": result.changed}

    def request_exit(self) -> None:
        if self.server is not None:
            self.server.should_exit = True

    # ------------------------------------------------------------ serving
    def app(self, kernel: Kernel) -> _InFlight:
        import mcp.server.streamable_http_manager as manager

        from vak.adapters.mcp import build_server

        # session ids that name this worker, so the front can route by them alone
        # (_Misdirected refuses a session whose id does not name this worker)
        setattr(manager, "uuid4", _SessionIds(self.index))  # noqa: B010

        def principal_of(ctx: Any) -> Principal | None:
            request = getattr(ctx, "request", None)
            who = None if request is None else request.scope.get(PRINCIPAL_KEY)
            return who if isinstance(who, Principal) else None

        def session_of(ctx: Any) -> str | None:
            request = getattr(ctx, "request", None)
            return None if request is None else request.headers.get("mcp-session-id")

        server = build_server(kernel, principal_of=principal_of, session_of=session_of)
        mcp_app = server.streamable_http_app(host=self.listen_host)
        inflight = _InFlight(_Misdirected(BearerGate(mcp_app, lambda: self.tokens),
                                          self.index, self.workers))
        return inflight

    def serve(self) -> int:
        self.load_tokens()
        kernel = self.start_kernel()
        if self.stop_requested:  # a drain came while the kernel was starting
            kernel.close()
            self.tell({"event": "closed", "worker": self.index})
            return 0
        inflight = self.app(kernel)
        config = uvicorn.Config(inflight, log_config=None, access_log=False, lifespan="on",
                                timeout_graceful_shutdown=int(self.drain_timeout) + 1,
                                # a session's connection stays (and stays routed) between calls
                                timeout_keep_alive=_KEEP_ALIVE_S,
                                server_header=False)
        self.server = _HandedServer(config, self, inflight)
        try:
            self.server.run()
        finally:
            if not kernel.wait_idle(self.drain_timeout):
                _log.error("worker %d: calls still running after %.0f s of drain",
                           self.index, self.drain_timeout)
            kernel.close()
            self.tell({"event": "closed", "worker": self.index})
        return 0


class _NoListener:
    """What uvicorn's shutdown closes in place of a listening server."""

    def __init__(self, stop: Any) -> None:
        self._stop = stop

    def close(self) -> None:
        self._stop()

    async def wait_closed(self) -> None:
        return None


class _HandedServer(uvicorn.Server):
    """uvicorn's server fed by handed-over connections instead of a listening socket."""

    def __init__(self, config: uvicorn.Config, worker: _Worker, inflight: _InFlight) -> None:
        super().__init__(config)
        self.worker = worker
        self.inflight = inflight
        self._tasks: set[asyncio.Task[Any]] = set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """SIGTERM and SIGINT drain; unlike uvicorn's, the signal is not raised again
        afterwards, so the kernel still closes (and its log with it)."""
        previous = {sig: signal.signal(sig, self.handle_exit)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await self.lifespan.startup()
        if self.lifespan.should_exit:
            raise SystemExit(3)
        cfg = self.config
        loop = asyncio.get_running_loop()
        chan = self.worker.conn_chan
        chan.setblocking(False)

        def protocol() -> asyncio.Protocol:
            made: asyncio.Protocol = cfg.http_protocol_class(  # type: ignore[call-arg]
                config=cfg, server_state=self.server_state, app_state=self.lifespan.state)
            return made

        def stop() -> None:
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(chan.fileno())

        def take() -> None:
            try:
                _, fds, _, _ = socket.recv_fds(chan, 16, 4)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                fds = []
            if not fds:  # the front closed the channel: no more connections
                stop()
                self.should_exit = True
                return
            for fd in fds:
                conn = socket.socket(fileno=fd)
                conn.setblocking(False)
                task = loop.create_task(loop.connect_accepted_socket(protocol, conn))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

        loop.add_reader(chan.fileno(), take)
        self.servers = [_NoListener(stop)]  # type: ignore[list-item]
        control = loop.create_task(self.worker.control_loop())
        self._tasks.add(control)
        self.started = True
        if self.worker.stop_requested:
            self.should_exit = True
        self.worker.tell({"event": "ready", "worker": self.worker.index, "pid": os.getpid(),
                          "log": str(self.worker.log_path)})

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        # idle keep-alive connections close now, busy ones once their response is sent
        for connection in list(self.server_state.connections):
            connection.shutdown()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.inflight.idle.wait(), self.worker.drain_timeout)
        # the MCP sessions end, and their GET streams with them
        await self.lifespan.shutdown()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connections_closed(), 5)

    async def _connections_closed(self) -> None:
        while self.server_state.connections:
            await asyncio.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m vak.serve.worker`` (the front passes every flag)."""
    p = argparse.ArgumentParser(prog="vak-serve-worker")
    p.add_argument("--config", required=True)
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--workers", type=int, required=True)
    p.add_argument("--conn-fd", type=int, required=True)
    p.add_argument("--control-fd", type=int, required=True)
    p.add_argument("--listen-host", default="127.0.0.1")
    p.add_argument("--token-file", default=None)
    p.add_argument("--drain-timeout", type=float, default=30.0)
    p.add_argument("--log-format", default="text")
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    configure_logging(args.log_format, args.log_level, f"w{args.index}")
    # the front decides reloads; a terminal's hangup reaches it too
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    worker = _Worker(args)
    # until the HTTP server takes them over, a drain only marks the kernel to close
    signal.signal(signal.SIGTERM, worker.early_stop)
    signal.signal(signal.SIGINT, worker.early_stop)
    try:
        return worker.serve()
    except VakError as exc:
        worker.tell({"event": "failed", "worker": args.index, "message": exc.message,
                     "error": exc.to_dict()})
        _log.error("worker %d: %s", args.index, exc.message)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
