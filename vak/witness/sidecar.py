"""``LOG.witness``: checkpoints with the witnesses' cosignatures, and checking them.

One canonical JSON object ``{"note": "<checkpoint note + cosignature lines>"}``
per line, appended by the kernel's witness client after each witness answered.
A verifier requiring ``K`` of ``N`` witnesses checks that ``K`` distinct
witnesses it trusts cosigned some checkpoint whose root the log itself gives
at that size (the largest such size is reported); a valid cosignature over a
root the log does not have is a fork: the witness saw another history.

Example::

    >>> check_log_cosignatures(Path("audit/vak.log"), keys, 2).witnesses   # doctest: +SKIP
    ('w1.example', 'w2.example')
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

import orjson

from vak.audit.merkle import CompactRange
from vak.errors import WitnessError
from vak.witness.cosignature import WitnessKey, verify_cosignatures
from vak.witness.note import log_checkpoint

__all__ = ["WitnessCheck", "append_cosigned", "check_log_cosignatures", "read_cosigned",
           "sidecar_for"]


def sidecar_for(log: Path) -> Path:
    return log.with_name(log.name + ".witness")


def append_cosigned(path: Path, note: str) -> None:
    """Append one cosigned note (one write of one line: never a torn record mid-file)."""
    line = orjson.dumps({"note": note}, option=orjson.OPT_SORT_KEYS) + b"\n"
    with path.open("ab") as f:
        f.write(line)


def read_cosigned(path: Path, offset: int = 0) -> Iterator[tuple[int, str]]:
    """``(offset after the line, note)`` for each complete line from ``offset``.

    Raises:
        WitnessError: a complete line is not ``{"note": string}``.
    """
    with path.open("rb") as f:
        f.seek(offset)
        pos = offset
        for raw in f:
            if not raw.endswith(b"\n"):
                return
            pos += len(raw)
            try:
                note = orjson.loads(raw)["note"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                note = None
            if not isinstance(note, str):
                raise WitnessError(f"{path.name}: line ending at byte {pos} is not a note")
            yield pos, note


@dataclass(frozen=True, slots=True)
class WitnessCheck:
    """The outcome: witnesses confirmed, the size they confirm, and problems found."""

    witnesses: tuple[str, ...]
    size: int
    forks: tuple[str, ...]
    bad: tuple[str, ...]


def _roots(log: Path, sizes: set[int]) -> dict[int, bytes]:
    roots: dict[int, bytes] = {}
    tree = CompactRange()
    top = max(sizes, default=0)
    with log.open("rb") as f:
        for raw in f:
            if tree.size >= top or not raw.endswith(b"\n"):
                break
            tree.append(sha256(b"\x00" + raw[:-1]).digest())
            if tree.size in sizes:
                roots[tree.size] = tree.root()
    return roots


def check_log_cosignatures(log: Path, keys: Sequence[WitnessKey], minimum: int,
                           sidecar: Path | None = None) -> WitnessCheck:
    """Check ``LOG.witness`` (or ``sidecar``) against ``log``; see the module docstring."""
    path = sidecar or sidecar_for(log)
    notes = list(read_cosigned(path)) if path.exists() else []
    parsed = []
    bad: list[str] = []
    for _, note in notes:
        try:
            signed, lines = log_checkpoint(note)
        except WitnessError as exc:
            bad.append(exc.message)
            continue
        parsed.append((signed.checkpoint, lines))
    roots = _roots(log, {cp.size for cp, _ in parsed})
    best: dict[str, int] = {}  # witness -> largest size it cosigned that the log confirms
    forks: list[str] = []
    for cp, lines in parsed:
        try:
            good = verify_cosignatures(cp.body(), lines, keys, 1)
        except WitnessError as exc:
            if exc.details.get("required") is None:
                bad.append(exc.message)
            continue
        if roots.get(cp.size) != cp.root:
            forks.append(f"witnesses {', '.join(k.name for k in good)} cosigned size "
                         f"{cp.size} with a root this log does not have")
            continue
        for k in good:
            best[k.name] = max(best.get(k.name, 0), cp.size)
    # every witness that confirmed size s also vouches for each prefix of it, so the size K
    # witnesses confirm is the K-th largest of their sizes
    sizes = sorted(best.values(), reverse=True)
    size = sizes[minimum - 1] if 0 < minimum <= len(sizes) else 0
    return WitnessCheck(tuple(sorted(best)), size, tuple(forks), tuple(bad))
