"""Bounded JSON decoding: one decoder for every JSON a guest hands the kernel.

Why: JSON from a skill (its output, the arguments of its host calls) is
adversarial. ``orjson`` parses it iteratively with a depth cap of 1024, so a
document 1,000 levels deep parses fine and then crashes whatever walks it
recursively later (JSON Schema validation, ``json.dumps`` in an adapter, a
``repr``) with ``RecursionError``. Structure is therefore bounded here, once,
at the ABI, before any recursive code sees the value:

* nesting depth (arrays and objects), ``JsonBounds.max_depth``;
* characters of one string or object key, ``max_string_chars``;
* items of one array or members of one object, ``max_items``.

A violation raises the caller's typed error (default
:class:`vak.errors.OutputStructureError`) whose message names the bound and its
limit and never quotes the guest's text. Invalid JSON raises
``orjson.JSONDecodeError`` unchanged, so callers keep their own "not JSON" error.

The common case costs one ``orjson.loads`` plus three ``bytes.count`` calls: a
document whose byte length, bracket count and comma count are all within the
bounds cannot exceed any of them, so it is never walked::

    >>> decode(b'{"a":[1,2,3]}', JsonBounds(), "output")
    {'a': [1, 2, 3]}
    >>> decode(b'[' * 100 + b']' * 100, JsonBounds(max_depth=64), "output")
    Traceback (most recent call last):
    ...
    vak.errors.OutputStructureError: output: JSON nested deeper than 64 levels
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from vak.errors import OutputStructureError, VakError

__all__ = ["DEFAULT_BOUNDS", "JsonBounds", "check", "decode"]

#: orjson's own nesting limit: deeper documents fail to parse at all
_ORJSON_MAX_DEPTH = 1024
#: a JSON string token (used to drop strings before counting brackets)
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


@dataclass(frozen=True, slots=True)
class JsonBounds:
    """Structural limits of one JSON document (all inclusive)."""

    max_depth: int = 64
    max_string_chars: int = 1 << 20
    max_items: int = 100_000


DEFAULT_BOUNDS = JsonBounds()


def decode(
    data: bytes, bounds: JsonBounds, what: str,
    error: type[VakError] = OutputStructureError,
) -> Any:
    """Parse ``data`` and enforce ``bounds``; return the decoded value.

    Raises:
        orjson.JSONDecodeError: ``data`` is not UTF-8 JSON.
        VakError: of class ``error``, a structural bound is exceeded.
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        opened = data.count(b"[") + data.count(b"{")
        if opened > _ORJSON_MAX_DEPTH and _skeleton_depth(data) > bounds.max_depth:
            raise _too_deep(bounds, what, error) from None
        raise
    if _needs_walk(data, bounds) and isinstance(value, dict | list | str):
        _walk(value, bounds, what, error)
    return value


def check(
    data: bytes, bounds: JsonBounds, what: str,
    error: type[VakError] = OutputStructureError,
) -> None:
    """Like :func:`decode`, for callers that keep the bytes."""
    decode(data, bounds, what, error)


def _needs_walk(data: bytes, bounds: JsonBounds) -> bool:
    """False when counts on the raw bytes already prove every bound holds."""
    return (len(data) > bounds.max_string_chars
            or data.count(b",") + 1 > bounds.max_items
            or data.count(b"[") + data.count(b"{") > bounds.max_depth)


def _too_deep(bounds: JsonBounds, what: str, error: type[VakError]) -> VakError:
    return error(f"{what}: JSON nested deeper than {bounds.max_depth} levels",
                 bound="max_depth", limit=bounds.max_depth)


def _skeleton_depth(data: bytes) -> int:
    """Maximum bracket depth of ``data`` with strings removed (no recursion)."""
    skeleton = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for byte in skeleton:
        if byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _walk(value: Any, bounds: JsonBounds, what: str, error: type[VakError]) -> None:
    """Iterative check of a decoded value (a stack, never the call stack).

    Only containers and strings are visited; numbers, booleans and null
    cannot break a bound.
    """
    max_depth, max_items, max_chars = bounds.max_depth, bounds.max_items, bounds.max_string_chars
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        if isinstance(item, str):
            if len(item) > max_chars:
                raise error(f"{what}: a JSON string is longer than {max_chars} characters",
                            bound="max_string_chars", limit=max_chars)
            continue
        if depth > max_depth:
            raise _too_deep(bounds, what, error)
        if len(item) > max_items:
            kind = "object" if isinstance(item, dict) else "array"
            raise error(f"{what}: a JSON {kind} has more than {max_items} items",
                        bound="max_items", limit=max_items)
        if isinstance(item, dict):
            for key in item:
                if len(key) > max_chars:
                    push((key, depth))
            children = item.values()
        else:
            children = item
        depth += 1
        for child in children:
            if isinstance(child, dict | list | str):
                push((child, depth))
