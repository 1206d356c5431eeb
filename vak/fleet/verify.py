"""Verify every origin in the fleet store, and remember the heads seen.

For each origin, in seq order: every stored line is re-checked as a chain
(:func:`vak.fleet.chain.check_line`: canonical, next seq, ``prev`` linkage),
its stored ``leaf`` column must equal the recomputed hash, and at each stored
checkpoint's size the recomputed Merkle root must equal the signed root. Keys:
the auditor's trust file if given, else the keys pinned at the origin's first
shipment; rotations are re-derived from the chain, never taken from the store.

Against the heads this verifier remembered last time (``vak_fleet_heads``): a
store now shorter is ``ROLLBACK``, a different root at the remembered size is
``FORK``. Incidents the shippers recorded (refused batches) are reported with
their code until marked resolved. With witness keys, at least ``K`` distinct
witnesses must have cosigned a checkpoint whose root the chain confirms; a
valid cosignature over another root is a ``FORK``.

The result codes are those of ``vak-audit verify`` (docs/AUDIT-FORMAT.md
section 8); an origin's result is its most severe finding, the fleet's the
most severe origin's.

Example::

    >>> report = verify_fleet(conn, trust=None)            # doctest: +SKIP
    >>> report.result                                       # doctest: +SKIP
    <Code.OK: 0>
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vak.audit.checkpoint import CheckpointSignatureError, SignedCheckpoint, parse_note
from vak.audit.keys import TrustedKey, parse_verifier_key
from vak.audit.verify import Code
from vak.errors import KeyFileError, WitnessError
from vak.fleet.chain import ChainProblem, ChainState, KeyRing, check_line
from vak.witness.cosignature import WitnessKey, verify_cosignatures
from vak.witness.note import checkpoint_of_body

__all__ = ["FleetReport", "OriginFinding", "OriginReport", "verify_fleet"]

_PROBLEM_CODES = {
    "malformed": Code.MALFORMED, "spliced": Code.SPLICED, "gap": Code.MISSING,
    "fork": Code.FORK, "rollback": Code.ROLLBACK, "bad_signature": Code.BAD_SIGNATURE,
    "untrusted": Code.KEY_UNTRUSTED,
}
_FETCH = 20_000


@dataclass(frozen=True, slots=True)
class OriginFinding:
    code: Code
    seq: int | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code.name, "seq": self.seq, "message": self.message}


@dataclass(slots=True)
class OriginReport:
    """One origin: entries checked, newest valid checkpoint, findings, witnesses."""

    origin: str
    entries: int = 0
    checkpoint_size: int = 0
    root: str = ""
    witnesses: tuple[str, ...] = ()
    findings: list[OriginFinding] = field(default_factory=list)

    @property
    def result(self) -> Code:
        return max((f.code for f in self.findings), default=Code.OK)

    def add(self, code: Code, seq: int | None, message: str) -> None:
        self.findings.append(OriginFinding(code, seq, message))

    def to_json(self) -> dict[str, Any]:
        return {"origin": self.origin, "result": self.result.name, "entries": self.entries,
                "checkpoint_size": self.checkpoint_size, "root": self.root,
                "witnesses": list(self.witnesses),
                "findings": [f.to_json() for f in self.findings]}


@dataclass(frozen=True, slots=True)
class FleetReport:
    origins: tuple[OriginReport, ...]

    @property
    def result(self) -> Code:
        return max((o.result for o in self.origins), default=Code.OK)

    def to_json(self) -> dict[str, Any]:
        return {"result": self.result.name, "code": int(self.result),
                "origins": [o.to_json() for o in self.origins]}

    def render(self) -> str:
        lines = []
        for o in self.origins:
            wit = f"  witnesses {','.join(o.witnesses)}" if o.witnesses else ""
            lines.append(f"{o.origin}  {o.entries} entries  checkpoint {o.checkpoint_size}"
                         f"{wit}  {o.result.name}")
            lines += [f"  {f.code.name} seq={f.seq}: {f.message}" for f in o.findings]
        lines.append(f"{len(self.origins)} origins, "
                     f"{sum(o.result <= Code.WARNINGS for o in self.origins)} verified")
        lines.append(f"RESULT: {self.result.name}")
        return "\n".join(lines)


def _ring(conn: Any, origin: str, trust: Sequence[TrustedKey] | None) -> KeyRing:
    if trust is not None:
        return KeyRing.of(origin, trust)
    keys = []
    for (vkey,) in conn.execute("SELECT vkey FROM vak_fleet_keys WHERE origin = %s AND "
                                "since_seq = -1", (origin,)).fetchall():
        try:
            keys.append(parse_verifier_key(vkey))
        except KeyFileError:
            continue  # a damaged pinned key vouches for nothing
    return KeyRing.of(origin, keys)


class _OriginCheck:
    def __init__(self, conn: Any, origin: str, ring: KeyRing) -> None:
        self.conn, self.ring = conn, ring
        self.report = OriginReport(origin)
        self.groups: dict[int, list[SignedCheckpoint]] = {}
        self.roots: dict[int, bytes] = {}  # chain root at every size of interest
        self.valid: dict[int, bytes] = {}  # sizes with a valid checkpoint -> root

    def load_checkpoints(self) -> None:
        rows = self.conn.execute("SELECT size, note FROM vak_fleet_checkpoints WHERE origin = %s "
                                 "ORDER BY size", (self.report.origin,)).fetchall()
        for size, note in rows:
            try:
                cp = parse_note(note)
            except CheckpointSignatureError as exc:
                self.report.add(Code.MALFORMED, size, f"stored checkpoint: {exc.message}")
                continue
            if cp.checkpoint.origin != self.report.origin or cp.checkpoint.size != size:
                self.report.add(Code.SPLICED, size, "stored checkpoint of another origin/size")
                continue
            self.groups.setdefault(size, []).append(cp)

    def scan(self, interest: set[int]) -> ChainState:
        state = ChainState.empty(self.report.origin)
        self.roots[0] = state.frontier.root()
        with self.conn.cursor(name="vak_fleet_scan") as cur:
            cur.itersize = _FETCH
            cur.execute("SELECT seq, leaf, line FROM vak_fleet_entries WHERE origin = %s "
                        "ORDER BY seq", (self.report.origin,))
            for seq, leaf, line in cur:
                if seq != state.size:
                    self.report.add(Code.MISSING, state.size,
                                    f"entries {state.size}..{seq - 1} are missing")
                    break
                try:
                    checked = check_line(state, line.encode())
                except ChainProblem as p:
                    code = Code.MODIFIED if p.problem == "fork" else _PROBLEM_CODES[p.problem]
                    self.report.add(code, p.seq, p.message)
                    break
                if checked.leaf != bytes(leaf):
                    self.report.add(Code.MODIFIED, seq, "stored leaf column differs from the "
                                    "line's hash")
                    break
                if checked.kind == "key_rotated":
                    self.ring.note_rotation(checked)
                if state.size in interest:
                    self._at(state)
        self.report.entries = state.size
        return state

    def _at(self, state: ChainState) -> None:
        size, root = state.size, state.frontier.root()
        self.roots[size] = root
        group = self.groups.get(size)
        if not group:
            return
        try:
            valid = self.ring.verify_group(group)
        except ChainProblem as p:
            self.report.add(Code.BAD_SIGNATURE, size, p.message)
            return
        if not valid:
            self.report.add(Code.KEY_UNTRUSTED, size, "checkpoint signed by no trusted key")
            return
        if len({cp.checkpoint.root for cp in valid}) > 1:
            self.report.add(Code.FORK, size, "two valid checkpoints with different roots")
        elif valid[0].checkpoint.root != root:
            self.report.add(Code.MODIFIED, size, "stored entries do not give the signed root")
        else:
            self.valid[size] = root
            self.report.checkpoint_size, self.report.root = size, root.hex()

    def finish(self, state: ChainState, stored_size: int | None) -> None:
        r = self.report
        beyond = [s for s in self.groups if s > state.size]
        if beyond:
            r.add(Code.TRUNCATED, max(beyond), f"checkpoint at size {max(beyond)} but the store "
                  f"holds {state.size} valid entries")
        if stored_size is not None and stored_size != state.size and not r.findings:
            r.add(Code.MODIFIED, stored_size, f"origin row says {stored_size} entries, "
                  f"{state.size} are stored")
        if not self.valid:
            r.add(Code.UNVERIFIABLE, None, "no stored checkpoint verifies")
        elif r.checkpoint_size < state.size:
            r.add(Code.WARNINGS, r.checkpoint_size, "entries after the newest checkpoint")

    def heads(self, state: ChainState) -> None:
        row = self.conn.execute("SELECT size, root FROM vak_fleet_heads WHERE origin = %s",
                                (self.report.origin,)).fetchone()
        if row is None:
            return
        size, root = row
        if size > state.size:
            self.report.add(Code.ROLLBACK, size, f"the verifier saw {size} entries before; the "
                            f"store now holds {state.size}")
        elif self.roots.get(size) != bytes(root):
            self.report.add(Code.FORK, size, f"the root at size {size} differs from the one "
                            "verified before (history was rewritten)")

    def incidents(self) -> None:
        rows = self.conn.execute("SELECT problem, seq, detail FROM vak_fleet_incidents WHERE "
                                 "origin = %s AND NOT resolved ORDER BY id",
                                 (self.report.origin,)).fetchall()
        for problem, seq, detail in rows:
            code = _PROBLEM_CODES.get(problem, Code.MALFORMED)
            self.report.add(code, seq, f"a shipper refused a batch: {detail}")

    def witnesses(self, keys: Sequence[WitnessKey], minimum: int) -> None:
        rows = self.conn.execute("SELECT size, root, body, line FROM vak_fleet_cosignatures "
                                 "WHERE origin = %s ORDER BY size", (self.report.origin,))
        bodies: dict[tuple[int, bytes, str], list[str]] = {}
        for size, root, body, line in rows.fetchall():
            bodies.setdefault((size, bytes(root), body), []).append(line)
        best: tuple[str, ...] = ()
        for (size, root, body), lines in bodies.items():
            try:
                cp = checkpoint_of_body(body)
            except CheckpointSignatureError:
                self.report.add(Code.MALFORMED, size, "stored cosigned body is not a checkpoint")
                continue
            try:
                good = verify_cosignatures(body, lines, keys, 1)
            except WitnessError as exc:
                if exc.details.get("required") is None:
                    self.report.add(Code.BAD_SIGNATURE, size, exc.message)
                continue
            if (cp.origin, cp.size, cp.root) != (self.report.origin, size, root):
                self.report.add(Code.SPLICED, size, "cosigned body does not match its row")
            elif self.roots.get(size) != root:
                names = ", ".join(k.name for k in good)
                self.report.add(Code.FORK, size, f"witnesses {names} cosigned a root the "
                                "stored chain does not have")
            elif len(good) >= len(best):
                best = tuple(sorted(k.name for k in good))
        self.report.witnesses = best
        if len(best) < minimum:
            self.report.add(Code.UNVERIFIABLE, None, f"{len(best)} of the required {minimum} "
                            "witnesses cosigned a checkpoint the chain confirms")


def verify_fleet(conn: Any, trust: Sequence[TrustedKey] | None = None, *,
                 origins: Sequence[str] = (), witnesses: Sequence[WitnessKey] = (),
                 min_witnesses: int = 0, update_heads: bool = True) -> FleetReport:
    """Verify the chosen (default: every) origin of the store; see the module docstring.

    With ``update_heads`` the newest valid checkpoint of each origin that
    verified (``OK`` or ``WARNINGS``) becomes its remembered head.
    """
    stored = dict(conn.execute("SELECT origin, size FROM vak_fleet_origins").fetchall())
    names = list(origins) or sorted(stored)
    reports = []
    for origin in names:
        with conn.transaction():
            check = _OriginCheck(conn, origin, _ring(conn, origin, trust))
            check.load_checkpoints()
            head = conn.execute("SELECT size FROM vak_fleet_heads WHERE origin = %s",
                                (origin,)).fetchone()
            cos = conn.execute("SELECT DISTINCT size FROM vak_fleet_cosignatures WHERE "
                               "origin = %s", (origin,)).fetchall() if witnesses else []
            interest = set(check.groups) | {r[0] for r in cos} | ({head[0]} if head else set())
            state = check.scan(interest)
            check.finish(state, stored.get(origin))
            check.heads(state)
            check.incidents()
            if witnesses or min_witnesses:
                check.witnesses(witnesses, min_witnesses)
            r = check.report
            if origin not in stored:
                r.add(Code.MISSING, None, "origin is not in the fleet store")
            if update_heads and r.result <= Code.WARNINGS and r.checkpoint_size:
                conn.execute("INSERT INTO vak_fleet_heads (origin, size, root) VALUES "
                             "(%s, %s, %s) ON CONFLICT (origin) DO UPDATE SET size = "
                             "EXCLUDED.size, root = EXCLUDED.root, verified_at = now()",
                             (origin, r.checkpoint_size, bytes.fromhex(r.root)))
        reports.append(r)
    return FleetReport(tuple(reports))
