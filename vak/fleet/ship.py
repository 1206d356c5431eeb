"""Ship one origin's log and checkpoints into the fleet store, exactly once per seq.

Invariants:

* One step is one transaction holding an advisory lock on the origin, so two
  shippers of one origin serialise and a crash leaves the store as it was.
* Only entries covered by a checkpoint that a trusted key signed are
  inserted: every line is checked against the chain stored so far
  (:func:`vak.fleet.chain.check_line`), and at each checkpoint size the
  frontier's root must equal the signed root. Lines after the newest
  covering checkpoint wait for the next step.
* Resumable: the origin row remembers the byte offsets reached in ``LOG`` and
  ``LOG.ckpt``; the next step starts there, and the first line it reads must be
  the next seq and chain to the stored last leaf.
* A gap, fork, rollback, splice, malformed line or bad signature refuses the
  whole step: nothing of it is inserted, an incident row records it and
  :class:`~vak.errors.FleetRefusedError` says what and where.

Example::

    >>> conn = connect(dsn); migrate(conn)                      # doctest: +SKIP
    >>> ship_log(conn, Path("audit/vak.log"), load_trusted_keys("audit/log.key.pub"))
    ShipReport(origin='vak.example/k1', shipped=120, size=120, ...)   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from vak.audit.checkpoint import CheckpointSignatureError, SignedCheckpoint, parse_note
from vak.audit.keys import TrustedKey, parse_verifier_key
from vak.audit.merkle import MerkleTree
from vak.errors import FleetRefusedError, KeyFileError, WitnessError
from vak.fleet.chain import ChainProblem, ChainState, CheckedEntry, Frontier, KeyRing, check_line
from vak.witness.cosignature import parse_cosignature
from vak.witness.note import log_checkpoint
from vak.witness.sidecar import read_cosigned, sidecar_for

__all__ = ["MAX_UNCOVERED", "ShipReport", "checkpoint_file", "load_ring", "ship_log"]

#: most entries held in memory (as COPY rows) waiting for a checkpoint that covers them
MAX_UNCOVERED = 200_000
_READ = 1 << 20
_FIRST_LINE = 8 << 20
_COPY_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def checkpoint_file(log: Path) -> Path:
    """``LOG.ckpt`` next to ``LOG`` (docs/AUDIT-FORMAT.md section 1)."""
    return log.with_name(log.name + ".ckpt")


@dataclass(frozen=True, slots=True)
class ShipReport:
    """What one step stored: entries and checkpoints added, and the origin's new size."""

    origin: str
    shipped: int
    size: int
    checkpoints: int
    skipped: tuple[str, ...] = field(default=())  # checkpoints not by a trusted key, why


@dataclass(slots=True)
class _Origin:
    state: ChainState
    log_offset: int
    ckpt_offset: int
    witness_offset: int
    known: bool


def _first_origin(log: Path) -> str | None:
    with log.open("rb") as f:
        line = f.readline(_FIRST_LINE)
    if not line.endswith(b"\n"):
        if len(line) >= _FIRST_LINE:
            raise FleetRefusedError(f"{log}: the first line is longer than {_FIRST_LINE} bytes",
                                    file=str(log), problem="malformed")
        return None
    try:
        origin = orjson.loads(line).get("origin")
    except (orjson.JSONDecodeError, AttributeError):
        raise FleetRefusedError(f"{log}: the first line is not an audit entry",
                                file=str(log), problem="malformed") from None
    if not isinstance(origin, str) or not origin:
        raise FleetRefusedError(f"{log}: the first entry names no origin", file=str(log),
                                problem="malformed")
    return origin


def _load_origin(conn: Any, origin: str) -> _Origin:
    row = conn.execute("SELECT size, last_leaf, frontier, log_offset, ckpt_offset, "
                       "witness_offset FROM vak_fleet_origins WHERE origin = %s FOR UPDATE",
                       (origin,)).fetchone()
    if row is None:
        return _Origin(ChainState.empty(origin), 0, 0, 0, known=False)
    size, last, front, log_offset, ckpt_offset, witness_offset = row
    state = ChainState(origin, size, bytes(last), Frontier.from_bytes(size, bytes(front)))
    return _Origin(state, log_offset, ckpt_offset, witness_offset, known=True)


def load_ring(conn: Any, origin: str, given: Sequence[TrustedKey]) -> KeyRing:
    """The origin's keys: those ``given`` (they win on flags) plus those pinned in the store."""
    ring = KeyRing.of(origin, given)
    rows = conn.execute("SELECT vkey FROM vak_fleet_keys WHERE origin = %s", (origin,))
    for (vkey,) in rows.fetchall():
        try:
            key = parse_verifier_key(vkey)
        except KeyFileError:
            continue  # a damaged key row vouches for nothing
        ring.keys.setdefault((key.name, key.note_key_id), key)
    return ring


