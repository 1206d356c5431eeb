"""LangChain adapter through the real ``langchain-core`` StructuredTool."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("langchain_core")

from langchain_core.tools import StructuredTool, ToolException

from vak.adapters.langchain import langchain_tool, langchain_tools
from vak.kernel import Kernel


def _calc(kernel: Kernel, **kw: bool) -> StructuredTool:
    spec = next(t for t in kernel.tools() if t.name == "calculator__execute")
    return langchain_tool(kernel, spec, **kw)


def test_tools_and_schema(kernel: Kernel) -> None:
    tools = langchain_tools(kernel)
    assert {t.name for t in tools} == {t.name for t in kernel.tools()}
    calc = next(t for t in tools if t.name == "calculator__execute")
    assert isinstance(calc, StructuredTool)
    assert calc.args_schema["required"] == ["operation", "a", "b"]


def test_invoke(kernel: Kernel) -> None:
    assert _calc(kernel).invoke({"operation": "multiply", "a": 3, "b": 4}) == {"result": 12}


def test_ainvoke(kernel: Kernel) -> None:
    out = asyncio.run(_calc(kernel).ainvoke({"operation": "add", "a": 3, "b": 4}))
    assert out == {"result": 7}


def test_denial_is_tool_exception(kernel: Kernel) -> None:
    spec = next(t for t in kernel.tools() if t.name == "notes__read")
    strict = langchain_tool(kernel, spec, handle_tool_error=False)
    with pytest.raises(ToolException, match="policy_denied"):
        strict.invoke({"path": "/etc/passwd"})
    handled = langchain_tool(kernel, spec)
    assert "policy_denied" in handled.invoke({"path": "/etc/passwd"})
