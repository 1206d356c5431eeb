"""OpenAI Agents SDK adapter: each kernel tool as a ``FunctionTool``.

``strict_json_schema`` is on only when the signed input schema already
satisfies the SDK's strict profile unchanged; otherwise it is off, because the
SDK would rewrite the schema (e.g. make every field required) and the model
would then be shown something the signer never approved. A
:class:`~vak.errors.ToolCallError` is returned to the model as a JSON error
string so it can recover; other errors propagate.

Requires the ``openai-agents`` extra (``pip install 'vak[openai-agents]'``)::

    >>> tools = function_tools(kernel)                      # doctest: +SKIP
    >>> agent = Agent(name="a", tools=tools)                # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from vak.errors import InputValidationError, ToolCallError
from vak.invocation import ToolSpec, thaw

if TYPE_CHECKING:
    from vak.kernel import Kernel

__all__ = ["function_tool", "function_tools", "is_strict_schema"]


def is_strict_schema(schema: dict[str, Any]) -> bool:
    """True when the Agents SDK's strict profile would leave ``schema`` unchanged."""
    from agents.strict_schema import ensure_strict_json_schema

    try:
        return ensure_strict_json_schema(thaw(schema)) == schema
    except Exception:
        return False


def function_tool(kernel: Kernel, spec: ToolSpec) -> Any:
    """One ``FunctionTool`` calling ``spec`` through ``kernel``."""
    from agents import FunctionTool

    async def on_invoke(ctx: Any, arguments: str) -> str:
        try:
            try:
                data = orjson.loads(arguments or "{}")
            except orjson.JSONDecodeError as exc:
                raise InputValidationError(f"{spec.name}: arguments are not JSON: {exc}") from None
            call_id = getattr(ctx, "tool_call_id", None)
            inv = await kernel.ainvoke(spec.name, data, session="openai-agents", call_id=call_id)
        except ToolCallError as exc:
            return orjson.dumps(exc.to_dict()).decode()
        return orjson.dumps(inv.output).decode()

    schema = thaw(spec.input_schema)
    return FunctionTool(
        name=spec.name,
        description=spec.description,
        params_json_schema=schema,
        on_invoke_tool=on_invoke,
        strict_json_schema=is_strict_schema(schema),
    )


def function_tools(kernel: Kernel) -> list[Any]:
    """A ``FunctionTool`` for every tool the kernel has loaded."""
    return [function_tool(kernel, s) for s in kernel.tools()]