def _read_checkpoints(path: Path, offset: int) -> tuple[list[tuple[int, int, SignedCheckpoint]],
                                                        int]:
    """``(line start, line end, checkpoint)`` of the complete lines after ``offset``.

    Raises:
        ChainProblem: ``rollback`` if the file is shorter than ``offset``;
            ``malformed`` for a complete line that is not a checkpoint.
    """
    if not path.exists():
        if offset:
            raise ChainProblem("rollback", None, f"{path.name} vanished after {offset} bytes")
        return [], 0
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < offset:
            raise ChainProblem("rollback", None,
                               f"{path.name} is {size} bytes, {offset} were read before")
        f.seek(offset)
        data = f.read()
    out = []
    pos = offset
    for raw in data.splitlines(keepends=True):
        if not raw.endswith(b"\n"):
            break  # a line still being written
        start, pos = pos, pos + len(raw)
        try:
            note = orjson.loads(raw)["note"]
            cp = parse_note(note if isinstance(note, str) else "")
        except (orjson.JSONDecodeError, KeyError, TypeError, CheckpointSignatureError):
            raise ChainProblem("malformed", None,
                               f"{path.name} at byte {start} is not a checkpoint") from None
        out.append((start, pos, cp))
    return out, pos


def _root_at(conn: Any, state: ChainState, size: int) -> bytes:
    if size == state.size:
        return state.frontier.root()
    rows = conn.execute("SELECT leaf FROM vak_fleet_entries WHERE origin = %s AND seq < %s "
                        "ORDER BY seq", (state.origin, size)).fetchall()
    if len(rows) != size:
        raise ChainProblem("gap", size, f"the store lacks entries below {size}")
    return MerkleTree.from_leaves(b"".join(bytes(r[0]) for r in rows)).root(size)


def _lines(f: Any) -> Iterator[tuple[bytes, int]]:
    """Complete lines (without newline) and the offset after each; stops at a torn tail."""
    pos = f.tell()
    rest = b""
    while chunk := f.read(_READ):
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        for line in parts:
            pos += len(line) + 1
            yield line, pos


def _copy_text(value: Any) -> bytes:
    """A COPY text field for an optional string taken from an entry (``\\N`` for none)."""
    if not isinstance(value, str):
        return b"\\N"
    return value.replace("\x00", "\ufffd").translate(_COPY_ESCAPE).encode()


def _copy_row(origin: bytes, e: CheckedEntry, raw: bytes) -> bytes:
    """One COPY text row (``origin`` already escaped). A checked line is canonical JSON,
    so it holds no raw control character and only ``\\`` needs escaping."""
    line = raw.replace(b"\\", b"\\\\") if b"\\" in raw else raw
    skill = e.entry.get("skill")
    decision = e.entry.get("decision")
    return b"%s\t%d\t\\\\x%s\t%s\t%s\t%s\t%s\n" % (
        origin, e.seq, e.leaf.hex().encode(), e.kind.encode(),
        _copy_text(skill.get("id") if type(skill) is dict else None),
        _copy_text(decision.get("effect") if type(decision) is dict else None), line)


