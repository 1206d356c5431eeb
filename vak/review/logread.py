"""Lenient entry reading for the auditor's tools.

Invariant: every line of the log is accounted for, either as a parsed entry
(a JSON object with an integer ``seq`` and a string ``kind``), as a counted
unreadable line, or (when the caller wants only some kinds) as a counted line
that provably holds none of them. Nothing here decides whether the log is intact; that is
:func:`vak.audit.verify.verify_log`'s job, whose result the tools show beside
their own.

Reading allocates a few dozen objects per line and none of them can form a
reference cycle, so the cyclic garbage collector is paused while a log is
parsed (:func:`gc_paused`): left running, its repeated full passes over the
growing entry list cost more than the parse itself (3x on a 64 MB log).
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

__all__ = ["LogEntries", "gc_paused", "kind_needles", "may_be", "parse_line", "read_entries"]

#: one log line longer than this is not parsed (the verifier reports it)
MAX_LINE = 16 << 20
#: bytes between two progress reports of :func:`read_entries`
PROGRESS_BYTES = 8 << 20


@dataclass(slots=True)
class LogEntries:
    """The parsed entries of one log, in file order, plus what could not be read."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    unreadable: int = 0
    #: lines passed over unparsed because they cannot hold a wanted kind
    skipped: int = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


def read_entries(path: Path, progress: Callable[[int, int], None] | None = None,
                 kinds: Collection[str] | None = None) -> LogEntries:
    """Every well-formed entry of the log at ``path`` (of ``kinds``, when given).

    With ``kinds``, a line that cannot hold an entry of one of them is not parsed
    (see :func:`may_be`) and is counted in :attr:`LogEntries.skipped`; such a
    line is never counted as unreadable. ``progress``, when given, is called with
    (bytes read, file size) every :data:`PROGRESS_BYTES` or so.

    Raises:
        OSError: the file cannot be read (the CLI reports it with the path).
    """
    out = LogEntries()
    append = out.entries.append
    wanted = None if kinds is None else kind_needles(kinds)
    with path.open("rb") as fh, gc_paused():
        size = os.fstat(fh.fileno()).st_size if progress is not None else 0
        done = mark = 0
        for raw in fh:
            if progress is not None:
                done += len(raw)
                if done - mark >= PROGRESS_BYTES:
                    progress(done, size)
                    mark = done
            line = raw.rstrip(b"\n")
            if not line:
                continue
            if wanted is not None and not may_be(line, wanted):
                out.skipped += 1
                continue
            entry = parse_line(line)
            if entry is None:
                out.unreadable += 1
            elif kinds is None or entry["kind"] in kinds:
                append(entry)
            else:
                out.skipped += 1
    return out


def kind_needles(kinds: Collection[str]) -> tuple[bytes, ...]:
    """The bytes :func:`may_be` looks for: each kind as it is spelled in JSON, and the
    start of a ``\\u`` escape (the only other way a JSON string can spell a letter)."""
    return (*(k.encode() for k in kinds), b"\\u")


def may_be(line: bytes, needles: tuple[bytes, ...]) -> bool:
    """False only when ``line`` cannot be an entry of the kinds ``needles`` were made
    for: a JSON string decoding to a kind name holds its letters literally or as
    ``\\u`` escapes, so a line with neither cannot carry that kind anywhere."""
    return any(n in line for n in needles)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for a burst of acyclic allocations.

    Reference counting still frees everything as usual; only cycle detection
    waits. The collector is re-enabled on exit only if it was enabled on entry.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def parse_line(line: bytes) -> dict[str, Any] | None:
    """One line (without its newline) as an entry, or None when it is not one."""
    if len(line) > MAX_LINE:
        return None
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if type(value) is not dict:
        return None
    if type(value.get("seq")) is not int or type(value.get("kind")) is not str:
        return None
    return value
