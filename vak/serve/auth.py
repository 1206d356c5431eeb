"""The bearer-token gate in front of each worker's MCP app (ASGI middleware).

Every request to ``/mcp`` must carry ``Authorization: Bearer <token>`` naming a
token of the token file; anything else gets one and the same answer::

    HTTP/1.1 401 Unauthorized
    WWW-Authenticate: Bearer error="invalid_token", error_description="Authentication
        required", resource_metadata="http://127.0.0.1:8765/.well-known/oauth-protected-resource/mcp"

whether the header was missing, not ``Bearer``, too long, or a wrong token, so
a client learns nothing about which part was wrong (the MCP authorization
spec: a 401 names the RFC 9728 protected-resource metadata, which is served at
that address with the resource and ``bearer_methods_supported``; the tokens
are issued out of band by ``vak serve token add``, so it lists no
authorization server).

A request that passes is tagged with its :class:`~vak.invocation.Principal`
(``scope["vak.principal"]``, read by the MCP adapter's ``principal_of``) and
with the ``user`` the MCP SDK binds a session to, so a session opened with
one token cannot be used with another. The token itself goes nowhere.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from vak.serve.tokens import TokenFile

__all__ = ["METADATA_PATH", "PRINCIPAL_KEY", "BearerGate"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

#: where the RFC 9728 metadata of the ``/mcp`` resource is served
METADATA_PATH = "/.well-known/oauth-protected-resource/mcp"
#: the ASGI scope key holding the authenticated caller
PRINCIPAL_KEY = "vak.principal"
_PREFIX = b"bearer "


def _base_url(scope: Scope) -> str:
    """``http://host:port`` of the socket the client reached (never the Host header)."""
    server = scope.get("server") or ("127.0.0.1", 0)
    host, port = str(server[0]), int(server[1])
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


async def _respond(send: Send, status: int, body: dict[str, Any],
                   headers: list[tuple[bytes, bytes]]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
        (b"cache-control", b"no-store"), *headers]})
    await send({"type": "http.response.body", "body": data})


class BearerGate:
    """Authenticate every HTTP request before the MCP app sees it.

    ``tokens()`` returns the token file in force (None: authentication is off,
    which :mod:`vak.serve.front` allows on loopback addresses only); it is
    asked per request, so a reload that re-reads the file takes effect at once.
    """

    def __init__(self, app: App, tokens: Callable[[], TokenFile | None]) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("path") == METADATA_PATH:
            base = _base_url(scope)
            await _respond(send, 200, {"resource": f"{base}/mcp",
                                       "bearer_methods_supported": ["header"],
                                       "resource_name": "vak serve"}, [])
            return
        store = self.tokens()
        if store is None:
            scope[PRINCIPAL_KEY] = None
            await self.app(scope, receive, send)
            return
        principal = store.authenticate(_bearer(scope))
        if principal is None:
            challenge = ('Bearer error="invalid_token", error_description="Authentication '
                         f'required", resource_metadata="{_base_url(scope)}{METADATA_PATH}"')
            await _respond(send, 401, {"error": "invalid_token",
                                       "error_description": "Authentication required"},
                           [(b"www-authenticate", challenge.encode())])
            return
        from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
        from mcp.server.auth.provider import AccessToken

        scope[PRINCIPAL_KEY] = principal
        # the SDK binds a session to the credential that opened it (never the token text)
        scope["user"] = AuthenticatedUser(AccessToken(token="", client_id=principal.id,
                                                      scopes=[]))
        await self.app(scope, receive, send)


def _bearer(scope: Scope) -> bytes | None:
    """The token of the one ``Authorization: Bearer`` header, or None."""
    found: bytes | None = None
    for name, value in scope.get("headers") or ():
        if name.lower() == b"authorization":
            if found is not None:
                return None  # two Authorization headers: ambiguous, refused
            found = value
    if found is None or found[:len(_PREFIX)].lower() != _PREFIX:
        return None
    return found[len(_PREFIX):].strip()
