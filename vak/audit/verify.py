"""Offline verification of an audit log: structured findings, one result code.

Invariants: the verifier trusts only the keys it is given (plus keys announced
by ``key_rotated`` entries that a checkpoint by an already trusted key covers);
every problem becomes a :class:`Finding` with a :class:`Code`, a sequence
number and a byte offset where known; the most severe finding sets the result
(codes are ordered by severity, and are the CLI's exit codes).

Fast path: one pass parses every line, checks canonical form, hashes it and
feeds a compact Merkle range. Only when something is off does the slower
classification run (duplicates, insertions, reordering by longest increasing
subsequence, gaps, broken links, checkpoint mismatches).

Example::

    >>> keys = load_trusted_keys("audit/log.key.pub")  # doctest: +SKIP
    >>> report = verify_log("audit/vak.log", keys)     # doctest: +SKIP
    >>> report.result                                  # doctest: +SKIP
    <Code.OK: 0>
"""

from __future__ import annotations

import bisect
import contextlib
import gc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from hashlib import sha256
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature

from vak.audit.checkpoint import (
    CheckpointSignatureError,
    SignedCheckpoint,
    UntrustedKeyError,
    checkpoint_path_for,
    read_checkpoints,
    verify_checkpoint,
)
from vak.audit.entry import KINDS, ZERO_HASH, entry_problem, has_float, short_repr
from vak.audit.entrysig import EntrySig, entry_message, read_entry_sigs, sigs_path_for
from vak.audit.keys import TrustedKey, parse_verifier_key
from vak.audit.merkle import CompactRange
from vak.audit.scan import scan_log
from vak.audit.state import VerifierState
from vak.canonical import CanonicalError, canonical_bytes
from vak.errors import AuditIntegrityError, KeyFileError

__all__ = ["Code", "Finding", "Report", "verify_log"]


