"""OpenAI Agents SDK adapter through the real ``FunctionTool`` (no model involved)."""

from __future__ import annotations

import asyncio
import json

import pytest

pytest.importorskip("agents")

from agents import FunctionTool
from agents.tool_context import ToolContext

from vak.adapters.openai_agents import function_tools, is_strict_schema
from vak.kernel import Kernel


def _ctx(name: str, args: str) -> ToolContext[None]:
    return ToolContext(context=None, tool_name=name, tool_call_id="call_1", tool_arguments=args)


def _tool(kernel: Kernel, name: str) -> FunctionTool:
    return next(t for t in function_tools(kernel) if t.name == name)


def test_function_tools(kernel: Kernel) -> None:
    calc = _tool(kernel, "calculator__execute")
    assert isinstance(calc, FunctionTool)
    assert calc.params_json_schema["required"] == ["operation", "a", "b"]


def test_strictness_only_when_schema_already_qualifies() -> None:
    loose = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
    assert not is_strict_schema(loose)  # the SDK would add additionalProperties: false
    strict = {"type": "object", "properties": {"p": {"type": "string"}}, "required": ["p"],
              "additionalProperties": False}
    assert is_strict_schema(strict)


def test_invoke_without_model(kernel: Kernel) -> None:
    calc = _tool(kernel, "calculator__execute")
    args = json.dumps({"operation": "subtract", "a": 10, "b": 4})
    out = asyncio.run(calc.on_invoke_tool(_ctx(calc.name, args), args))
    assert json.loads(out) == {"result": 6}


def test_denial_is_returned_to_model(kernel: Kernel) -> None:
    notes = _tool(kernel, "notes__read")
    args = json.dumps({"path": "/etc/passwd"})
    out = json.loads(asyncio.run(notes.on_invoke_tool(_ctx(notes.name, args), args)))
    assert out["error"] == "policy_denied"
    bad = asyncio.run(notes.on_invoke_tool(_ctx(notes.name, "{nope"), "{nope"))
    assert json.loads(bad)["error"] == "invalid_input"
