"""The net family: ``http_request``, decided twice and pinned to what was decided.

The SSRF defences, in the order they apply:

1. the URL is normalised (the catalog's pure normaliser,
   :func:`vak.host.normalize.normalize_url`): http(s) only, no userinfo, every
   IPv4 spelling rewritten to dotted-quad;
2. ``host:port`` must match a pattern the manifest declares (the mediation's
   ceiling, :func:`vak.host.ceiling.host_allowed`);
3. **the URL decision** is made and recorded before any DNS: for a host name
   the resource carries ``ip = ""`` and ``ip_class = "unresolved"``, so an
   undeclared or forbidden host never reaches the resolver;
4. only then is the name resolved **once**, through the :class:`Resolver` seam
   (:meth:`HttpFamily.resolve`); every address is classified and **the address
   decision** is made and recorded on the pinned address and its class
   (``mixed`` if the answers disagree). An IP literal is its own address: one
   decision covers both;
5. the connection goes to the pinned address, never to a fresh lookup, with
   the original ``Host`` header and TLS server name (certificate checked
   against the name, not the IP);
6. redirects are never followed: a 3xx is returned to the guest, whose next
   request is authorized like any other;
7. the response body is capped and **one deadline** bounds the whole call
   (DNS lookup, connect, TLS handshake, request, headers, body): ``timeout_ms``
   from the URL decision, and never later than the invocation's own deadline.
   A lookup still running at the deadline is abandoned (it runs on its own
   thread); a watchdog shuts the socket down when the deadline passes, so a
   peer trickling a byte at a time cannot stretch the call.

Arguments and replies: docs/HOST-FUNCTIONS.md.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import logging
import socket
import ssl
import threading
import time
from typing import Any, Protocol

from vak.host.base import EffectScope, HostEffectError, NormalCall
from vak.host.calls import with_addresses
from vak.host.ceiling import host_allowed
from vak.host.normalize import NormalizedUrl

__all__ = ["HttpFamily", "Resolver", "SystemResolver", "host_allowed"]

_log = logging.getLogger("vak.host")


class Resolver(Protocol):
    """DNS seam: the addresses ``host`` resolves to (tests answer differently per lookup)."""

    def resolve(self, host: str, port: int) -> tuple[str, ...]:
        """Raise OSError when the name does not resolve."""
        ...


class SystemResolver:
    """The platform resolver (``getaddrinfo``), TCP addresses only."""

    def resolve(self, host: str, port: int) -> tuple[str, ...]:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        seen: dict[str, None] = {}
        for info in infos:
            seen.setdefault(str(info[4][0]).split("%", 1)[0], None)
        return tuple(seen)


class _Watchdog:
    """Shuts a connection's socket down when the exchange's deadline passes."""

    def __init__(self, seconds: float) -> None:
        self.fired = threading.Event()
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            fired = self.fired.is_set()
        if fired:
            self._shutdown(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired.set()
            sock = self._sock
        if sock is not None:
            self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        # already closed or never connected: nothing left to stop
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to a pinned IP; the socket is handed to the watchdog as soon as it exists."""

    def __init__(self, ip: str, port: int, timeout: float, watchdog: _Watchdog) -> None:
        super().__init__(ip, port, timeout=timeout)
        self._watchdog = watchdog

    def _open(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self._watchdog.watch(sock)
        return sock

    def connect(self) -> None:
        self.sock = self._open()


class _PinnedHTTPS(_PinnedHTTP):
    """HTTPS to a pinned IP, verifying the certificate for the original name."""

    def __init__(self, ip: str, port: int, server_name: str, timeout: float,
                 context: ssl.SSLContext, watchdog: _Watchdog) -> None:
        super().__init__(ip, port, timeout, watchdog)
        self._server_name = server_name
        self._ctx = context

    def connect(self) -> None:
        self.sock = self._ctx.wrap_socket(self._open(), server_hostname=self._server_name)


class HttpFamily:
    """``http_request``: the resolver seam and the pinned, deadline-bounded exchange.

    Size caps and timeouts were validated by the normaliser against
    ``HostSettings``; the family enforces them on the wire.
    """

    def __init__(
        self, resolver: Resolver | None = None, *, tls_context: ssl.SSLContext | None = None
    ) -> None:
        self._resolver = resolver or SystemResolver()
        self._tls = tls_context or ssl.create_default_context()

    def resolved(self, call: NormalCall, scope: EffectScope) -> NormalCall:
        """The address decision's call: ``call``'s host resolved once, within the call's
        deadline (``timeout_ms`` from now, never past the invocation's), which the
        exchange then keeps.

        Called by the mediation only after the URL decision allowed the call and
        was recorded.
        """
        assert call.url is not None
        deadline = min(time.monotonic() + call.params["timeout_ms"] / 1000, scope.deadline)
        addresses, error = self._lookup(call.url, deadline)
        return with_addresses(call, addresses, error, deadline)

    def _lookup(self, n: NormalizedUrl, deadline: float) -> tuple[tuple[str, ...], str]:
        """The addresses and the resolver's error ('' if none), given up at ``deadline``.

        The lookup runs on its own daemon thread: ``getaddrinfo`` cannot be
        interrupted, so a resolver that hangs is abandoned, never waited for.
        """
        box: list[tuple[tuple[str, ...], str]] = []
        done = threading.Event()

        def run() -> None:
            try:
                box.append((tuple(str(a) for a in self._resolver.resolve(n.host, n.port)), ""))
            except (OSError, UnicodeError) as exc:
                box.append(((), str(exc)[:200]))
            except Exception as exc:  # a broken resolver is a recorded DNS failure, not a crash
                _log.error("resolver failed: %s", type(exc).__name__)
                box.append(((), f"resolver failed: {type(exc).__name__}"))
            finally:
                done.set()

        threading.Thread(target=run, name="vak-dns", daemon=True).start()
        if not done.wait(max(0.0, deadline - time.monotonic())):
            return (), "DNS lookup exceeded the call's deadline"
        return box[0]

    def perform(self, function: str, call: NormalCall, scope: EffectScope, /) -> dict[str, Any]:
        n, p = call.url, call.params
        ip = str(call.resource.attrs.get("ip", ""))
        if n is None or not ip:
            raise HostEffectError("dns_failed", "the host did not resolve")
        scope.counters.add("http_requests", 1)
        if "deadline" in p:  # set when the host was resolved: DNS and exchange share it
            deadline = p["deadline"]
        else:
            deadline = min(time.monotonic() + p["timeout_ms"] / 1000, scope.deadline)
        return self._fetch(n, ip, p["method"], p["headers"], p["body"], deadline, p["max_bytes"])

    def _fetch(
        self,
        n: NormalizedUrl,
        ip: str,
        method: str,
        headers: dict[str, str],
        body: bytes,
        deadline: float,
        max_bytes: int,
    ) -> dict[str, Any]:
        """One exchange with ``ip``, all of it before ``deadline`` (``time.monotonic()``)."""
        timeout = deadline - time.monotonic()
        if timeout <= 0:
            raise HostEffectError("timeout", "HTTP request exceeded its deadline")
        watchdog = _Watchdog(timeout)
        conn: _PinnedHTTP
        if n.scheme == "https":
            conn = _PinnedHTTPS(ip, n.port, n.host, timeout, self._tls, watchdog)
        else:
            conn = _PinnedHTTP(ip, n.port, timeout, watchdog)
        default = 443 if n.scheme == "https" else 80
        host_header = n.authority if n.port != default else n.authority.rsplit(":", 1)[0]
        try:
            conn.request(
                method,
                n.target,
                body=body or None,
                headers={**headers, "Host": host_header, "Connection": "close"},
            )
            resp = conn.getresponse()
            chunks: list[bytes] = []
            total = 0
            while total <= max_bytes:
                chunk = resp.read(min(65536, max_bytes + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
            if watchdog.fired.is_set():
                raise TimeoutError
            data = b"".join(chunks)
            out: dict[str, Any] = {
                "status": resp.status,
                "headers": {k.lower(): v for k, v in resp.getheaders()},
                "truncated": len(data) > max_bytes,
            }
        except (OSError, http.client.HTTPException) as exc:
            if watchdog.fired.is_set() or isinstance(exc, TimeoutError):
                raise HostEffectError("timeout", "HTTP request exceeded its deadline") from None
            if isinstance(exc, ssl.SSLError):
                raise HostEffectError("tls_error", f"TLS failure: {exc.reason}") from None
            raise HostEffectError(
                "connect_failed", f"HTTP request failed: {type(exc).__name__}"
            ) from None
        finally:
            watchdog.cancel()
            conn.close()
        data = data[:max_bytes]
        try:
            out["body"] = data.decode("utf-8")
        except UnicodeDecodeError:
            out["body_b64"] = base64.b64encode(data).decode()
        return out