class Code(IntEnum):
    """Result codes in increasing severity; the value is ``vak-audit``'s exit code."""

    OK = 0
    WARNINGS = 1
    USAGE = 2
    UNVERIFIABLE = 3
    MALFORMED = 4
    TRUNCATED = 5
    MISSING = 6
    INSERTED = 7
    REORDERED = 8
    MODIFIED = 9
    SPLICED = 10
    KEY_UNTRUSTED = 11
    BAD_SIGNATURE = 12
    ROLLBACK = 13
    FORK = 14


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: what, and where (seq, byte offset, 1-based line; log or checkpoint file)."""

    code: Code
    message: str
    seq: int | None = None
    offset: int | None = None
    line: int | None = None
    file: str = "log"

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code.name, "message": self.message, "seq": self.seq,
                "offset": self.offset, "line": self.line, "file": self.file}

    def render(self) -> str:
        where = [f"{self.file}"]
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.seq is not None:
            where.append(f"seq {self.seq}")
        if self.offset is not None:
            where.append(f"offset {self.offset}")
        return f"{self.code.name:<13} {', '.join(where)}: {self.message}"


@dataclass(frozen=True, slots=True)
class Report:
    """Everything ``verify`` found; ``result`` is the most severe code."""

    path: str
    origin: str
    entries: int
    valid_entries: int
    findings: tuple[Finding, ...]
    checkpoints_verified: int
    trusted_prefix: int
    tail: str
    latest: SignedCheckpoint | None = None
    latest_root_hex: str = ""
    notes: tuple[str, ...] = field(default=())
    #: whether the keys were pinned by the verifier (``--key``, ``--trust``, a state
    #: file, ``[audit] trust``) rather than found beside the log
    pinned: bool = True
    key_source: str = ""
    #: the origin's keys trusted at the end (given keys plus vouched rotations), as
    #: trust-file lines: what ``--update-state`` pins
    keys: tuple[str, ...] = field(default=())

    @property
    def result(self) -> Code:
        return max((f.code for f in self.findings), default=Code.OK)

    def raise_for_result(self) -> None:
        """Raises: AuditIntegrityError unless the result is OK or WARNINGS."""
        if self.result > Code.WARNINGS:
            raise AuditIntegrityError(f"{self.path}: audit log does not verify: "
                                      f"{self.result.name}", file=self.path,
                                      findings=[f.render() for f in self.findings[:20]])

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path, "origin": self.origin, "result": self.result.name,
            "exit_code": int(self.result), "entries": self.entries,
            "valid_entries": self.valid_entries, "checkpoints_verified": self.checkpoints_verified,
            "trusted_prefix": self.trusted_prefix, "tail": self.tail,
            "latest_checkpoint": self.latest.note if self.latest else None,
            "findings": [f.to_json() for f in self.findings], "notes": list(self.notes),
            "keys": {"pinned": self.pinned, "source": self.key_source, "trusted": list(self.keys)},
        }

    def render(self) -> str:
        lines = [f.render() for f in self.findings]
        lines += list(self.notes)
        lines.append(f"{self.valid_entries}/{self.entries} entries valid; "
                     f"{self.checkpoints_verified} checkpoints verified")
        lines.append(f"last trustworthy prefix: {self.trusted_prefix} entries"
                     + (f" (seq 0..{self.trusted_prefix - 1})" if self.trusted_prefix else ""))
        lines.append(f"tail: {self.tail}")
        if self.pinned:
            lines.append(f"keys: pinned{f' ({self.key_source})' if self.key_source else ''}")
        else:
            lines.append(f"keys: NOT PINNED, found beside the log ({self.key_source})")
        lines.append(f"RESULT: {self.result.name}")
        return "\n".join(lines)


@dataclass(slots=True)
class _Line:
    index: int
    offset: int
    leaf: bytes
    seq: int | None = None
    prev: str | None = None
    origin: str | None = None
    kind: str | None = None
    entry: dict[str, Any] | None = None


_OPT = orjson.OPT_SORT_KEYS
def _canonical_problem(e: Any, raw: bytes) -> str | None:
    try:
        if canonical_bytes(e) != raw:
            return "JSON is not in canonical form"
    except CanonicalError as exc:
        return f"outside the canonical profile: {exc}"
    return None


def _lis(values: Sequence[int]) -> set[int]:
    """Positions of one longest strictly increasing subsequence (O(n log n))."""
    tails: list[int] = []
    tails_pos: list[int] = []
    parent = [-1] * len(values)
    for i, v in enumerate(values):
        j = bisect.bisect_left(tails, v)
        if j == len(tails):
            tails.append(v)
            tails_pos.append(i)
        else:
            tails[j] = v
            tails_pos[j] = i
        parent[i] = tails_pos[j - 1] if j else -1
    keep: set[int] = set()
    i = tails_pos[-1] if tails_pos else -1
    while i >= 0:
        keep.add(i)
        i = parent[i]
    return keep


class _Verifier:
    def __init__(self, path: Path, keys: Sequence[TrustedKey], ckpt_path: Path,
                 state: VerifierState | None, origin: str | None) -> None:
        self.path, self.keys, self.ckpt_path, self.state = path, list(keys), ckpt_path, state
        names = {k.name for k in keys}
        self.forced_origin = origin
        self.origin = origin or (next(iter(names)) if len(names) == 1 else "")
        self.findings: list[Finding] = []
        self.notes: list[str] = []
        self.lines: list[_Line] = []
        self.rotations: list[tuple[int, str, int]] = []
        self.roots: dict[int, bytes] = {}
        self.bad_lines: set[int] = set()
        self.first_disturbed = 1 << 62
        #: (seq, entry_sigs flag) of every log_opened entry, for per-entry signatures
        self.opened: list[tuple[int, bool]] = []
        self.leaf_blob: bytes | bytearray | None = None  # leaf hashes by seq (fast path only)
        #: (finding position, a, b) of lone broken links a -> b (see settle_ambiguous_links)
        self.ambiguous: list[tuple[int, _Line, _Line]] = []
        self.valid: list[SignedCheckpoint] = []
        self.trusted: list[TrustedKey] = list(keys)

    def add(self, code: Code, message: str, ln: _Line | None = None, *, seq: int | None = None,
            offset: int | None = None, line: int | None = None, file: str = "log") -> None:
        if ln is not None:
            seq = ln.seq if seq is None else seq
            offset, line = ln.offset, ln.index + 1
            self.bad_lines.add(ln.index)
        if file == "log":
            # in an intact log seq == line index, so both bound where damage begins
            for at in (seq, None if line is None else line - 1):
                if at is not None:
                    self.first_disturbed = min(self.first_disturbed, at)
        self.findings.append(Finding(code, message, seq, offset, line, file))

    # -------------------------------------------------------------- pass 1
    def scan(self, data: bytes, sizes: set[int]) -> bool:
        """Parse, hash and chain-check every line; True when the chain is perfect."""
        raw_lines = data.split(b"\n")
        self.torn = raw_lines.pop()
        loads, dumps = orjson.loads, orjson.dumps
        cr = CompactRange()
        append_leaf = cr.append
        lines = self.lines
        origin = self.origin
        prev_hex = ZERO_HASH
        perfect = True
        offset = 0
        if 0 in sizes:
            self.roots[0] = cr.root()
        for i, raw in enumerate(raw_lines):
            leaf = sha256(b"\x00" + raw).digest()
            ln = _Line(i, offset, leaf)
            lines.append(ln)
            offset += len(raw) + 1
            append_leaf(leaf)
            if i + 1 in sizes:
                self.roots[i + 1] = cr.root()
            try:
                e = loads(raw)
            except orjson.JSONDecodeError:
                self.add(Code.MALFORMED, "line is not valid JSON", ln)
                perfect = False
                prev_hex = leaf.hex()
                continue
            problem = entry_problem(e)
            if problem is None and dumps(e, option=_OPT) != raw:
                problem = _canonical_problem(e, raw)
            if problem is None:
                problem = _float_problem(e)
            if problem is not None:
                self.add(Code.MALFORMED, problem, ln)
                perfect = False
                prev_hex = leaf.hex()
                if type(e) is not dict or type(e.get("seq")) is not int:
                    continue
                # still a placeholder for its seq, so it is not also reported missing
            # a malformed line keeps only what has the right type (a list as prev or
            # origin must not reach the set and dict operations of classify())
            ln.seq = e["seq"]
            ln.prev = _str_or_none(e.get("prev"))
            ln.origin = _str_or_none(e.get("origin"))
            ln.kind = _str_or_none(e.get("kind"))
            if problem is not None and ln.origin is None:
                ln.origin = origin
            ln.entry = e
            if ln.kind == "key_rotated" and isinstance(e.get("new_vkey"), str):
                self.rotations.append((ln.seq, e["new_vkey"], i))
            if ln.kind == "log_opened" and type(ln.seq) is int:
                self.opened.append((ln.seq, e.get("entry_sigs") is True))
            if ln.seq != i or ln.prev != prev_hex or ln.origin != origin:
                perfect = False
            prev_hex = leaf.hex()
        self.end_offset = offset
        return perfect

    def _guess_origin(self, raw_lines: list[bytes]) -> str:
        """The log's own origin: given, else the majority of first/middle/last lines.

        The key's name is preferred when those lines agree with it; otherwise the
        log speaks for itself and a key of another origin is simply untrusted.
        """
        if self.forced_origin:
            return self.forced_origin
        picks: list[str] = []
        for raw in {0: 0, len(raw_lines) // 2: 0, len(raw_lines) - 1: 0}:
            with contextlib.suppress(orjson.JSONDecodeError, AttributeError, IndexError):
                picked = orjson.loads(raw_lines[raw]).get("origin", "")
                picks.append(picked if type(picked) is str else "")
        if self.origin and self.origin in picks:
            return self.origin
        return max(picks, key=picks.count, default=self.origin)

    def fast(self, fd: int, sizes: set[int], workers: int | None) -> _LazyLines | None:
        """The common case, in C-level bulk calls, maybe in processes (:mod:`vak.audit.scan`).

        On success the log's single origin becomes the verifier's (what
        ``_guess_origin`` would pick for such a log) and the roots at checkpoint
        sizes come from the joined tree; None at any anomaly (nothing is kept),
        so the slow path names it.
        """
        clean = scan_log(fd, self.forced_origin, workers)
        if clean is None:
            return None
        if clean.size:
            self.origin = clean.origin
        self.leaf_blob = clean.tree.leaves_buffer
        self.torn, self.end_offset = b"", clean.nbytes
        self.opened, self.rotations = clean.opened, clean.rotations
        for size in sizes:
            if size <= clean.size:
                self.roots[size] = clean.tree.root(size)
        return _LazyLines(clean.size, clean.last_raw)

    # -------------------------------------------------------------- pass 2
    def classify(self) -> None:
        """Name what happened to an imperfect chain, one finding per culprit line."""
        good = [ln for ln in self.lines if ln.seq is not None]
        kept: list[_Line] = []
        for ln in good:
            if ln.origin != self.origin:
                self.add(Code.SPLICED, f"entry of origin {short_repr(ln.origin)} spliced into "
                         f"log of {short_repr(self.origin)}", ln)
            else:
                kept.append(ln)
        by_seq: dict[int, list[_Line]] = {}
        for ln in kept:
            by_seq.setdefault(ln.seq, []).append(ln)  # type: ignore[arg-type]
        prev_refs = {ln.prev for ln in kept}
        # does a line sit right after the entry it chains to? (picks which copy is original)
        fits = {ln.index: ln.prev == (kept[k - 1].leaf.hex() if k else ZERO_HASH)
                for k, ln in enumerate(kept)}
        unique: list[_Line] = []
        chosen: dict[int, _Line] = {}
        for ln in kept:
            seq = ln.seq
            assert seq is not None
            group = by_seq[seq]
            if seq in chosen:
                continue
            chained = [g for g in group if g.leaf.hex() in prev_refs] or group
            original = next((g for g in chained if fits.get(g.index)), chained[0])
            chosen[seq] = original
            for other in group:
                if other is original:
                    continue
                if other.leaf == original.leaf:
                    self.add(Code.INSERTED, f"duplicate of the entry at line {original.index + 1}",
                             other)
                else:
                    self.add(Code.INSERTED, f"a second entry claims seq {seq} (the chained one "
                             f"is at line {original.index + 1})", other)
        unique = [ln for ln in kept if chosen.get(ln.seq) is ln]  # type: ignore[arg-type]
        in_order = _lis([ln.seq for ln in unique])  # type: ignore[misc]
        for pos, ln in enumerate(unique):
            if pos not in in_order:
                self.add(Code.REORDERED, f"entry seq {ln.seq} is out of order", ln)
        ordered = sorted(unique, key=lambda ln: ln.seq)  # type: ignore[arg-type,return-value]
        expected = 0
        for ln in ordered:
            assert ln.seq is not None
            if ln.seq > expected:
                span = f"seq {expected}" if ln.seq == expected + 1 else \
                    f"seq {expected}..{ln.seq - 1}"
                self.add(Code.MISSING, f"{ln.seq - expected} entries missing ({span}) before "
                         f"this line", seq=expected, offset=ln.offset, line=ln.index + 1)
                self.bad_lines.add(ln.index)
            expected = ln.seq + 1
        self._links(ordered)

    def _links(self, ordered: list[_Line]) -> None:
        broken: list[int] = []  # positions p where link ordered[p] -> ordered[p+1] is broken
        if ordered and ordered[0].seq == 0 and ordered[0].prev != ZERO_HASH:
            self.add(Code.MODIFIED, "first entry's prev is not the zero hash", ordered[0])
        for p in range(len(ordered) - 1):
            a, b = ordered[p], ordered[p + 1]
            if b.seq == a.seq + 1 and b.prev != a.leaf.hex():  # type: ignore[operator]
                broken.append(p)
        p = 0
        while p < len(broken):
            q = p
            while q + 1 < len(broken) and broken[q + 1] == broken[q] + 1:
                q += 1
            first, last = broken[p], broken[q]
            culprits = [first] if first == last else list(range(first + 1, last + 1))
            for c in culprits:
                ln = ordered[c]
                if ln.index not in self.bad_lines:
                    self.add(Code.MODIFIED, "entry content changed: its hash does not match "
                             "the next entry's prev", ln)
                    if first == last:  # or the next entry's prev changed: checkpoints decide
                        self.ambiguous.append((len(self.findings) - 1, ln, ordered[c + 1]))
            p = q + 1

    def settle_ambiguous_links(self) -> None:
        """Blame the later entry of a lone broken link when a checkpoint vouches for the earlier.

        A single broken link ``a -> b`` means a's content or b's ``prev`` changed.
        If a valid checkpoint whose size covers ``a`` but not ``b`` matches the
        log, ``a`` is intact, so ``b`` is the entry that was modified.
        """
        if not self.ambiguous:
            return
        sizes = {cp.checkpoint.size for cp in self.valid
                 if self.roots.get(cp.checkpoint.size) == cp.checkpoint.root}
        for pos, a, b in self.ambiguous:
            assert a.seq is not None and b.seq is not None
            if not any(a.seq < size <= b.seq for size in sizes):
                continue
            self.bad_lines.discard(a.index)
            self.bad_lines.add(b.index)
            self.findings[pos] = Finding(
                Code.MODIFIED, "entry content changed: its prev does not match the previous "
                "entry's hash, which a signed checkpoint confirms", b.seq, b.offset,
                b.index + 1)
        self.first_disturbed = min(
            (at for f in self.findings if f.file == "log"
             for at in (f.seq, None if f.line is None else f.line - 1) if at is not None),
            default=1 << 62)

    # -------------------------------------------------------------- checkpoints
    def checkpoints(self, cps: list[tuple[int, SignedCheckpoint | None, str]]) -> None:
        trusted = list(self.keys)
        rotations = sorted(self.rotations)
        covered = 0  # largest size of a verified checkpoint that matches the log
        signed_upto = 0  # largest size of any verified checkpoint
        first_bad = min(self.first_disturbed, len(self.lines))
        self.valid = []
        matching: list[int] = []
        n = len(self.lines)
        for number, (offset, cp, raw) in enumerate(cps, 1):
            if cp is None:
                if number == len(cps) and not raw.endswith("\n"):
                    self.add(Code.WARNINGS, f"torn final checkpoint line ({len(raw)} "
                             "characters without newline); the kernel cuts it on open",
                             offset=offset, line=number, file="checkpoint")
                    continue
                self.add(Code.MALFORMED, "checkpoint line is malformed", offset=offset,
                         line=number, file="checkpoint")
                continue
            c = cp.checkpoint
            # A rotation counts once a checkpoint by an already trusted key covers its
            # (unflagged) entry: the old key vouches for the new one.
            while rotations and rotations[0][0] < signed_upto:
                _seq, vkey, index = rotations.pop(0)
                if index not in self.bad_lines:
                    with contextlib.suppress(KeyFileError):
                        trusted.append(parse_verifier_key(vkey))
            if c.origin != self.origin:
                self.add(Code.SPLICED, f"checkpoint of origin {short_repr(c.origin)} in log "
                         f"of {short_repr(self.origin)}", seq=c.size, offset=offset,
                         line=number, file="checkpoint")
                continue
            try:
                verify_checkpoint(cp, trusted)
            except UntrustedKeyError as exc:
                self.add(Code.KEY_UNTRUSTED, exc.message, seq=c.size, offset=offset,
                         line=number, file="checkpoint")
                continue
            except CheckpointSignatureError as exc:
                self.add(Code.BAD_SIGNATURE, exc.message, seq=c.size, offset=offset,
                         line=number, file="checkpoint")
                continue
            self.valid.append(cp)
            signed_upto = max(signed_upto, c.size)
            if c.size > n:
                self.add(Code.TRUNCATED, f"a signed checkpoint covers {c.size} entries but the "
                         f"log holds {n}; seq {n}..{c.size - 1} were cut", seq=n,
                         offset=self.end_offset, line=n + 1)
                continue
            if self.roots.get(c.size) == c.root:
                covered = max(covered, c.size)
                matching.append(c.size)
                continue
            if c.size > first_bad and first_bad < len(self.lines):
                continue  # explained by an entry-level finding before it
            self.add(Code.MODIFIED, f"entries up to seq {c.size - 1} do not match the signed "
                     f"checkpoint of size {c.size} (a change after the last good checkpoint of "
                     f"size {covered})", seq=c.size - 1 if c.size else None, offset=offset,
                     line=number, file="checkpoint")
        while rotations and rotations[0][0] < signed_upto:  # vouched by the last checkpoint
            _seq, vkey, index = rotations.pop(0)
            if index not in self.bad_lines:
                with contextlib.suppress(KeyFileError):
                    trusted.append(parse_verifier_key(vkey))
        self._forks(matching)
        self.covered = covered
        self.signed_upto = signed_upto
        self.trusted = trusted

    # -------------------------------------------------------------- entry sigs
    def entry_signatures(self, records: list[EntrySig], n: int) -> None:
        """Check the optional per-entry signature sidecar (docs section 4a).

        Every record must be well formed, by a trusted key (the checkpoint keys,
        including rotations vouched for by checkpoints), verify, and name the
        leaf the log holds at its seq; entries written while ``log_opened`` said
        ``entry_sigs`` must each have one.
        """
        keys = {k.note_key_id: k for k in self.trusted if k.name == self.origin
                and not k.revoked}
        leaves = self._leaves_by_seq(n)
        signed: set[int] = set()  # seqs with a good record, or already reported bad
        for r in records:
            if r.seq is None or r.leaf is None or r.key_id is None or r.sig is None:
                self.add(Code.MALFORMED, "per-entry signature record is malformed",
                         offset=r.offset, line=r.line, file="sigs")
                continue
            signed.add(r.seq)  # from here on, a failure is this record's finding
            key = keys.get(r.key_id)
            if key is None:
                self.add(Code.KEY_UNTRUSTED, f"per-entry signature of seq {r.seq} by untrusted "
                         f"key {r.key_id.hex()}", seq=r.seq, offset=r.offset, line=r.line,
                         file="sigs")
                continue
            try:
                key.verify(r.sig, entry_message(self.origin, r.seq, r.leaf))
            except InvalidSignature:
                self.add(Code.BAD_SIGNATURE, f"per-entry signature of seq {r.seq} does not "
                         "verify", seq=r.seq, offset=r.offset, line=r.line, file="sigs")
                continue
            if r.seq >= n:
                code = Code.TRUNCATED if r.seq < self.signed_upto else Code.WARNINGS
                self.add(code, f"signed entry seq {r.seq} is not in the log (it holds {n})",
                         seq=r.seq, offset=r.offset, line=r.line, file="sigs")
                continue
            have = leaves.get(r.seq)
            if have is None or have[0] != r.leaf:
                if have is None or have[1] not in self.bad_lines:
                    self.add(Code.MODIFIED, f"entry seq {r.seq} is not the entry its per-entry "
                             "signature covers", seq=r.seq, offset=r.offset, line=r.line,
                             file="sigs")
                continue
        self._missing_sigs(signed, n)

    def _leaves_by_seq(self, n: int) -> dict[int, tuple[bytes, int]]:
        """seq -> (leaf hash, line index) for the entries the log holds."""
        if self.leaf_blob is not None:
            blob = self.leaf_blob
            return {i: (bytes(blob[32 * i: 32 * i + 32]), i) for i in range(n)}
        out: dict[int, tuple[bytes, int]] = {}
        for ln in self.lines:
            if ln.seq is not None and ln.origin == self.origin:
                out.setdefault(ln.seq, (ln.leaf, ln.index))
        return out

    def _missing_sigs(self, signed: set[int], n: int) -> None:
        opened = sorted(self.opened)
        for k, (start, on) in enumerate(opened):
            if not on:
                continue
            end = opened[k + 1][0] if k + 1 < len(opened) else n
            missing = [s for s in range(start, end) if s not in signed]
            if missing:
                span = f"seq {missing[0]}" if len(missing) == 1 else \
                    f"{len(missing)} entries between seq {missing[0]} and {missing[-1]}"
                self.add(Code.BAD_SIGNATURE, f"no valid per-entry signature for {span}, though "
                         f"the log was opened with entry signatures at seq {start}",
                         seq=missing[0], file="sigs")

    def _forks(self, matching: list[int]) -> None:
        by_size: dict[int, SignedCheckpoint] = {}
        for cp in self.valid:
            c = cp.checkpoint
            other = by_size.setdefault(c.size, cp)
            if other.checkpoint.root != c.root:
                self.add(Code.FORK, f"two valid checkpoints of size {c.size} with different "
                         f"roots:\n{other.note}---\n{cp.note}", seq=c.size, file="checkpoint")
        if not self.findings or all(f.code == Code.FORK for f in self.findings):
            return
        # A validly signed checkpoint that contradicts an otherwise intact log, while a
        # later valid checkpoint agrees with the log, means the key signed two histories.
        entry_level = any(f.file == "log" for f in self.findings)
        if entry_level or not matching:
            return
        for i, f in enumerate(self.findings):
            if f.code == Code.MODIFIED and f.file == "checkpoint" and f.seq is not None \
                    and max(matching) > f.seq:
                self.findings[i] = Finding(Code.FORK, "validly signed checkpoint disagrees "
                                           "with an intact log that a later checkpoint "
                                           "confirms: " + f.message, f.seq, f.offset, f.line,
                                           f.file)

    def state_check(self) -> None:
        st = self.state
        if st is None:
            return
        if st.origin != self.origin:
            self.add(Code.SPLICED, f"state file is for origin {short_repr(st.origin)}",
                     file="state")
            return
        newest = max((cp.checkpoint.size for cp in self.valid), default=0)
        root = self.roots.get(st.size)
        if st.size > max(newest, 0) or st.size > len(self.lines):
            self.add(Code.ROLLBACK, f"log is older than remembered: verified size {st.size} "
                     f"before, newest checkpoint now {newest}", seq=st.size, file="state")
        elif root is not None and root.hex() != st.root:
            self.add(Code.FORK, f"log at size {st.size} has root {root.hex()} but the "
                     f"remembered checkpoint had {st.root}", seq=st.size, file="state")


class _LazyLines(list):  # type: ignore[type-arg]
    """Stands in for ``_Line`` objects on the fast path: only length and the last line."""

    def __init__(self, n: int, last_raw: bytes) -> None:
        super().__init__()
        self._n, self._last = n, last_raw

    def __len__(self) -> int:
        return self._n

    def __bool__(self) -> bool:
        return self._n > 0

    def __getitem__(self, i: Any) -> Any:
        if i not in (-1, self._n - 1) or not self._n:
            raise IndexError(i)
        e = orjson.loads(self._last)
        return _Line(self._n - 1, 0, b"", e["seq"], e["prev"], e["origin"], e["kind"], e)


def _str_or_none(value: Any) -> str | None:
    return value if type(value) is str else None


def _float_problem(e: Any) -> str | None:
    return "floats are not allowed in audit entries" if has_float(e) else None


def verify_log(
    path: str | Path, keys: Iterable[TrustedKey], *, checkpoint_path: str | Path | None = None,
    state: VerifierState | None = None, origin: str | None = None,
    sigs_path: str | Path | None = None, workers: int | None = None,
    pinned: bool = True, key_source: str = "",
) -> Report:
    """Verify the log at ``path`` against ``keys``; never raises for a bad log.

    ``pinned=False`` says the keys were found beside the log (whoever can write
    there can replace the history *and* the key): the report then carries a
    ``WARNINGS`` finding, so such a result is never a plain OK.

    The checkpoints come from ``<log>.ckpt`` and the optional per-entry
    signatures from ``<log>.sigs`` unless other paths are given.

    A bad log is the *result* here (see :meth:`Report.raise_for_result`).
    ``workers`` bounds the processes that share the clean-log fast path
    (None: ``os.cpu_count()``; 1: in-process); the report is the same either way.

    Raises:
        OSError: the log file cannot be read.
    """
    path = Path(path)
    ckpt_path = Path(checkpoint_path) if checkpoint_path else checkpoint_path_for(path)
    cps = read_checkpoints(ckpt_path)
    v = _Verifier(path, list(keys), ckpt_path, state, origin)
    sizes = {cp.checkpoint.size for _, cp, _ in cps if cp is not None}
    if state is not None:
        sizes.add(state.size)
    # The fast loop makes ~10 short-lived objects a line and no cycles; pausing the
    # cyclic collector saves ~10% and is restored at once.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        with path.open("rb") as f:
            lazy = v.fast(f.fileno(), sizes, workers)
    finally:
        if was_enabled:
            gc.enable()
    if lazy is not None:
        v.lines = lazy
    else:
        data = path.read_bytes()
        raw_lines = data.split(b"\n")
        raw_lines.pop()
        v.origin = v._guess_origin(raw_lines)
        v.roots.clear()
        v.lines, v.opened, v.leaf_blob, v.rotations = [], [], None, []
        if not v.scan(data, sizes):
            v.classify()
    v.checkpoints(cps)
    v.settle_ambiguous_links()
    v.state_check()
    n = len(v.lines)
    records = read_entry_sigs(Path(sigs_path) if sigs_path else sigs_path_for(path))
    if records or any(on for _, on in v.opened):
        v.entry_signatures(records, n)
    if not v.valid and n:
        v.add(Code.UNVERIFIABLE, "no checkpoint signed by a trusted key; nothing here can be "
              "trusted", file="checkpoint")
    elif n > v.signed_upto:
        v.notes.append(f"note: seq {v.signed_upto}..{n - 1} ({n - v.signed_upto} entries) are "
                       "chained but not yet covered by a checkpoint")
        v.add(Code.WARNINGS, f"{n - v.signed_upto} entries at the tail are not covered by a "
              "signed checkpoint", seq=v.signed_upto)
    if not pinned:
        v.add(Code.WARNINGS, "verified only against keys found beside the log"
              f"{f' ({key_source})' if key_source else ''}; whoever can write that directory "
              "can replace the history and the key: pin the key with --key, --trust, a --state "
              "file or [audit] trust", file="keys")
    if v.torn:
        if n >= v.signed_upto:
            v.add(Code.WARNINGS, f"torn final line ({len(v.torn)} bytes without newline) beyond "
                  "the last checkpoint; the kernel cuts it on open", seq=n,
                  offset=v.end_offset, line=n + 1)
        else:
            v.add(Code.MALFORMED, "torn line inside the checkpointed prefix", seq=n,
                  offset=v.end_offset, line=n + 1)
    first_bad = min(v.first_disturbed, n)
    trusted = max((cp.checkpoint.size for cp in v.valid if cp.checkpoint.size <= first_bad
                   and v.roots.get(cp.checkpoint.size) == cp.checkpoint.root), default=0)
    last = v.lines[-1] if v.lines else None
    if last is None:
        tail = "empty log"
    elif last.kind == "log_closed":
        tail = f"closed cleanly at seq {last.seq}"
    else:
        kind = last.kind if last.kind in KINDS else short_repr(last.kind)
        tail = f"open (last entry seq {last.seq}, kind {kind}); a kernel may still be writing"
    latest = max(v.valid, key=lambda cp: cp.checkpoint.size, default=None)
    valid_entries = n - len({i for i in v.bad_lines if i < n})
    order = sorted(v.findings, key=lambda f: (-int(f.code), f.offset or 0))
    return Report(
        str(path), v.origin, n, valid_entries, tuple(order), len(v.valid), trusted, tail,
        latest, notes=tuple(v.notes), pinned=pinned, key_source=key_source,
        keys=tuple(_trust_line(k) for k in v.trusted if k.name == v.origin and not k.revoked),
    )


def _trust_line(key: TrustedKey) -> str:
    return key.vkey + (f" not-after={key.not_after}" if key.not_after else "")
