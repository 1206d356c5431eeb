"""MCP adapter: serve a kernel's tools over the low-level ``mcp`` 2.x ``Server``.

Only the loaded tools are exposed; loading, granting and policy operations are
never model-callable. What a client sees (docs/MCP.md):

* ``initialize`` names the server ``vak`` with the kernel's version (``vak.__version__``);
* each tool's schemas come from its signed manifest, and its ``annotations`` are
  derived from the skill's signed capabilities (:func:`tool_annotations`):
  ``readOnlyHint`` when it declares no ``fs.write``, ``http`` or ``kv``,
  ``destructiveHint`` when it may write, ``openWorldHint`` when it declares
  ``http``; its ``_meta`` names the skill version, signer, module digest and tier;
* results are structured: ``outputSchema`` is the manifest's output schema; one
  whose root is not ``type: object`` (MCP requires an object) is wrapped as
  ``{"type": "object", "properties": {"result": <schema>}, "required": ["result"]}``
  with ``"x-vak-wrapped": true``, and ``structuredContent`` is then
  ``{"result": output}`` (:func:`output_schema`);
* every result, refusals included, carries its audit evidence in ``_meta``:
  ``vak/audit_seq`` is the entry that closed the call (``invocation_finished``,
  or ``call_refused`` for an unknown tool), ``vak/decision_seq`` the host
  decision that refused or paused it, ``vak/invocation`` the invocation id, and
  on success ``vak/audit_seq_started`` and ``vak/leaf_hash``.

A failed call, whatever it raised, becomes a tool result with ``isError`` set
(see :mod:`vak.adapters._failure`): the session survives and the model may recover.

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
from vak.errors import ApprovalError, ApprovalPendingError, VakError
from vak.formats import to_mcp
from vak.invocation import ToolSpec, thaw

if TYPE_CHECKING:
    from collections.abc import Callable

    from vak.identity.keys import SigningKey
    from vak.identity.manifest import Capabilities
    from vak.invocation import Principal
    from vak.kernel import Kernel

#: what the person is asked to fill in (a flat object schema, as elicitation requires)
_APPROVE_SCHEMA = {"type": "object", "required": ["approve"], "properties": {
    "approve": {"type": "boolean", "title": "Approve this call?",
                "description": "Allow this exact call once"}}}

__all__ = ["WRAP_KEY", "build_server", "output_schema", "serve_http", "serve_stdio",
           "tool_annotations"]

#: the key a non-object output is wrapped under in ``structuredContent``
WRAP_KEY = "result"
#: schema keywords that must stay at the root of the wrapping schema for ``$ref`` to resolve
_ROOT_KEYWORDS = ("$schema", "$defs", "definitions")


def tool_annotations(spec: ToolSpec, capabilities: Capabilities) -> dict[str, Any]:
    """MCP ``ToolAnnotations`` fields derived from the skill's *signed* capabilities.

    Only what the manifest declares counts (the kernel refuses anything
    undeclared, whatever a policy says), so the hints are an upper bound: a
    skill declaring ``fs.write`` may still be denied every write by policy.
    ``kv`` is one capability for reads and writes, so it counts as a write.
    """
    writes = bool(capabilities.fs_write) or bool(capabilities.http) or capabilities.kv
    return {"title": f"{spec.skill}: {spec.export}", "read_only_hint": not writes,
            "destructive_hint": writes, "open_world_hint": bool(capabilities.http)}


def output_schema(spec: ToolSpec) -> tuple[dict[str, Any], bool]:
    """The tool's MCP ``outputSchema`` and whether it wraps the output under ``"result"``.

    MCP requires an object schema at the root (through protocol 2025-11-25); a
    manifest output schema of any other shape is wrapped: its ``$schema`` moves
    to the wrapper's root and its ``$defs`` / ``definitions`` are copied there,
    so a ``"$ref": "#/$defs/..."`` (resolved against the document root) still
    resolves. A copy stays inside too, for a schema with an ``$id`` of its own.
    """
    schema = thaw(spec.output_schema)
    if schema.get("type") == "object":
        return schema, False
    root = {k: schema.pop(k) for k in _ROOT_KEYWORDS if k in schema}
    if "$defs" in root or "definitions" in root:
        schema.update({k: v for k, v in root.items() if k != "$schema"})
    return {**root, "type": "object", "properties": {WRAP_KEY: schema},
            "required": [WRAP_KEY], "additionalProperties": False, "x-vak-wrapped": True}, True


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

    from vak._version import distribution_version

    wrapped: dict[str, bool] = {}  # tool -> output wrapped under "result" (as last listed)

    def describe(spec: ToolSpec, skills: dict[str, Any]) -> Any:
        t = to_mcp(spec)
        schema, wrapped[spec.name] = output_schema(spec)
        skill = skills[spec.skill]
        return types.Tool(
            name=t["name"], description=t["description"], input_schema=t["inputSchema"],
            output_schema=schema,
            annotations=types.ToolAnnotations(
                **tool_annotations(spec, skill.manifest.capabilities)),
            _meta={"vak/skill_version": skill.version, "vak/signer": skill.signer_key_id,
                   "vak/module_sha256": f"sha256:{skill.module_sha256}",
                   "vak/tier": str(skill.tier)},
        )

    async def list_tools(ctx: Any, params: Any) -> Any:
        skills = {s.name: s for s in kernel.skills()}
        return types.ListToolsResult(tools=[describe(t, skills) for t in kernel.tools()])

    def error(exc: Exception) -> Any:
        body = failure_body(exc)
        details = exc.details if isinstance(exc, VakError) else {}
        decision = body.get("audit_seq")
        meta = {"vak/error": body["error"],
                "vak/audit_seq": details.get("finished_seq", decision),
                "vak/invocation": details.get("invocation")}
        if "finished_seq" in details and decision is not None:
            meta["vak/decision_seq"] = decision
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=orjson.dumps(body).decode())],
            is_error=True, _meta=meta,
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
        if params.name not in wrapped:  # called before any tools/list of this server
            spec = next(t for t in kernel.tools() if t.name == params.name)
            wrapped[params.name] = output_schema(spec)[1]
        structured = {WRAP_KEY: inv.output} if wrapped[params.name] else inv.output
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)],
            structured_content=structured,
            _meta={"vak/audit_seq": inv.audit_seq_finished,
                   "vak/audit_seq_started": inv.audit_seq_started,
                   "vak/leaf_hash": inv.leaf_hash, "vak/invocation": inv.invocation_id},
        )

    return Server(name, version=distribution_version(), on_list_tools=list_tools,
                  on_call_tool=call_tool)


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
