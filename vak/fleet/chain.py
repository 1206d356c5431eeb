"""One origin's chain as a reader sees it: entry checks, the Merkle frontier, key trust.

Shared by the shipper (which refuses a batch) and the fleet verifier (which
reports findings), so both apply exactly the same rules of
docs/AUDIT-FORMAT.md:

* an entry line is canonical JSON (re-encoding gives the same bytes, no
  floats, no integer beyond 2**53), a known kind with its required fields,
  ``v`` 1, this origin, the next ``seq`` and ``prev`` the previous leaf hash;
* the Merkle root at a checkpoint's size is the root of the frontier there;
* a checkpoint counts only when a trusted key's signature verifies; a key
  named by a ``key_rotated`` entry becomes trusted once a checkpoint by an
  already trusted key covers that entry (so the first key vouches for all).

Every check *raises* :class:`ChainProblem`; the caller decides whether that
refuses a batch or becomes a finding.

Example::

    >>> state = ChainState.empty("o")
    >>> state.size, state.last_leaf == bytes(32)
    (0, True)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

import orjson

from vak.audit.checkpoint import (
    CheckpointSignatureError,
    SignedCheckpoint,
    UntrustedKeyError,
    verify_checkpoint,
)
from vak.audit.entry import ENTRY_OPTS, FORMAT_VERSION, KINDS
from vak.audit.keys import TrustedKey, parse_verifier_key
from vak.audit.merkle import CompactRange
from vak.canonical import CanonicalError, canonical_bytes
from vak.errors import KeyFileError

__all__ = [
    "ChainProblem",
    "ChainState",
    "CheckedEntry",
    "Frontier",
    "KeyRing",
    "check_line",
]

_LEAF = sha256(b"\x00")
_REQUIRED = {kind: tuple(names) for kind, names in KINDS.items()}


class ChainProblem(Exception):
    """Why a line or checkpoint does not extend the chain.

    ``problem`` is one of ``malformed``, ``spliced``, ``gap``, ``fork``,
    ``rollback``, ``bad_signature``, ``untrusted``; ``seq`` the entry or size.
    """

    def __init__(self, problem: str, seq: int | None, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.seq = seq
        self.message = message


class Frontier(CompactRange):
    """A :class:`CompactRange` that can be stored: the perfect-subtree roots, 32 bytes each."""

    __slots__ = ()

    def to_bytes(self) -> bytes:
        return b"".join(self._stack)

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> Frontier:
        """Rebuild the frontier of a tree of ``size`` leaves.

        Raises:
            ValueError: ``data`` is not one 32-byte hash per set bit of ``size``.
        """
        if size < 0 or len(data) != 32 * bin(size).count("1"):
            raise ValueError(f"frontier of {len(data)} bytes does not fit tree size {size}")
        f = cls()
        f._stack = [data[i:i + 32] for i in range(0, len(data), 32)]
        f.size = size
        return f


@dataclass(slots=True)
class ChainState:
    """Where one origin's stored chain ends: the next seq, the last leaf, the frontier."""

    origin: str
    size: int
    last_leaf: bytes
    frontier: Frontier

    @classmethod
    def empty(cls, origin: str) -> ChainState:
        return cls(origin, 0, bytes(32), Frontier())


@dataclass(frozen=True, slots=True)
class CheckedEntry:
    """One verified line: its seq, leaf hash, kind and parsed object."""

    seq: int
    leaf: bytes
    kind: str
    entry: dict[str, Any]


def _canonical(raw: bytes, obj: Any) -> bool:
    """Re-encoding gives the same bytes. As in the audit verifier's fast path, floats
    are not looked for here: the writer never emits one, and a float edited into a
    line breaks the chain or a signed root, which refuses the batch anyway."""
    if raw.isascii():
        try:
            return orjson.dumps(obj, option=ENTRY_OPTS) == raw
        except TypeError:  # an integer beyond the canonical range
            return False
    try:
        return canonical_bytes(obj) == raw
    except CanonicalError:
        return False


