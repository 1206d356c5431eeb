"""The verifier's clean-log fast path: bulk checks over byte ranges, optionally in processes.

Invariants: a range scan either vouches for *every* line of its range (valid
JSON object, canonical bytes, header columns as expected, one origin, required
fields present, each ``prev`` the previous line's leaf hash) or returns None,
so the caller falls back to the line-by-line slow path, which alone produces
findings. A range cannot check its first line's ``prev`` (it lacks the
previous range's last leaf), so it reports it, and :func:`scan_log` checks the
chain across range boundaries.

The file is read in small blocks with ``os.pread`` (no whole-file buffer and
no million-object split: fresh memory is the dominant cost on large logs), so
ranges are split by bytes at line boundaries. A range that does not start at
line 0 first counts the newlines before it to learn its first line number;
it then hashes the Merkle nodes that lie wholly inside it (levels 1..12), and
the parent fills in the one node per level that straddles each boundary
(:func:`vak.audit.merkle.join_levels`).

Parallelism uses ``os.fork`` and one pipe per child; the parent scans the first
range itself. Any child failure (crash, exception, short read) counts as an
anomaly, so the slow path runs: never a wrong "OK".

Example::

    >>> with open("audit/vak.log", "rb") as f:                       # doctest: +SKIP
    ...     clean = scan_log(f.fileno(), None, workers=2)
    >>> clean is None or clean.size                                  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import marshal
import operator
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

import orjson

from vak.audit.entry import FORMAT_VERSION, KINDS, ZERO_HASH
from vak.audit.merkle import MerkleTree, join_levels, perfect_levels

__all__ = ["PARALLEL_MIN_BYTES", "CleanLog", "RangeScan", "StreamScan", "scan_log",
           "scan_range", "scan_stream"]

#: below this many bytes a log is scanned in-process (~20,000 typical entries)
PARALLEL_MIN_BYTES = 8 << 20
_HEIGHT = 12  # Merkle levels hashed inside each range
_BLOCK = 48 << 10  # bytes read per step (~70 entries: the parsed dicts stay in cache)
_COUNT_BLOCK = 1 << 20
_OPT = orjson.OPT_SORT_KEYS
_REQUIRED = {kind: frozenset(names) for kind, names in KINDS.items()}
_HEADER_COLS = operator.itemgetter("v", "origin", "seq", "prev", "time", "kind")
_LEAF_PREFIX = sha256(b"\x00")
# Column type checks the comparisons do not already imply (True == 1 == 1.0 in Python;
# origin, prev and kind are compared with str values or used as keys of _REQUIRED).
_INT, _STR = {int}, {str}


@dataclass(frozen=True, slots=True)
class RangeScan:
    """What a clean range of lines ``[lo, hi)`` contributes to the whole log."""

    lo: int
    hi: int
    origin: str
    first_prev: str  # the first line's prev, for the caller's cross-range check
    last_hex: str  # hex leaf hash of the last line
    last_raw: bytes  # the last line itself
    levels: tuple[bytes, ...]  # Merkle levels 0 (leaves) .. _HEIGHT inside the range
    opened: tuple[tuple[int, bool], ...]  # (seq, entry_sigs) of log_opened entries
    rotations: tuple[tuple[int, str, int], ...]  # (seq, new_vkey, line index)

    def to_wire(self) -> bytes:
        return marshal.dumps((self.lo, self.hi, self.origin, self.first_prev, self.last_hex,
                              self.last_raw, self.levels, self.opened, self.rotations))

    @classmethod
    def from_wire(cls, data: bytes) -> RangeScan:
        return cls(*marshal.loads(data))


@dataclass(frozen=True, slots=True)
class CleanLog:
    """A log the fast path vouches for: its size, origin, tree and rare entries."""

    size: int
    nbytes: int
    origin: str
    last_raw: bytes
    tree: MerkleTree
    opened: list[tuple[int, bool]]
    rotations: list[tuple[int, str, int]]


def _leaf(raw: bytes) -> bytes:
    h = _LEAF_PREFIX.copy()
    h.update(raw)
    return h.digest()


class _Scanner:
    """Chunk-by-chunk bulk checks of consecutive lines (see :func:`scan_range`).

    With ``on_leaves`` each chunk's leaf hashes go there instead of being kept
    (the writer's constant-memory recovery), and ``key_events`` keeps the
    ``log_opened`` / ``key_rotated`` entries themselves (they bind the key).
    """

    def __init__(self, lo: int, origin: str | None,
                 on_leaves: Callable[[bytes], None] | None = None) -> None:
        self.lo, self.next, self.origin = lo, lo, origin
        self.prev: str | None = None
        self.first_prev = ""
        self.last_raw = b""
        self.leaves = bytearray()
        self.on_leaves = on_leaves
        self.opened: list[tuple[int, bool]] = []
        self.rotations: list[tuple[int, str, int]] = []
        self.key_events: list[dict[str, Any]] = []

    def feed(self, raws: list[bytes]) -> bool:
        """Check one chunk of lines; False at any anomaly."""
        entries = list(map(orjson.loads, raws))
        if set(map(type, entries)) != {dict} \
                or orjson.dumps(entries, option=_OPT) != b"[" + b",".join(raws) + b"]":
            return False
        v, origin_col, seq, prevs, time_, kind = zip(*map(_HEADER_COLS, entries), strict=True)
        if self.prev is None:
            self.first_prev = self.prev = prevs[0]
            if self.origin is None:
                self.origin = origin_col[0]
            if type(self.first_prev) is not str or type(self.origin) is not str:
                return False
        start = self.next
        chunk = [_leaf(raw) for raw in raws]
        hexes = list(map(bytes.hex, chunk))
        if list(seq) != list(range(start, start + len(raws))) \
                or list(prevs) != [self.prev, *hexes[:-1]] \
                or origin_col.count(self.origin) != len(raws) \
                or v.count(FORMAT_VERSION) != len(raws) \
                or set(map(type, seq)) != _INT or set(map(type, v)) != _INT \
                or set(map(type, time_)) != _STR \
                or not all(map(operator.ge, map(dict.keys, entries),
                               map(_REQUIRED.__getitem__, kind))):
            return False
        if "log_opened" in kind:
            self.opened += [(start + i, entries[i].get("entry_sigs") is True)
                            for i, k in enumerate(kind) if k == "log_opened"]
            self.key_events += [entries[i] for i, k in enumerate(kind) if k == "log_opened"]
        if "key_rotated" in kind:
            for i, k in enumerate(kind):
                if k == "key_rotated":
                    vkey = entries[i].get("new_vkey")
                    if type(vkey) is not str or type(entries[i].get("old_key_id")) is not str:
                        return False
                    self.rotations.append((start + i, vkey, start + i))
                    self.key_events.append(entries[i])
        self.prev = hexes[-1]
        self.last_raw = raws[-1]
        if self.on_leaves is None:
            self.leaves += b"".join(chunk)
        else:
            self.on_leaves(b"".join(chunk))
        self.next = start + len(raws)
        return True

    def finish(self) -> RangeScan | None:
        if self.prev is None or self.origin is None:
            return None
        return RangeScan(self.lo, self.next, self.origin, self.first_prev, self.prev,
                         self.last_raw, tuple(perfect_levels(bytes(self.leaves), _HEIGHT,
                                                             self.lo)),
                         tuple(self.opened), tuple(self.rotations))


def _count_lines(fd: int, end: int) -> int | None:
    """Newlines in the first ``end`` bytes (None if the file is shorter now)."""
    n = pos = 0
    while pos < end:
        buf = os.pread(fd, min(_COUNT_BLOCK, end - pos), pos)
        if not buf:
            return None
        n += buf.count(b"\n")
        pos += len(buf)
    return n


def scan_range(fd: int, start: int, end: int, origin: str | None) -> RangeScan | None:
    """Bulk-check the lines in bytes ``[start, end)`` of ``fd``; None at any anomaly.

    ``start`` is 0 or just after a newline, and byte ``end - 1`` is a newline.
    Block by block, with no per-line Python loop: every line is parsed
    (``map(loads)``), the block is re-encoded once and compared with its lines
    joined by commas (equal iff every line is canonical: each line parsed alone
    as one complete JSON value, so element boundaries coincide), header fields
    are pulled out as columns and compared with the expected columns, and leaf
    hashes come from one comprehension. Floats are left to the slow path: the
    writer refuses them, so a float can only come with a chain or signature
    failure that sends the log there. With ``origin`` None the range's first
    line names it (and every other line must agree).
    """
    lo = _count_lines(fd, start) if start else 0
    if lo is None:
        return None
    scanner = _Scanner(lo, origin)
    return scanner.finish() if _feed_range(scanner, fd, start, end) else None


def _feed_range(scanner: _Scanner, fd: int, start: int, end: int) -> bool:
    """Feed the lines in bytes ``[start, end)`` block by block; False at any anomaly."""
    carry = b""
    pos = start
    try:
        while pos < end:
            buf = os.pread(fd, min(_BLOCK, end - pos), pos)
            if not buf:
                return False
            pos += len(buf)
            lines = buf.split(b"\n")
            if len(lines) == 1:
                carry += buf
                continue
            lines[0] = carry + lines[0]
            carry = lines.pop()
            if not scanner.feed(lines):
                return False
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, RecursionError):
        return False
    return not carry


@dataclass(slots=True)
class StreamScan:
    """What the writer learns from checking a stretch of its own log (see :func:`scan_stream`)."""

    size: int  # seq after the last line
    last_hex: str  # leaf hash (hex) of the last line, or the given prev
    last_raw: bytes
    key_events: list[dict[str, Any]] = field(default_factory=list)
    opened: list[tuple[int, bool]] = field(default_factory=list)


def scan_stream(fd: int, start: int, end: int, *, first_seq: int, prev: str, origin: str,
                on_leaves: Callable[[bytes], None]) -> StreamScan | None:
    """Bulk-check lines ``[start, end)`` that must continue a chain at ``first_seq``/``prev``.

    The writer's recovery (and, with ``multiprocess``, its catch-up on lines
    another process wrote): every check of :func:`scan_range` plus the first
    line's ``prev``, with each block's leaf hashes handed to ``on_leaves`` and
    not kept, so memory stays constant. None at any anomaly (the caller then
    locates it line by line).
    """
    scanner = _Scanner(first_seq, origin, on_leaves)
    if start == end:
        return StreamScan(first_seq, prev, b"")
    if not _feed_range(scanner, fd, start, end) or scanner.first_prev != prev \
            or scanner.prev is None:
        return None
    return StreamScan(scanner.next, scanner.prev, scanner.last_raw, scanner.key_events,
                      scanner.opened)


def _boundaries(fd: int, size: int, workers: int) -> list[int]:
    """Byte offsets just after a newline near ``k * size / workers`` (plus 0 and size)."""
    cuts = [0]
    for k in range(1, workers):
        pos = max(k * size // workers, cuts[-1])
        while pos < size:
            buf = os.pread(fd, min(_BLOCK, size - pos), pos)
            if not buf:
                break
            at = buf.find(b"\n")
            if at >= 0:
                pos += at + 1
                break
            pos += len(buf)
        if cuts[-1] < pos < size:
            cuts.append(pos)
    cuts.append(size)
    return cuts


def _child(fd: int, start: int, end: int, origin: str | None, wfd: int) -> None:
    """Body of a forked worker: scan, send, and leave without running any cleanup."""
    code = 1
    try:
        part = scan_range(fd, start, end, origin)
        with os.fdopen(wfd, "wb") as out:
            out.write(b"" if part is None else part.to_wire())
        code = 0
    finally:
        os._exit(code)


def _scan_parts(fd: int, size: int, origin: str | None, workers: int,
                ) -> list[RangeScan | None]:
    cuts = _boundaries(fd, size, workers)
    pids: list[int] = []
    pipes: list[int] = []  # read ends not yet consumed
    parts: list[RangeScan | None] = []
    try:
        for start, end in itertools.pairwise(cuts[1:]):
            rfd, wfd = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child, which never returns
                # never unwind into the caller's frames: a second copy of the process
                # must not flush buffers it inherited (an open AuditLog's, say)
                try:
                    os.close(rfd)
                    _child(fd, start, end, origin, wfd)
                finally:
                    os._exit(1)
            os.close(wfd)
            pids.append(pid)
            pipes.append(rfd)
        parts.append(scan_range(fd, cuts[0], cuts[1], origin))
        while pipes:
            with os.fdopen(pipes.pop(0), "rb") as f:
                data = f.read()
            parts.append(RangeScan.from_wire(data) if data else None)
    finally:
        for rfd in pipes:
            os.close(rfd)
        for pid in pids:
            if os.waitpid(pid, 0)[1]:
                parts.append(None)
    return parts


def scan_log(fd: int, origin: str | None, workers: int | None = None) -> CleanLog | None:
    """Vouch for a whole log file (None at any anomaly, torn tail included).

    ``origin`` None means "whatever single origin the log has". Up to
    ``workers`` processes share the work (None: ``os.cpu_count()`` when the caller
    has no other threads, else 1); logs under
    :data:`PARALLEL_MIN_BYTES` are scanned in-process.
    """
    size = os.fstat(fd).st_size
    if size == 0:
        return CleanLog(0, 0, origin or "", b"", MerkleTree(), [], [])
    if os.pread(fd, 1, size - 1) != b"\n":
        return None
    if workers is None:
        # fork() in a threaded process (a kernel's ticker and commit threads) can
        # copy a lock some other thread holds; only fork by default when alone.
        workers = (os.cpu_count() or 1) if threading.active_count() == 1 else 1
    if workers <= 1 or size < PARALLEL_MIN_BYTES or not hasattr(os, "fork"):
        parts = [scan_range(fd, 0, size, origin)]
    else:
        parts = _scan_parts(fd, size, origin, workers)
    prev, hi = ZERO_HASH, 0
    for part in parts:
        if part is None or part.first_prev != prev or part.lo != hi \
                or part.origin != parts[0].origin:  # type: ignore[union-attr]
            return None
        prev, hi = part.last_hex, part.hi
    clean = [p for p in parts if p is not None]
    tree = MerkleTree.from_levels(join_levels([(p.lo, p.levels) for p in clean], hi))
    return CleanLog(hi, size, clean[0].origin, clean[-1].last_raw, tree,
                    [o for p in clean for o in p.opened],
                    [r for p in clean for r in p.rotations])
