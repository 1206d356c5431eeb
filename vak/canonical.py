"""Canonical JSON bytes (RFC 8785 / JCS, restricted profile).

Signing (manifests, checkpoints) and the audit log both hash and sign JSON, so
the same value must always encode to the same bytes. We use a *restricted
profile* of RFC 8785 that avoids its hardest part (float formatting):

* values: ``None``, ``bool``, ``int`` in ``[-(2**53 - 1), 2**53 - 1]``, ``str``,
  ``list``/``tuple``, and ``dict`` with ``str`` keys; **no floats**;
* object keys sorted by their UTF-16 code units (RFC 8785 section 3.2.3);
* no insignificant whitespace, UTF-8 output, minimal string escaping.

Example::

    >>> canonical_bytes({"b": 1, "a": [True, None]})
    b'{"a":[true,null],"b":1}'

orjson does the encoding (fast); it sorts keys by code point, which equals
UTF-16 order except when a key holds characters above U+FFFF *and* another key
differs at a position with U+E000..U+FFFF. Only then we fall back to an
explicit UTF-16 sort. ``rfc8785`` is the test oracle for these bytes.

Nesting is bounded by :data:`MAX_DEPTH` everywhere here: a value nested deeper
is a :class:`CanonicalError`, never a ``RecursionError`` (bytes to parse come
from skills, logs and peers, so their structure is adversarial).
:func:`nesting_depth` applies the same bound, without recursion, to decoded
values the kernel hands on (skill outputs).
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = [
    "MAX_DEPTH", "MAX_SAFE_INT", "CanonicalError", "canonical_bytes", "nesting_depth",
    "parse_canonical",
]

MAX_SAFE_INT = 2**53 - 1
#: deepest nesting of arrays and objects accepted (orjson itself encodes at most 254)
MAX_DEPTH = 128


class CanonicalError(ValueError):
    """A value is outside the canonical profile, or bytes are not canonical."""


def nesting_depth(value: object, limit: int = MAX_DEPTH) -> int:
    """How deeply arrays and objects nest in ``value`` (a scalar is 0), counted to ``limit + 1``.

    Iterative, so any depth is measured without recursion; the walk stops as
    soon as ``limit`` is exceeded, so a caller's check costs at most the size
    of the first ``limit + 1`` levels of one branch plus what it already saw.
    """
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        stack.extend((child, depth) for child in children if isinstance(child, dict | list | tuple))
    return deepest


def _check(value: Any, path: str, depth: int = 0) -> bool:
    """Validate the profile; return True if a UTF-16 key re-sort is needed."""
    if depth >= MAX_DEPTH and isinstance(value, list | tuple | dict):
        raise CanonicalError(f"{path[:80]}...: nested deeper than {MAX_DEPTH} levels")
    if value is None or value is True or value is False or isinstance(value, str):
        return False
    if isinstance(value, int):
        if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
            raise CanonicalError(f"{path}: integer {value} is outside +/-(2**53-1)")
        return False
    if isinstance(value, float):
        raise CanonicalError(f"{path}: floats are not allowed in canonical JSON")
    if isinstance(value, list | tuple):
        resort = False
        for i, item in enumerate(value):
            resort |= _check(item, f"{path}[{i}]", depth + 1)
        return resort
    if isinstance(value, dict):
        resort = False
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalError(f"{path}: object key {key!r} is not a string")
            if not key.isascii() and any(ord(c) > 0xFFFF for c in key):
                resort = True
            resort |= _check(item, f"{path}.{key}", depth + 1)
        return resort
    raise CanonicalError(f"{path}: {type(value).__name__} is not a JSON value")


def _utf16_sorted(value: Any) -> Any:
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
        return {k: _utf16_sorted(value[k]) for k in keys}
    if isinstance(value, list | tuple):
        return [_utf16_sorted(v) for v in value]
    return value


def canonical_bytes(value: Any) -> bytes:
    """Encode ``value`` as canonical JSON bytes.

    Raises:
        CanonicalError: a float, an out-of-range integer, a non-string key or a
            non-JSON type appears anywhere in ``value``.
    """
    if _check(value, "$"):
        return orjson.dumps(_utf16_sorted(value))
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def parse_canonical(data: bytes) -> Any:
    """Parse ``data`` and insist that it is already canonical.

    Raises:
        CanonicalError: not valid JSON, outside the profile, or not byte-equal
            to its own canonical encoding (whitespace, key order, escapes).
    """
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CanonicalError(f"not valid JSON: {exc}") from None
    if canonical_bytes(value) != bytes(data):
        raise CanonicalError("JSON is valid but not in canonical form")
    return value
