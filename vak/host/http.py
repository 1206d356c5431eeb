"""The net family: ``http_request`` with DNS pinned at authorization time.

The SSRF defences, in the order they apply:

1. the URL is normalised (:func:`vak.policy.normalize.normalize_url`): http(s)
   only, no userinfo, every IPv4 spelling rewritten to dotted-quad;
2. ``host:port`` must match a pattern the manifest declares (the ceiling);
3. the host is resolved **once**, through the :class:`Resolver` seam; every
   address is classified and the resource carries the pinned address and its
   class (``mixed`` if the answers disagree), which is what Cedar decides on;
4. the connection goes to the pinned address, never to a fresh lookup, with
   the original ``Host`` header and TLS server name (certificate checked
   against the name, not the IP);
5. redirects are never followed: a 3xx is returned to the guest, whose next
   request is authorized like any other;
6. the response body is capped and the whole exchange has a deadline.

Arguments (JSON): ``{"url", "method"?, "headers"?, "body"?, "timeout_ms"?,
"max_bytes"?}`` -> ``{"status", "headers", "body" | "body_b64", "truncated"}``.
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import time
from collections.abc import Mapping
from typing import Any, Protocol

from vak.errors import ABIError
from vak.host.base import HostEffectError, Prepared, arg_int, arg_str
from vak.host.context import CallContext
from vak.policy.entities import Entity
from vak.policy.normalize import (
    NormalizedUrl,
    NormalizeError,
    classify_ip,
    normalize_host,
    normalize_url,
)

__all__ = ["HttpFamily", "Resolver", "SystemResolver", "host_allowed"]

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_FORBIDDEN_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
        "te",
        "trailer",
        "proxy-authorization",
    }
)
MAX_BODY = 1 << 20
MAX_HEADERS = 64


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


def host_allowed(n: NormalizedUrl, patterns: tuple[str, ...]) -> bool:
    """Whether ``n`` matches a manifest http pattern (``host``, ``host:port``, ``*.dom``).

    A pattern without a port matches any port of that host (as Deno's
    ``--allow-net=host`` does); ``host:port`` only that port; ``*.dom`` matches
    strict subdomains of ``dom``, never ``dom`` itself. Operator policy still
    decides on the pinned address and its class.
    """
    for pattern in patterns:
        host_part, port = pattern, n.port
        if pattern.startswith("["):
            end = pattern.find("]")
            host_part, rest = pattern[: end + 1], pattern[end + 1 :]
            if rest.startswith(":") and rest[1:].isdigit():
                port = int(rest[1:])
        elif pattern.count(":") == 1:
            host_part, _, p = pattern.partition(":")
            if not p.isdigit():
                continue
            port = int(p)
        if port != n.port:
            continue
        if host_part.startswith("*."):
            try:
                suffix = normalize_host(host_part[2:])
            except NormalizeError:
                continue
            if n.host.endswith("." + suffix):
                return True
            continue
        try:
            if normalize_host(host_part) == n.host:
                return True
        except NormalizeError:
            continue
    return False


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a pinned IP, verifying the certificate for the original name."""

    def __init__(
        self, ip: str, port: int, server_name: str, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(ip, port, timeout=timeout, context=context)
        self._server_name = server_name
        self._ctx = context

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._ctx.wrap_socket(sock, server_hostname=self._server_name)


class HttpFamily:
    """``http_request`` with a resolver seam, size cap and deadline."""

    def __init__(
        self,
        resolver: Resolver | None = None,
        *,
        max_response_bytes: int = 1 << 20,
        timeout_ms: int = 5000,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self._resolver = resolver or SystemResolver()
        self._max = max_response_bytes
        self._timeout_ms = timeout_ms
        self._tls = tls_context or ssl.create_default_context()

    def prepare(self, function: str, args: Mapping[str, Any], ctx: CallContext) -> Prepared:
        n = normalize_url(arg_str(args, "url", max_len=1 << 20))
        method = arg_str(args, "method", default="GET", max_len=16).upper()
        if method not in _METHODS:
            raise NormalizeError(f"method {method!r} not allowed")
        headers = _headers(args.get("headers", {}))
        body = arg_str(args, "body", default="", max_len=MAX_BODY).encode("utf-8", "surrogatepass")
        timeout_ms = arg_int(
            args, "timeout_ms", default=self._timeout_ms, lo=1, hi=self._timeout_ms
        )
        max_bytes = arg_int(args, "max_bytes", default=self._max, lo=0, hi=self._max)
        ceiling = (
            None
            if host_allowed(n, ctx.manifest.capabilities.http)
            else (f"{n.authority} is not among the skill's declared http hosts")
        )
        ip, ip_class, dns_error = self._pin(n) if ceiling is None else ("", "unresolved", "")
        resource = Entity(
            "Vak::Url",
            n.url,
            {
                "scheme": n.scheme,
                "host": n.host,
                "port": n.port,
                "path": n.target,
                "ip": ip,
                "ip_class": ip_class,
            },
        )
        context = {
            "method": method,
            "header_names": sorted(headers),
            "body_size": len(body),
            "timeout_ms": timeout_ms,
        }
        summary = {"url": n.url, "method": method, "ip": ip, "ip_class": ip_class}
        if dns_error:
            summary["dns_error"] = dns_error

        def effect() -> dict[str, Any]:
            if not ip:
                raise HostEffectError("dns_failed", f"{n.host} did not resolve")
            ctx.counters.add("http_requests", 1)
            return self._fetch(n, ip, method, headers, body, timeout_ms, max_bytes)

        return Prepared(resource, context, ceiling, effect, summary)

    def _pin(self, n: NormalizedUrl) -> tuple[str, str, str]:
        try:
            addrs = (n.host,) if _is_ip(n.host) else self._resolver.resolve(n.host, n.port)
        except (OSError, UnicodeError) as exc:
            return "", "unresolved", str(exc)[:200]
        classes = []
        for a in addrs:
            try:
                classes.append(classify_ip(a))
            except NormalizeError:
                classes.append("invalid")
        if not addrs:
            return "", "unresolved", "no addresses"
        ip_class = classes[0] if len(set(classes)) == 1 else "mixed"
        return addrs[0], ip_class, ""

    def _fetch(
        self,
        n: NormalizedUrl,
        ip: str,
        method: str,
        headers: dict[str, str],
        body: bytes,
        timeout_ms: int,
        max_bytes: int,
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_ms / 1000
        timeout = timeout_ms / 1000
        conn: http.client.HTTPConnection
        if n.scheme == "https":
            conn = _PinnedHTTPS(ip, n.port, n.host, timeout, self._tls)
        else:
            conn = http.client.HTTPConnection(ip, n.port, timeout=timeout)
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
                if time.monotonic() > deadline:
                    raise HostEffectError("timeout", "HTTP request exceeded its deadline")
                chunk = resp.read(min(65536, max_bytes + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
            data = b"".join(chunks)
            out: dict[str, Any] = {
                "status": resp.status,
                "headers": {k.lower(): v for k, v in resp.getheaders()},
                "truncated": len(data) > max_bytes,
            }
        except TimeoutError:
            raise HostEffectError("timeout", "HTTP request timed out") from None
        except ssl.SSLError as exc:
            raise HostEffectError("tls_error", f"TLS failure: {exc.reason}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise HostEffectError(
                "connect_failed", f"HTTP request failed: {type(exc).__name__}"
            ) from None
        finally:
            conn.close()
        data = data[:max_bytes]
        try:
            out["body"] = data.decode("utf-8")
        except UnicodeDecodeError:
            out["body_b64"] = base64.b64encode(data).decode()
        return out


def _is_ip(host: str) -> bool:
    try:
        classify_ip(host)
    except NormalizeError:
        return False
    return True


def _headers(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict) or len(raw) > MAX_HEADERS:
        raise ABIError(
            f"headers must be an object of at most {MAX_HEADERS} strings", argument="headers"
        )
    out: dict[str, str] = {}
    for k, v in raw.items():
        if not isinstance(v, str) or not k or len(k) > 256 or len(v) > 8192:
            raise ABIError("header names and values must be short strings", argument="headers")
        if any(c in k for c in ":\r\n\x00 ") or any(c in v for c in "\r\n\x00"):
            raise NormalizeError(f"header {k!r} contains forbidden characters")
        if k.lower() in _FORBIDDEN_HEADERS:
            raise NormalizeError(f"header {k!r} is set by the kernel")
        out[k.lower()] = v
    return out
