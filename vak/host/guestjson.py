"""Parsing a guest's JSON argument object, within structural bounds.

A host call's arguments are adversarial bytes. :func:`parse_args` accepts only
a JSON object of at most ``MAX_ARGS_BYTES`` bytes, nested at most
``MAX_DEPTH`` levels (the object itself is level 1) and holding at most
``MAX_NODES`` values in all; anything else raises :class:`~vak.errors.ABIError`,
which the mediation records as ``vak.invalid-args``. orjson parses (its own
recursion limit stops a parser stack overflow); the bounds are then checked
with an explicit stack, never recursion, so no input can exhaust the Python
stack either.
"""

from __future__ import annotations

from typing import Any

import orjson

from vak.errors import ABIError

__all__ = ["MAX_ARGS_BYTES", "MAX_DEPTH", "MAX_NODES", "parse_args"]

MAX_ARGS_BYTES = 2 << 20
MAX_DEPTH = 16
MAX_NODES = 4096


def parse_args(data: bytes, function: str) -> dict[str, Any]:
    """The argument object of host call ``function``.

    Raises:
        ABIError: too large, not JSON, not an object, too deep or too many values
            (``details['reason']`` says which).
    """
    if len(data) > MAX_ARGS_BYTES:
        raise _error(function, "too_large", f"arguments larger than {MAX_ARGS_BYTES} bytes")
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise _error(function, "not_json", "arguments are not valid JSON") from None
    if type(parsed) is not dict:
        raise _error(function, "not_object", "arguments must be a JSON object")
    nodes = 0
    stack: list[tuple[Any, int]] = [(parsed, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _error(function, "too_deep", f"arguments nested deeper than {MAX_DEPTH}")
        items = value.values() if type(value) is dict else value
        nodes += len(value)
        if nodes > MAX_NODES:
            raise _error(function, "too_many_values",
                         f"arguments hold more than {MAX_NODES} values")
        stack.extend((v, depth + 1) for v in items if type(v) in (dict, list))
    return parsed


def _error(function: str, reason: str, message: str) -> ABIError:
    return ABIError(f"host call vak.{function}: {message}", host_function=function, reason=reason)
