"""MCP adapter: serve a kernel's tools over the low-level ``mcp`` 2.x ``Server``.

Only the loaded tools are exposed; loading, granting and policy operations are
never model-callable. Tool schemas come from the signed manifests, and every
result carries its audit evidence in ``_meta`` (``vak/audit_seq``,
``vak/leaf_hash``) so a client can later prove what happened. A failed call,
whatever it raised, becomes a tool result with ``isError`` set (see
:mod:`vak.adapters._failure`): the session survives and the model may recover.

Requires the ``mcp`` extra (``pip install 'vak[mcp]'``)::

    >>> server = build_server(kernel)                      # doctest: +SKIP
    >>> serve_stdio(kernel)                                # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import orjson

from vak.adapters._failure import failure_body
from vak.formats import to_mcp

if TYPE_CHECKING:
    from vak.kernel import Kernel

__all__ = ["build_server", "serve_http", "serve_stdio"]


def build_server(kernel: Kernel, *, name: str = "vak") -> Any:
    """A low-level ``mcp.server.lowlevel.Server`` exposing ``kernel.tools()``."""
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

    async def call_tool(ctx: Any, params: Any) -> Any:
        try:
            inv = await kernel.ainvoke(params.name, params.arguments or {}, session="mcp")
            text = orjson.dumps(inv.output).decode()
        except Exception as exc:  # noqa: BLE001 - answered as a tool error, never hidden
            return error(exc)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)],
            structured_content=inv.output if isinstance(inv.output, dict) else None,
            _meta={"vak/audit_seq": inv.audit_seq_finished, "vak/leaf_hash": inv.leaf_hash},
        )

    return Server(name, on_list_tools=list_tools, on_call_tool=call_tool)


def serve_stdio(kernel: Kernel) -> None:
    """Serve MCP over this process's stdin/stdout until the client disconnects."""
    from mcp.server.stdio import stdio_server

    server = build_server(kernel)

    async def run() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    asyncio.run(run())


def serve_http(kernel: Kernel, port: int, *, host: str = "127.0.0.1") -> None:
    """Serve MCP streamable HTTP on ``host:port`` (loopback by default) at ``/mcp``."""
    import uvicorn

    app = build_server(kernel).streamable_http_app(host=host)
    uvicorn.run(app, host=host, port=port, log_level="warning")