def check_line(state: ChainState, raw: bytes) -> CheckedEntry:
    """Check that ``raw`` (one line, no newline) is the next entry of ``state``; advance it.

    Raises:
        ChainProblem: the line is malformed, of another origin, not the next
            seq (``gap`` if beyond, ``fork`` if before) or does not chain.
    """
    seq = state.size
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ChainProblem("malformed", seq, f"entry {seq} is not JSON") from None
    if type(obj) is not dict or not _canonical(raw, obj):
        raise ChainProblem("malformed", seq, f"entry {seq} is not canonical JSON")
    kind = obj.get("kind")
    got = obj.get("seq")
    if type(got) is not int or type(obj.get("v")) is not int or obj["v"] != FORMAT_VERSION:
        raise ChainProblem("malformed", seq, f"entry {seq} has a bad v or seq header")
    if type(kind) is not str or kind not in _REQUIRED or type(obj.get("time")) is not str:
        raise ChainProblem("malformed", seq, f"entry {seq} has an unknown kind or no time")
    missing = [n for n in _REQUIRED[kind] if n not in obj]
    if missing:
        raise ChainProblem("malformed", seq, f"entry {seq} ({kind}) lacks {missing}")
    if obj.get("origin") != state.origin:
        raise ChainProblem("spliced", seq, f"entry {seq} belongs to another origin")
    if got != seq:
        problem = "gap" if got > seq else "fork"
        raise ChainProblem(problem, seq, f"expected seq {seq}, found seq {got}")
    if obj.get("prev") != state.last_leaf.hex():
        raise ChainProblem("fork", seq, f"entry {seq}'s prev does not chain to entry {seq - 1}"
                           " as stored")
    h = _LEAF.copy()
    h.update(raw)
    leaf = h.digest()
    state.frontier.append(leaf)
    state.size = seq + 1
    state.last_leaf = leaf
    return CheckedEntry(seq, leaf, kind, obj)


@dataclass(slots=True)
class KeyRing:
    """The keys trusted for one origin, and rotations waiting for a covering checkpoint."""

    origin: str
    keys: dict[tuple[str, bytes], TrustedKey]
    pending: list[tuple[int, TrustedKey]] = field(default_factory=list)
    #: keys promoted from rotations: (seq of the key_rotated entry, key)
    promoted: list[tuple[int, TrustedKey]] = field(default_factory=list)

    @classmethod
    def of(cls, origin: str, keys: Iterable[TrustedKey]) -> KeyRing:
        mine = {(k.name, k.note_key_id): k for k in keys if k.name == origin}
        return cls(origin, mine)

    def note_rotation(self, checked: CheckedEntry) -> None:
        """Remember the key a ``key_rotated`` entry names (trusted once covered)."""
        vkey = checked.entry.get("new_vkey")
        if not isinstance(vkey, str):
            return
        try:
            key = parse_verifier_key(vkey)
        except KeyFileError:
            return  # a rotation to a key that cannot be parsed vouches for nothing
        if key.name == self.origin:
            self.pending.append((checked.seq, key))

    def verify_group(self, group: Sequence[SignedCheckpoint]) -> list[SignedCheckpoint]:
        """Verify the checkpoints of one size; returns those a trusted key signed.

        Rotations covered by a verified checkpoint are promoted first, then the
        rest of the group is tried again (the new key signs the same tree).

        Raises:
            ChainProblem: ``bad_signature`` when a trusted key's signature fails.
        """
        valid: list[SignedCheckpoint] = []
        todo = list(group)
        while todo:
            left = []
            for cp in todo:
                try:
                    verify_checkpoint(cp, self.keys.values())
                except UntrustedKeyError:
                    left.append(cp)
                    continue
                except CheckpointSignatureError as exc:
                    raise ChainProblem("bad_signature", cp.checkpoint.size,
                                       exc.message) from None
                valid.append(cp)
            if len(left) == len(todo) or not valid or not self._promote(valid[-1]):
                break
            todo = left
        return valid

    def _promote(self, cp: SignedCheckpoint) -> bool:
        size = cp.checkpoint.size
        ready = [(s, k) for s, k in self.pending if s < size]
        self.pending = [(s, k) for s, k in self.pending if s >= size]
        for s, k in ready:
            if (k.name, k.note_key_id) not in self.keys:
                self.keys[(k.name, k.note_key_id)] = k
                self.promoted.append((s, k))
        return bool(ready)