class _Step:
    """One shipping step of one origin inside the caller's transaction."""

    def __init__(self, conn: Any, log: Path, ckpt: Path, origin: _Origin, ring: KeyRing) -> None:
        self.conn, self.log, self.ckpt, self.o, self.ring = conn, log, ckpt, origin, ring
        self.stored_cps: list[SignedCheckpoint] = []
        self._copy: Any = None
        self._stack = contextlib.ExitStack()
        self.skipped: list[str] = []
        self.shipped = 0

    def run(self) -> None:
        o = self.o
        cps, end = _read_checkpoints(self.ckpt, o.ckpt_offset)
        for _, _, cp in cps:
            if cp.checkpoint.origin != o.state.origin:
                raise ChainProblem("spliced", cp.checkpoint.size,
                                   f"checkpoint of origin {cp.checkpoint.origin!r} in "
                                   f"{self.ckpt.name}")
        old = [c for c in cps if c[2].checkpoint.size <= o.state.size]
        new = sorted((c for c in cps if c[2].checkpoint.size > o.state.size),
                     key=lambda c: c[2].checkpoint.size)
        self._check_old([c[2] for c in old])
        reached = self._stream(new)
        unreached = [c[0] for c in new if c[2].checkpoint.size > reached]
        o.ckpt_offset = min(unreached) if unreached else end

    def _keep(self, valid: Sequence[SignedCheckpoint], group: Sequence[SignedCheckpoint],
              root: bytes) -> None:
        for cp in valid:
            if cp.checkpoint.root != root:
                raise ChainProblem("fork", cp.checkpoint.size,
                                   f"a checkpoint signed at size {cp.checkpoint.size} has a root "
                                   "different from the chain's (history was rewritten)")
        self.stored_cps.extend(valid)
        self.skipped.extend(f"size {cp.checkpoint.size}: signed by no trusted key "
                            f"({', '.join(cp.key_ids)})" for cp in group if cp not in valid)

    def _check_old(self, old: Sequence[SignedCheckpoint]) -> None:
        for size in sorted({c.checkpoint.size for c in old}):
            group = [c for c in old if c.checkpoint.size == size]
            valid = self.ring.verify_group(group)
            if valid:
                self._keep(valid, group, _root_at(self.conn, self.o.state, size))
            else:
                self._keep([], group, b"")

    def _stream(self, new: Sequence[tuple[int, int, SignedCheckpoint]]) -> int:
        """Read lines up to the newest reachable checkpoint; returns the size reached."""
        o, state = self.o, self.o.state
        length = self.log.stat().st_size
        if length < o.log_offset:
            raise ChainProblem("rollback", state.size,
                               f"{self.log.name} is {length} bytes; {o.log_offset} were "
                               "shipped before (the log was truncated or replaced)")
        if not new:
            return state.size
        groups: dict[int, list[SignedCheckpoint]] = {}
        for _, _, cp in new:
            groups.setdefault(cp.checkpoint.size, []).append(cp)
        sizes = sorted(groups)
        waiting: list[bytes] = []  # COPY rows: the parsed entries are not kept
        origin = _copy_text(state.origin)
        covered = (state.size, state.last_leaf, state.frontier.to_bytes())
        with contextlib.ExitStack() as stack:
            f = stack.enter_context(self.log.open("rb"))
            self._stack = stack
            f.seek(o.log_offset)
            target = sizes.pop(0)
            first = True
            for raw, pos in _lines(f):
                if first:
                    first = False
                    checked = self._check_first(f, state, raw)
                else:
                    checked = check_line(state, raw)
                if checked.kind == "key_rotated":
                    self.ring.note_rotation(checked)
                waiting.append(_copy_row(origin, checked, raw))
                if len(waiting) > MAX_UNCOVERED:
                    raise ChainProblem("malformed", state.size,
                                       f"more than {MAX_UNCOVERED} entries without a checkpoint")
                if state.size < target:
                    continue
                group = groups[target]
                valid = self.ring.verify_group(group)
                self._keep(valid, group, state.frontier.root())
                if valid:
                    o.log_offset = pos
                    self._insert(waiting)
                    waiting = []
                    covered = (state.size, state.last_leaf, state.frontier.to_bytes())
                if not sizes:
                    break
                target = sizes.pop(0)
        if waiting:  # what followed the last covering checkpoint is not stored: forget it
            state.size, state.last_leaf = covered[0], covered[1]
            state.frontier = Frontier.from_bytes(covered[0], covered[2])
        if self.shipped:
            self._ensure_origin()
            self._save()
        return state.size

    def _check_first(self, f: Any, state: ChainState, raw: bytes) -> CheckedEntry:
        """The first line after the stored offset; if it does not fit, find line ``size``.

        An edit before the offset shifts every later line, so the line number,
        not the byte offset, tells which entry should come next: checked there,
        the problem is named right (a fork, not a torn line).
        """
        try:
            return check_line(state, raw)
        except ChainProblem:
            if not self.o.log_offset:
                raise
        saved = f.tell()
        f.seek(0)
        count, at = 0, None
        for _, pos in _lines(f):
            count += 1
            if count == state.size:
                at = pos
                break
        if at is None:
            raise ChainProblem("rollback", state.size, f"{self.log.name} holds {count} entries; "
                               f"{state.size} were shipped before")
        f.seek(at)
        line = f.readline()
        f.seek(saved)
        return check_line(state, line.rstrip(b"\n"))

    def _insert(self, rows: Sequence[bytes]) -> None:
        """COPY covered rows; one COPY per step, fed by a writer thread (overlaps the checks)."""
        if not rows:
            return
        if self._copy is None:
            from psycopg.copy import QueuedLibpqWriter

            cur = self.conn.cursor()
            self._copy = self._stack.enter_context(cur.copy(
                "COPY vak_fleet_entries (origin, seq, leaf, kind, skill, effect, line) FROM STDIN",
                writer=QueuedLibpqWriter(cur)))
        for i in range(0, len(rows), 2000):
            self._copy.write(b"".join(rows[i:i + 2000]))
        self.shipped += len(rows)

    def _ensure_origin(self) -> None:
        if self.o.known:
            return
        self.conn.execute("INSERT INTO vak_fleet_origins (origin, size, last_leaf, frontier, "
                          "root) VALUES (%s, 0, %s, '', %s)",
                          (self.o.state.origin, bytes(32), Frontier().root()))
        self.o.known = True

    def _save(self) -> None:
        o = self.o
        self.conn.execute(
            "UPDATE vak_fleet_origins SET size = %s, last_leaf = %s, frontier = %s, root = %s, "
            "log_offset = %s, shipped_at = now() WHERE origin = %s",
            (o.state.size, o.state.last_leaf, o.state.frontier.to_bytes(),
             o.state.frontier.root(), o.log_offset, o.state.origin))

    def finish(self) -> None:
        """Store checkpoints, promoted keys and the checkpoint offset (same transaction)."""
        if not self.o.known and not self.stored_cps:
            return
        self._ensure_origin()
        origin = self.o.state.origin
        for cp in self.stored_cps:
            self.conn.execute(
                "INSERT INTO vak_fleet_checkpoints (origin, size, root, key_id, note) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (origin, cp.checkpoint.size, cp.checkpoint.root, cp.signatures[0][1], cp.note))
        keys = [(-1, k) for k in self.ring.keys.values()
                if all(k is not p for _, p in self.ring.promoted)] + self.ring.promoted
        for since, k in keys:
            self.conn.execute("INSERT INTO vak_fleet_keys (origin, vkey, since_seq) "
                              "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                              (origin, k.vkey, since))
        self._cosignatures()
        self.conn.execute("UPDATE vak_fleet_origins SET ckpt_offset = %s, witness_offset = %s "
                          "WHERE origin = %s", (self.o.ckpt_offset, self.o.witness_offset, origin))

    def _cosignatures(self) -> None:
        """Store the cosignature lines of ``LOG.witness`` up to the stored size.

        They are judged by the fleet verifier (a cosignature over a root the
        chain lacks is a fork); here only their form and origin are checked.
        """
        path = sidecar_for(self.log)
        if not path.exists():
            return
        origin = self.o.state.origin
        try:
            for end, note in read_cosigned(path, self.o.witness_offset):
                cp, lines = log_checkpoint(note)
                if cp.checkpoint.origin != origin:
                    raise ChainProblem("spliced", cp.checkpoint.size,
                                       f"{path.name} holds a checkpoint of another origin")
                if cp.checkpoint.size > self.o.state.size:
                    break
                for line in lines:
                    cs = parse_cosignature(line)
                    if cs is not None:
                        self.conn.execute(
                            "INSERT INTO vak_fleet_cosignatures (origin, size, root, witness, "
                            "key_id, line, body) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                            "ON CONFLICT DO NOTHING",
                            (origin, cp.checkpoint.size, cp.checkpoint.root, cs.name,
                             cs.key_id, line, cp.checkpoint.body()))
                self.o.witness_offset = end
        except WitnessError as exc:
            raise ChainProblem("malformed", None, f"{path.name}: {exc.message}") from None


def _record_incident(conn: Any, origin: str, problem: ChainProblem) -> None:
    with conn.transaction():
        conn.execute("INSERT INTO vak_fleet_incidents (origin, problem, seq, detail) "
                     "VALUES (%s, %s, %s, %s)",
                     (origin, problem.problem, problem.seq, problem.message))


def ship_log(conn: Any, log: Path, keys: Sequence[TrustedKey], *,
             checkpoints: Path | None = None) -> ShipReport:
    """Ship what ``log`` holds beyond the stored chain, up to its newest valid checkpoint.

    ``keys`` are the verifier keys trusted for the log's origin (its ``.pub``
    file); at the first shipment they are pinned in the store.

    Raises:
        FleetRefusedError: the log does not extend the stored chain (nothing inserted).
        FleetError: the store is unusable.
    """
    log = Path(log)
    origin = _first_origin(log)
    if origin is None:
        return ShipReport("", 0, 0, 0)
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (origin,))
            o = _load_origin(conn, origin)
            step = _Step(conn, log, checkpoints or checkpoint_file(log), o,
                         load_ring(conn, origin, keys))
            step.run()
            step.finish()
    except ChainProblem as problem:
        _record_incident(conn, origin, problem)
        raise FleetRefusedError(f"{log}: origin {origin}: refused ({problem.problem}): "
                                f"{problem.message}; nothing was inserted",
                                file=str(log), origin=origin, problem=problem.problem,
                                seq=problem.seq) from None
    return ShipReport(origin, step.shipped, step.o.state.size, len(step.stored_cps),
                      tuple(step.skipped))
