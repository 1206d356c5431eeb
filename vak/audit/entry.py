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
from collections.abc import Iterable, Mapping
from hashlib import sha256
from typing import Any

import orjson

from vak.canonical import CanonicalError, canonical_bytes

__all__ = [
    "ENTRY_OPTS",
    "FORMAT_VERSION",
    "HEADER_FIELDS",
    "KINDS",
    "LINE_OPTS",
    "MAX_DEPTH",
    "SKILL_ROUTES",
    "ZERO_HASH",
    "Sealed",
    "check_fields",
    "encode_checked",
    "encode_entry",
    "entry_leaf_hash",
    "entry_problem",
    "has_float",
    "needs_exact",
    "nesting_depth",
    "rfc3339_now",
    "short_repr",
    "unseal",
    "unsealed",
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
    "host_resolve": ("invocation", "host_function", "resource", "decision"),
    "host_result": ("invocation", "host_function", "outcome"),
    "invocation_finished": ("invocation", "skill", "outcome"),
    "heartbeat": (),
    "recovered": ("dropped_bytes", "dropped_sha256"),
    "log_closed": (),
    "skill_loaded": ("skill", "tools", "route"),
    "worker_crashed": ("skill", "exit"),
    "sandbox_degraded": ("missing",),
    "skill_refused": ("error",),
    "call_refused": ("tool", "error"),
    "policy_set": ("policy_set", "schema", "files"),
    "approval": ("invocation", "approval", "decision_seq", "statement", "signature"),
}

#: deepest nesting of objects/arrays an entry may have (the entry object itself is 1);
#: the writer refuses deeper entries and the verifier reports them ``MALFORMED``
MAX_DEPTH = 32

#: required fields the format itself reads (key binding, recovery): they must be
#: strings (checked by :func:`entry_problem`); the writer makes these entries itself
_STRING_FIELDS = frozenset({"key_id", "old_key_id", "new_key_id", "new_vkey", "dropped_sha256"})

#: the ``route`` values of ``skill_loaded`` (where the skill's calls run)
SKILL_ROUTES = ("engine", "worker")

_OPTS = (orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER | orjson.OPT_PASSTHROUGH_DATACLASS
         | orjson.OPT_PASSTHROUGH_DATETIME)
#: options of the hot-path encoder: orjson refuses (TypeError) non-str keys, integers
#: beyond 2**53, dataclasses and datetimes, so those reach the exact check
ENTRY_OPTS = _OPTS
LINE_OPTS = _OPTS | orjson.OPT_APPEND_NEWLINE


class Sealed:
    """A JSON value checked and encoded once, then placed whole into many entries.

    Why: the writer walks every value of every entry for floats and exotic types
    and encodes it; a value that recurs unchanged (a skill's reference, the Cedar
    request of a memoised host call) need not be walked and encoded again. The
    constructor checks ``value`` against the canonical profile and keeps its
    canonical bytes as an ``orjson.Fragment``, which the encoder copies verbatim
    (the bytes sort and escape exactly as in the whole line), and a private
    parsed copy for the exact path and for scrubbing: nothing the caller holds
    can change what a seal writes.

    Raises (constructor):
        CanonicalError: ``value`` is outside the profile or nested too deeply.
    """

    __slots__ = ("depth", "fragment", "value")

    def __init__(self, value: Any) -> None:
        data = canonical_bytes(value)
        #: a parsed copy no one else references (the exact path and scrubbers read it)
        self.value: Any = orjson.loads(data)
        #: nesting depth of the value itself (a scalar is 0)
        self.depth = nesting_depth(self.value, MAX_DEPTH)
        if self.depth >= MAX_DEPTH:
            raise CanonicalError(f"sealed audit value nests deeper than {MAX_DEPTH - 1} levels")
        self.fragment = orjson.Fragment(data)

    def __repr__(self) -> str:
        return f"Sealed({short_repr(self.value)})"


