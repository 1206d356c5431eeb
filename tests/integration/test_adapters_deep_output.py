"""Crafted structure in a skill's output: an answer to the model, never a crash.

A skill whose output nests hundreds of levels deep must come back from every
adapter as a tool error (MCP ``isError``, LangChain ``ToolException``, an
OpenAI Agents JSON error string) while the session or agent run goes on, and
from ``Kernel.invoke`` as a typed ``ToolCallError`` recorded in the log.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from kernel_helpers import DemoState, constant_output_wat, nested_output, wat_skill

from vak.config import KernelConfig
from vak.errors import ToolCallError
from vak.kernel import Kernel

DEPTHS = [300, 1000, 5000]
ADD = {"operation": "add", "a": 2, "b": 3}


def _codes(cls: type[ToolCallError]) -> set[str]:
    return {cls.code}.union(*(_codes(sub) for sub in cls.__subclasses__()))


TOOL_CALL_CODES = _codes(ToolCallError)


@pytest.fixture
def deep_kernel(demo_state: DemoState, tmp_path: Path) -> Iterator[Kernel]:
    dirs = [wat_skill(demo_state, tmp_path, f"deep{d}", constant_output_wat(nested_output(d)))
            for d in DEPTHS]
    cfg = KernelConfig.from_toml(demo_state.config)
    with Kernel(cfg.with_(skill_dirs=(*cfg.skill_dirs, *dirs))) as kernel:
        yield kernel


@pytest.mark.parametrize("depth", DEPTHS)
def test_kernel_refuses_deep_output_with_a_typed_error(deep_kernel: Kernel, depth: int) -> None:
    with pytest.raises(ToolCallError) as info:
        deep_kernel.invoke(f"deep{depth}__execute", {})
    assert info.value.details["finished_seq"] > 0  # recorded before it propagated
    assert deep_kernel.invoke("calculator__execute", ADD).output == {"result": 5}


def test_shallow_output_still_passes(demo_state: DemoState, tmp_path: Path) -> None:
    skill = wat_skill(demo_state, tmp_path, "shallow", constant_output_wat(nested_output(40)))
    with Kernel.from_config(demo_state.config) as kernel:
        kernel.load_skill(skill)
        out = kernel.invoke("shallow__execute", {}).output
    for _ in range(40):
        out = out["a"]
    assert out == 1


async def _mcp_calls(kernel: Kernel) -> list[Any]:
    from mcp import Client

    from vak.adapters.mcp import build_server

    results = []
    async with Client(build_server(kernel)) as client:
        for depth in DEPTHS:
            results.append(await client.call_tool(f"deep{depth}__execute", {}))
        results.append(await client.call_tool("calculator__execute", ADD))
    return results


def test_mcp_answers_deep_output_with_is_error(deep_kernel: Kernel) -> None:
    pytest.importorskip("mcp")
    *deep, after = anyio.run(_mcp_calls, deep_kernel)
    for result in deep:
        assert result.is_error
        body = json.loads(result.content[0].text)
        assert body["error"] in TOOL_CALL_CODES  # a typed refusal, not internal_error
    assert not after.is_error and json.loads(after.content[0].text) == {"result": 5}


def test_langchain_answers_deep_output_as_tool_error(deep_kernel: Kernel) -> None:
    pytest.importorskip("langchain_core")
    from vak.adapters.langchain import langchain_tools

    tools = {t.name: t for t in langchain_tools(deep_kernel)}
    for depth in DEPTHS:
        answer = tools[f"deep{depth}__execute"].invoke({})
        assert isinstance(answer, str) and answer.split(":")[0] in TOOL_CALL_CODES
    assert tools["calculator__execute"].invoke(ADD) == {"result": 5}


def test_openai_agents_answers_deep_output_as_json_error(deep_kernel: Kernel) -> None:
    pytest.importorskip("agents")
    from vak.adapters.openai_agents import function_tools

    tools = {t.name: t for t in function_tools(deep_kernel)}

    async def call(name: str, args: dict[str, Any]) -> str:
        answer: str = await tools[name].on_invoke_tool(None, json.dumps(args))
        return answer

    for depth in DEPTHS:
        assert "error" in json.loads(anyio.run(call, f"deep{depth}__execute", {}))
    assert json.loads(anyio.run(call, "calculator__execute", ADD)) == {"result": 5}


def test_unexpected_exception_is_a_tool_error_naming_only_its_type(
    kernel: Kernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault that is no ToolCallError still answers the model; its text never leaves."""
    pytest.importorskip("mcp")

    async def broken(*args: object, **kwargs: object) -> Any:
        raise RuntimeError("guest-supplied text: hunter2")

    monkeypatch.setattr(kernel, "ainvoke", broken)

    async def calls() -> list[Any]:
        from mcp import Client

        from vak.adapters.mcp import build_server

        async with Client(build_server(kernel)) as client:
            return [await client.call_tool("calculator__execute", ADD) for _ in range(2)]

    first, second = anyio.run(calls)
    for result in (first, second):  # the session survived the first fault
        assert result.is_error
        body = json.loads(result.content[0].text)
        assert body["error"] == "internal_error" and "RuntimeError" in body["message"]
        assert "hunter2" not in result.content[0].text


@pytest.mark.parametrize("depth", [129, 250, 300, 5000])
def test_deep_input_is_refused_before_the_guest_runs(kernel: Kernel, depth: int) -> None:
    from vak.errors import InputValidationError

    payload: dict[str, Any] = {}
    for _ in range(depth - 1):
        payload = {"a": payload}
    with pytest.raises(InputValidationError):
        kernel.invoke("calculator__execute", payload)
