"""MCP adapter through the real ``mcp`` library: client sessions over stdio and HTTP."""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
import pytest

pytest.importorskip("mcp")

from kernel_helpers import DemoState, mcp_http_server
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client


async def _session(state: DemoState) -> dict[str, Any]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "vak.cli.main", "mcp", "serve", "--config", str(state.config)],
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        listed = await session.list_tools()
        ok = await session.call_tool("calculator__execute",
                                     {"operation": "add", "a": 2, "b": 3})
        denied = await session.call_tool("notes__read", {"path": "/etc/passwd"})
        return {"tools": listed.tools, "ok": ok, "denied": denied}


def test_mcp_stdio_list_and_call(demo_state: DemoState) -> None:
    out = anyio.run(_session, demo_state)
    tools = {t.name: t for t in out["tools"]}
    assert {"calculator__execute", "notes__read", "fetch__fetch"} <= set(tools)
    # only skill exports: nothing that loads skills or grants capabilities
    assert all("__" in name for name in tools)
    calc = tools["calculator__execute"]
    assert calc.input_schema["required"] == ["operation", "a", "b"]
    ok = out["ok"]
    assert not ok.is_error
    assert json.loads(ok.content[0].text) == {"result": 5}
    assert ok.structured_content == {"result": 5}
    assert isinstance(ok.meta["vak/audit_seq"], int)
    denied = out["denied"]
    assert denied.is_error
    assert json.loads(denied.content[0].text)["error"] == "policy_denied"


async def _http_session(url: str) -> Any:
    async with streamable_http_client(url) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        names = [t.name for t in (await session.list_tools()).tools]
        result = await session.call_tool("calculator__execute",
                                         {"operation": "multiply", "a": 2, "b": 21})
        return names, result


def test_mcp_streamable_http_on_loopback(demo_state: DemoState) -> None:
    with mcp_http_server(demo_state.config) as url:
        names, result = anyio.run(_http_session, url)
        assert "calculator__execute" in names
        assert result.structured_content == {"result": 42}