def unseal(value: Any) -> Any:
    """The ``default=`` hook of the entry encoder: a :class:`Sealed` value's fragment.

    Raises:
        TypeError: any other type orjson cannot encode (the exact path explains it).
    """
    if value.__class__ is Sealed:
        return value.fragment
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def unsealed(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` with every top-level :class:`Sealed` value replaced by its plain value
    (for code that walks values, such as a scrubber)."""
    return {k: v.value if v.__class__ is Sealed else v for k, v in fields.items()}


def needs_exact(fields: Mapping[str, Any]) -> bool:
    """True unless every value in ``fields`` is a plain JSON type (no float, no exotica).

    The hot-path guard that keeps floats (and types orjson would serialise on its
    own, e.g. ``uuid.UUID`` or ``enum.Enum``) out of the fast encoding: one
    recursive pass over the exact classes ``str``/``int``/``bool``/``None``/``dict``/
    ``list``/``tuple``; anything else, floats included, sends the entry to
    :func:`vak.canonical.canonical_bytes`, which either accepts or raises. A
    recursive function beats an explicit stack here (about 1 us per host entry).
    A :class:`Sealed` value was checked when it was made; only its depth counts.
    """
    return _values_need_exact(fields.values(), 2)


def _values_need_exact(items: Iterable[Any], depth: int) -> bool:
    for x in items:
        c = x.__class__
        if c is str or c is int or c is bool or x is None:
            continue
        if depth > MAX_DEPTH:
            return True  # the exact path names the depth problem
        if c is dict:
            if _values_need_exact(x.values(), depth + 1):
                return True
        elif c is list or c is tuple:
            if _values_need_exact(x, depth + 1):
                return True
        elif c is not Sealed or depth + x.depth > MAX_DEPTH + 1:
            return True
    return False


def nesting_depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Container nesting depth of ``value`` (a scalar is 0), counted up to ``limit + 1``.

    Iterative, so a hostile structure cannot exhaust the interpreter's stack.
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if type(v) is dict:
            items: Iterable[Any] = v.values()
        elif type(v) in (list, tuple):
            items = v
        else:
            continue
        deepest = max(deepest, d)
        if d > limit:
            return d
        stack += [(x, d + 1) for x in items if type(x) in _NESTED]
    return deepest


def encode_entry(entry: Mapping[str, Any]) -> bytes:
    """Canonical line (with trailing newline) for ``entry``.

    Raises:
        CanonicalError: a value is outside the canonical profile (float, big int, ...).
    """
    return encode_checked(entry, {})


def encode_checked(fields: Mapping[str, Any], header: dict[str, Any]) -> bytes:
    """Canonical line for ``header`` updated with ``fields``; only ``fields`` need checking.

    The log builds ``header`` itself from known types, so only the caller's
    values go through :func:`needs_exact`.

    Raises:
        CanonicalError: a value in ``fields`` is outside the canonical profile.
    """
    header.update(fields)
    try:
        line = orjson.dumps(header, default=unseal, option=LINE_OPTS)
    except TypeError:  # big int, non-str key, unsupported type: let the exact check explain
        return _exact_line(header)
    # orjson sorts keys by code point, which equals RFC 8785's UTF-16 order for ASCII
    # keys; non-ASCII output (or any non-plain value) takes the exact path.
    if line.isascii() and not needs_exact(fields):
        return line
    return _exact_line(header)


def _exact_line(entry: Mapping[str, Any]) -> bytes:
    """The exact (slow) encoding, after the depth bound the fast path leaves to it."""
    entry = _expand(entry)
    if nesting_depth(entry) > MAX_DEPTH:
        raise CanonicalError(f"audit entry nests deeper than {MAX_DEPTH} levels")
    return canonical_bytes(entry) + b"\n"


def _expand(value: Any, depth: int = 1) -> Any:
    """``value`` with every :class:`Sealed` inside it replaced by its plain value
    (below ``MAX_DEPTH`` levels; deeper is left for the depth check to refuse)."""
    c = value.__class__
    if c is Sealed:
        return value.value
    if depth > MAX_DEPTH:
        return value
    if c is dict:
        return {k: _expand(v, depth + 1) for k, v in value.items()}
    if c is list or c is tuple:
        return [_expand(v, depth + 1) for v in value]
    return value


def entry_problem(e: Any) -> str | None:
    """Why a parsed line is not a valid entry of the profile, or None (types included).

    Checks the header's exact JSON types, a known kind with its required
    fields (string-valued ones as strings) and the nesting bound; canonical
    bytes and floats are the caller's second step. Never raises, whatever
    ``e`` is.
    """
    if type(e) is not dict:
        return "line is not a JSON object"
    v = e.get("v")
    if type(v) is not int or v != FORMAT_VERSION:
        return f"unsupported format version {short_repr(v)}"
    seq, prev, kind = e.get("seq"), e.get("prev"), e.get("kind")
    if type(seq) is not int or seq < 0:
        return "seq is not a non-negative integer"
    if type(prev) is not str or len(prev) != 64:
        return "prev is not a 64-character hex hash"
    if type(e.get("origin")) is not str or type(e.get("time")) is not str:
        return "origin or time is missing or not a string"
    if type(kind) is not str or kind not in KINDS:
        return f"unknown kind {short_repr(kind)}"
    for name in KINDS[kind]:
        if name not in e:
            return f"{kind} entry lacks field {name!r}"
        if name in _STRING_FIELDS and type(e[name]) is not str:
            return f"{kind} entry field {name!r} is not a string"
    if nesting_depth(e) > MAX_DEPTH:
        return f"entry nests deeper than {MAX_DEPTH} levels"
    return None


def short_repr(value: Any) -> str:
    """A bounded, escaped rendering of a hostile value for a message (never raises).

    Containers are named, not rendered (their ``repr`` could recurse without
    bound); strings are cut before ``repr`` escapes their control characters.
    """
    if type(value) in _NESTED:
        return f"<{type(value).__name__}>"
    text = repr(value) if not isinstance(value, str) or len(value) < 100 else repr(value[:60])
    return text if len(text) <= 60 else text[:57] + "..."


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


_time_ns = time.time_ns
_stamp: tuple[int, str] = (-1, "")  # (second, "YYYY-MM-DDTHH:MM:SS."), replaced atomically


def rfc3339_now() -> str:
    """UTC time with microseconds, ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (cheap: cached seconds)."""
    global _stamp
    us = _time_ns() // 1000
    sec, prefix = _stamp
    if us // 1_000_000 != sec:
        sec = us // 1_000_000
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec))
        _stamp = (sec, prefix)
    return f"{prefix}{us % 1_000_000:06d}Z"
