"""Pure converters from :class:`vak.ToolSpec` to the tool dicts agent APIs expect.

Nothing here touches the kernel: a spec in, a fresh plain ``dict`` out (a deep
copy, so a framework that mutates its tool list cannot alter the kernel's
signed schemas)::

    >>> from vak.formats import to_format                      # doctest: +SKIP
    >>> to_format(spec, "anthropic")                           # doctest: +SKIP
    {'name': 'calculator__execute', 'description': ..., 'input_schema': {...}}

Formats:
* ``mcp``: an MCP ``Tool`` (``name``, ``description``, ``inputSchema`` and
  ``outputSchema`` when the output schema is an object schema, as MCP requires);
* ``openai``: Chat Completions ``{"type": "function", "function": {...}}``;
* ``openai-responses``: Responses API ``{"type": "function", "name": ...}``;
* ``anthropic``: Messages API ``{"name", "description", "input_schema"}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from vak.errors import ConfigError
from vak.invocation import ToolSpec, thaw

__all__ = [
    "FORMATS",
    "to_anthropic",
    "to_format",
    "to_mcp",
    "to_openai",
    "to_openai_responses",
    "tool_specs",
]


def to_mcp(spec: ToolSpec) -> dict[str, Any]:
    """An MCP ``Tool`` dict; ``outputSchema`` only for object schemas (MCP's rule)."""
    out: dict[str, Any] = {
        "name": spec.name,
        "description": spec.description,
        "inputSchema": thaw(spec.input_schema),
    }
    if spec.output_schema.get("type") == "object":
        out["outputSchema"] = thaw(spec.output_schema)
    return out


def to_openai(spec: ToolSpec) -> dict[str, Any]:
    """An OpenAI Chat Completions function tool."""
    return {
        "type": "function",
        "function": {
            "name": spec.name,
            "description": spec.description,
            "parameters": thaw(spec.input_schema),
        },
    }


def to_openai_responses(spec: ToolSpec) -> dict[str, Any]:
    """An OpenAI Responses API function tool (flat; ``strict`` off, schemas are not rewritten)."""
    return {
        "type": "function",
        "name": spec.name,
        "description": spec.description,
        "parameters": thaw(spec.input_schema),
        "strict": False,
    }


def to_anthropic(spec: ToolSpec) -> dict[str, Any]:
    """An Anthropic Messages API tool."""
    return {
        "name": spec.name,
        "description": spec.description,
        "input_schema": thaw(spec.input_schema),
    }


FORMATS: dict[str, Callable[[ToolSpec], dict[str, Any]]] = {
    "mcp": to_mcp,
    "openai": to_openai,
    "openai-responses": to_openai_responses,
    "anthropic": to_anthropic,
}


def to_format(spec: ToolSpec, format: str) -> dict[str, Any]:
    """Convert one spec to ``format``.

    Raises:
        ConfigError: ``format`` is not one of :data:`FORMATS`.
    """
    try:
        convert = FORMATS[format]
    except KeyError:
        raise ConfigError(
            f"unknown tool format {format!r}", field="format", valid=sorted(FORMATS)
        ) from None
    return convert(spec)


def tool_specs(specs: Iterable[ToolSpec], format: str) -> list[dict[str, Any]]:
    """Convert every spec to ``format`` (see :func:`to_format`).

    Raises:
        ConfigError: ``format`` is unknown.
    """
    return [to_format(spec, format) for spec in specs]
