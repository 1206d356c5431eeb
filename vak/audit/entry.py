"""Audit entries: the field model per kind and the canonical line encoding.

Invariants (see docs/AUDIT-FORMAT.md): one entry is one line of canonical JSON
(``vak.canonical`` profile) followed by ``\\n``; its RFC 9162 leaf hash is
``SHA-256(0x00 || line-without-newline)``; ``prev`` is the previous entry's leaf
hash in hex (64 zeros for seq 0), so the hash chain and the Merkle tree share
one hash.

Example::

    >>> line = encode_entry({"v": 1, "origin": "o", "seq": 0, "time": "t",
    ...                      "kind": "heartbeat", "prev": ZERO_HASH})
    >>> line.endswith(b"\\n")
    True
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from hashlib import sha256
from typing import Any

import orjson

from vak.canonical import MAX_SAFE_INT, CanonicalError, canonical_bytes

__all__ = [
    "FORMAT_VERSION",
    "HEADER_FIELDS",
    "KINDS",
    "ZERO_HASH",
    "check_fields",
    "encode_checked",
    "encode_entry",
    "entry_leaf_hash",
    "has_float",
    "rfc3339_now",
]

FORMAT_VERSION = 1
ZERO_HASH = "0" * 64
HEADER_FIELDS = ("v", "origin", "seq", "time", "kind", "prev")

#: kind -> fields the writer insists on (the rest of the doc's optional fields may appear)
KINDS: dict[str, tuple[str, ...]] = {
    "log_opened": ("key_id",),
    "key_rotated": ("old_key_id", "new_key_id", "new_vkey"),
    "invocation_started": ("invocation", "skill"),
    "host_decision": ("invocation", "host_function", "resource", "decision"),
    "host_result": ("invocation", "host_function", "outcome"),
    "invocation_finished": ("invocation", "skill", "outcome"),
    "heartbeat": (),
    "recovered": ("dropped_bytes", "dropped_sha256"),
    "log_closed": (),
}

_SCALARS = (str, bool, type(None))
_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER


def _plain(value: Any) -> bool:
    """Fast profile check: True when orjson's sorted output is already canonical.

    Iterative and branch-light because it runs on every append (the hot path).
    """
    stack = [value]
    pop, push, extend = stack.pop, stack.append, stack.extend
    while stack:
        v = pop()
        t = type(v)
        if t is str or t is bool or v is None:
            continue
        if t is int:
            if not -MAX_SAFE_INT <= v <= MAX_SAFE_INT:
                return False
        elif t is dict:
            for k, x in v.items():
                if type(k) is not str or not k.isascii():
                    return False
                if type(x) is not str:
                    push(x)
        elif t is list or t is tuple:
            extend(v)
        else:
            return False
    return True


def encode_entry(entry: Mapping[str, Any]) -> bytes:
    """Canonical line (with trailing newline) for ``entry``.

    Raises:
        CanonicalError: a value is outside the canonical profile (float, big int, ...).
    """
    if type(entry) is dict and _plain(entry):
        return orjson.dumps(entry, option=_OPTS | orjson.OPT_APPEND_NEWLINE)
    return canonical_bytes(dict(entry)) + b"\n"


def encode_checked(fields: Mapping[str, Any], header: dict[str, Any]) -> bytes:
    """Like :func:`encode_entry` but only the caller's ``fields`` need checking.

    The log builds ``header`` itself from known types, so the hot path skips it.

    Raises:
        CanonicalError: a value in ``fields`` is outside the canonical profile.
    """
    header.update(fields)
    try:
        line = orjson.dumps(header, option=_OPTS | orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # big int, non-str key, unsupported type: let the exact check explain
        return canonical_bytes(header) + b"\n"
    # orjson already refused non-str keys and integers beyond 2**53; floats (and the
    # rare non-ASCII key order) need the exact check, done only when a float type or
    # non-ASCII output makes it possible.
    if line.isascii() and not _may_hold_float(fields):
        return line
    return canonical_bytes(header) + b"\n"


_NESTED = frozenset({dict, list, tuple})


def has_float(value: Any) -> bool:
    """True if a float hides anywhere in ``value`` (one C-level type scan per container)."""
    stack = [value]
    while stack:
        v = stack.pop()
        items = v.values() if type(v) is dict else v
        types = set(map(type, items))
        if float in types:
            return True
        if not types.isdisjoint(_NESTED):
            stack += [x for x in items if type(x) in _NESTED]
    return False


_may_hold_float = has_float


def entry_leaf_hash(line: bytes) -> bytes:
    """RFC 9162 leaf hash of one line; the trailing newline is not hashed."""
    if line.endswith(b"\n"):
        line = line[:-1]
    return sha256(b"\x00" + line).digest()


def check_fields(kind: str, fields: Mapping[str, Any]) -> None:
    """Reject unknown kinds, missing required fields and attempts to set the header.

    Raises:
        CanonicalError: the caller's fields cannot form a valid entry of ``kind``.
    """
    required = KINDS.get(kind)
    if required is None:
        raise CanonicalError(f"unknown audit entry kind {kind!r}; known: {sorted(KINDS)}")
    for name in required:
        if name not in fields:
            raise CanonicalError(f"{kind} entry needs field {name!r}")
    for name in HEADER_FIELDS:
        if name in fields:
            raise CanonicalError(f"field {name!r} is set by the log, not the caller")


_time_cache: list[Any] = [None, ""]


def rfc3339_now() -> str:
    """UTC time with microseconds, ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (cheap: cached seconds)."""
    ns = time.time_ns()
    sec, us = divmod(ns // 1000, 1_000_000)
    if _time_cache[0] != sec:
        _time_cache[0] = sec
        _time_cache[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{_time_cache[1]}.{us:06d}Z"
