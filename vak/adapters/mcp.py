"""MCP adapter: serve a kernel's tools over the low-level ``mcp`` 2.x ``Server``.

Only the loaded tools are exposed; loading, granting and policy operations are
never model-callable. Tool schemas come from the signed manifests, and every
result carries its audit evidence in ``_meta`` (``vak/audit_seq``,
``vak/leaf_hash``) so a client can later prove what happened. A failed call,
whatever it raised, becomes a tool result with ``isError`` set (see
:mod:`vak.adapters._failure`): the session survives and the model may recover.

Approvals (docs/POLICY.md, 'Approvals'): when a call awaits approval
(:class:`~vak.errors.ApprovalPendingError`), the server was given an
operator ``approver_key`` and the client declared form elicitation, the person
is asked through ``elicitation/create``; their answer is signed with that key
(whose public key the trust store lists with ``roles: [approver]``), stored,
and the same call is retried once -- so it is consumed and recorded exactly
like an answer given with ``vak approvals approve``. A cancelled dialogue
leaves the request pending.

Requires the ``mcp`` extra (``pip install 'vak[mcp]'``)::

    >>> server = build_server(kernel)                      # doctest: +SKIP
    >>> serve_stdio(kernel)                                # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson

from vak.adapters._failure import failure_body
from vak.errors import ApprovalError, ApprovalPendingError
from vak.formats import to_mcp

if TYPE_CHECKING:
    from collections.abc import Callable

    from vak.identity.keys import SigningKey
    from vak.invocation import Principal
    from vak.kernel import Kernel

#: what the person is asked to fill in (a flat object schema, as elicitation requires)
_APPROVE_SCHEMA = {"type": "object", "required": ["approve"], "properties": {
    "approve": {"type": "boolean", "title": "Approve this call?",
                "description": "Allow this exact call once"}}}

__all__ = ["build_server", "serve_http", "serve_stdio"]


def build_server(kernel: Kernel, *, name: str = "vak", approver_key: SigningKey | None = None,
                 approval_ttl: timedelta = timedelta(minutes=5),
                 principal_of: Callable[[Any], Principal | None] | None = None,
                 session_of: Callable[[Any], str | None] | None = None) -> Any:
    """A low-level ``mcp.server.lowlevel.Server`` exposing ``kernel.tools()``.

    ``approver_key``: the operator key that signs what a person answers through
    MCP elicitation (None: calls awaiting approval are answered out of band).
    ``principal_of(ctx)``: who is calling (``vak serve``: the bearer token's
    principal), passed to ``Kernel.ainvoke(principal=...)`` and so seen by Cedar
    as ``context.caller``. ``session_of(ctx)``: the kernel session of a call
    (``vak serve``: the MCP session id); default ``"mcp"``.
    """
    import mcp_types as types
    from mcp.server.lowlevel import Server

    async def list_tools(ctx: Any, params: Any) -> Any:
        return types.ListToolsResult(tools=[
            types.Tool(
                name=t["name"], description=t["description"],
                input_schema=t["inputSchema"], output_schema=t.get("outputSchema"),
            )
            for t in map(to_mcp, kernel.tools())
        ])

    def error(exc: Exception) -> Any:
        body = failure_body(exc)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=orjson.dumps(body).decode())],
            is_error=True,
            _meta={"vak/error": body["error"], "vak/audit_seq": body.get("audit_seq")},
        )

    async def invoke(ctx: Any, params: Any) -> Any:
        who = None if principal_of is None else principal_of(ctx)
        session = (None if session_of is None else session_of(ctx)) or "mcp"
        try:
            return await kernel.ainvoke(params.name, params.arguments or {}, session=session,
                                        principal=who)
        except ApprovalPendingError as exc:
            if approver_key is None or not _can_elicit(ctx):
                raise
            if not await _ask_person(ctx, kernel, exc, approver_key, approval_ttl):
                raise
        return await kernel.ainvoke(params.name, params.arguments or {}, session=session,
                                    principal=who)

    async def call_tool(ctx: Any, params: Any) -> Any:
        try:
            inv = await invoke(ctx, params)
            text = orjson.dumps(inv.output).decode()
        except Exception as exc:  # noqa: BLE001 - answered as a tool error, never hidden
            return error(exc)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)],
            structured_content=inv.output if isinstance(inv.output, dict) else None,
            _meta={"vak/audit_seq": inv.audit_seq_finished, "vak/leaf_hash": inv.leaf_hash},
        )

    return Server(name, on_list_tools=list_tools, on_call_tool=call_tool)


def _can_elicit(ctx: Any) -> bool:
    caps = getattr(ctx.session, "client_capabilities", None)
    elicitation = getattr(caps, "elicitation", None)
    return elicitation is not None and getattr(elicitation, "form", None) is not None


async def _ask_person(ctx: Any, kernel: Kernel, pending: ApprovalPendingError,
                      key: SigningKey, ttl: timedelta) -> bool:
    """Ask through elicitation; store the signed answer. True when one was stored."""
    from vak.approvals.answer import sign_answer

    gate = kernel.approval_gate
    try:
        request = gate.store.get(pending.approval_id).request
    except ApprovalError:
        return False
    result = await ctx.session.elicit_form(
        f"A tool wants to act and needs your approval: {request.describe()}. "
        f"Approval {request.id}.", _APPROVE_SCHEMA)
    if result.action == "cancel":
        return False
    approve = result.action == "accept" and (result.content or {}).get("approve") is True
    answer = sign_answer(request.id, request.binding, approve, key, ttl)
    try:
        gate.check(answer, request)  # the server's key must be an approver
        gate.store.answer(request.id, answer)
    except ApprovalError:
        return False
    return True


def serve_stdio(kernel: Kernel, *, approver_key: SigningKey | None = None) -> None:
    """Serve MCP over this process's stdin/stdout until the client disconnects."""
    from mcp.server.stdio import stdio_server

    server = build_server(kernel, approver_key=approver_key)

    async def run() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    asyncio.run(run())


def serve_http(kernel: Kernel, port: int, *, host: str = "127.0.0.1",
               approver_key: SigningKey | None = None) -> None:
    """Serve MCP streamable HTTP on ``host:port`` (loopback by default) at ``/mcp``."""
    import uvicorn

    app = build_server(kernel, approver_key=approver_key).streamable_http_app(host=host)
    uvicorn.run(app, host=host, port=port, log_level="warning")
