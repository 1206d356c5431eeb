"""LangChain adapter: each kernel tool as a ``StructuredTool``.

The ``args_schema`` is the signed manifest's input schema as a plain dict (no
pydantic model is generated, so nothing is lost in translation). A failed
call, whatever it raised (see :mod:`vak.adapters._failure`), becomes a
``ToolException``, which LangChain hands back to the model as the tool's
answer when ``handle_tool_error`` is set (it is, by default here).

Requires the ``langchain`` extra (``pip install 'vak[langchain]'``)::

    >>> tools = langchain_tools(kernel)                     # doctest: +SKIP
    >>> tools[0].invoke({"operation": "add", "a": 1, "b": 2})  # doctest: +SKIP
    {'result': 3}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vak.adapters._failure import failure_body
from vak.invocation import ToolSpec, thaw

if TYPE_CHECKING:
    from vak.kernel import Kernel

__all__ = ["langchain_tool", "langchain_tools"]


def langchain_tool(kernel: Kernel, spec: ToolSpec, *, handle_tool_error: bool = True) -> Any:
    """One ``StructuredTool`` calling ``spec`` through ``kernel``."""
    from langchain_core.tools import StructuredTool, ToolException

    def refused(exc: Exception) -> ToolException:
        body = failure_body(exc)
        return ToolException(f"{body['error']}: {body['message']}")

    def run(**kwargs: Any) -> Any:
        try:
            return kernel.invoke(spec.name, kwargs, session="langchain").output
        except Exception as exc:  # answered to the model as a tool error
            raise refused(exc) from exc

    async def arun(**kwargs: Any) -> Any:
        try:
            return (await kernel.ainvoke(spec.name, kwargs, session="langchain")).output
        except Exception as exc:  # answered to the model as a tool error
            raise refused(exc) from exc

    return StructuredTool.from_function(
        func=run,
        coroutine=arun,
        name=spec.name,
        description=spec.description,
        args_schema=thaw(spec.input_schema),
        infer_schema=False,
        handle_tool_error=handle_tool_error,
    )


def langchain_tools(kernel: Kernel, *, handle_tool_error: bool = True) -> list[Any]:
    """A ``StructuredTool`` for every tool the kernel has loaded."""
    return [langchain_tool(kernel, s, handle_tool_error=handle_tool_error) for s in kernel.tools()]
