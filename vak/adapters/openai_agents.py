"""OpenAI Agents SDK adapter: each kernel tool as a ``FunctionTool``.

``strict_json_schema`` is on only when the signed input schema already
satisfies the SDK's strict profile unchanged; otherwise it is off, because the
SDK would rewrite the schema (e.g. make every field required) and the model
would then be shown something the signer never approved. A failed call,
whatever it raised (see :mod:`vak.adapters._failure`), is returned to the
model as a JSON error string so it can recover; the agent run goes on.

Requires the ``openai-agents`` extra (``pip install 'vak[openai-agents]'``)::

    >>> tools = function_tools(kernel)                      # doctest: +SKIP
    >>> agent = Agent(name="a", tools=tools)                # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from vak.adapters._failure import failure_body
from vak.errors import InputValidationError
from vak.invocation import ToolSpec, thaw

if TYPE_CHECKING:
    from vak.kernel import Kernel

__all__ = ["function_tool", "function_tools", "is_strict_schema"]


def is_strict_schema(schema: dict[str, Any]) -> bool:
    """True when the Agents SDK's strict profile would leave ``schema`` unchanged."""
    from agents.exceptions import UserError
    from agents.strict_schema import ensure_strict_json_schema

    try:
        strict: dict[str, Any] = ensure_strict_json_schema(thaw(schema))
    except (UserError, TypeError, ValueError, KeyError):
        return False  # the SDK cannot make it strict: keep the signed schema, non-strict
    return strict == schema


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
            return orjson.dumps(inv.output).decode()
        except Exception as exc:  # noqa: BLE001 - answered as a tool error, never hidden
            return orjson.dumps(failure_body(exc)).decode()

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
