"""Replaying a long log in several processes, with the result of one.

Reading and judging a log costs CPU per line, so a long log is cut into chunks
at line boundaries and each chunk is replayed by a worker process. What a
chunk needs from before it is small and found cheaply: the ``policy_set`` and
``skill_loaded`` entries (the set in force, the principals). The parent finds
them by their canonical spelling (``"kind":"policy_set"``), parses those lines
and hands each worker the ones before its chunk; the worker replays them and
then its own lines exactly as :func:`vak.review.replay.replay_entries` does.

Invariant: the split result equals the serial one. A crafted line could be a
``policy_set`` without that spelling (an escaped key); each worker counts the
``policy_set`` and ``skill_loaded`` entries it parsed, and if any chunk holds
one the parent's scan did not see, the split result is discarded and the log
is replayed serially. Counts that depend on all chunks together (policy sets,
their changes) come from the parent's scan; ``distinct_requests`` is summed
over chunks (a request repeated in two chunks is evaluated in each).

Example::

    >>> replay_split(Path("audit/vak.log"), jobs=2)      # doctest: +SKIP
    ReplayResult(against='recorded', decisions=..., ...)
"""

from __future__ import annotations

import itertools
import mmap
import multiprocessing
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vak.policy.loader import LoadedPolicies
from vak.review.logread import gc_paused, kind_needles, may_be, parse_line
from vak.review.replay import KINDS, ReplayResult, replay_entries

__all__ = ["MIN_SPLIT_BYTES", "replay_split"]

#: a log shorter than this is replayed in-process (starting workers costs more)
MIN_SPLIT_BYTES = 24 << 20
#: more worker processes than this are never started, whatever is asked
_MAX_JOBS = 64
#: chunks per worker (more chunks: finer progress, less reuse of evaluations)
_CHUNKS_PER_JOB = 1
_MARKERS = (b'"kind":"policy_set"', b'"kind":"skill_loaded"')
_STATE_KINDS = ("policy_set", "skill_loaded")


@dataclass(frozen=True, slots=True)
class _Chunk:
    index: int
    path: str
    start: int
    end: int
    #: the policy_set and skill_loaded entries before ``start``, in file order
    prelude: tuple[Mapping[str, Any], ...]
    #: how many such entries the parent's scan found inside the chunk
    expected: int
    proposed: LoadedPolicies | None


@dataclass(frozen=True, slots=True)
class _Done:
    index: int
    result: ReplayResult
    state_entries: int
    size: int


def replay_split(log: Path, *, proposed: LoadedPolicies | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 jobs: int | None = None,
                 min_bytes: int = MIN_SPLIT_BYTES) -> ReplayResult | None:
    """The replay of ``log`` by ``jobs`` worker processes, or None when the log is
    shorter than ``min_bytes``, one job is asked for, or the split could not be
    trusted (then the caller replays serially). ``progress(bytes, size)`` is
    called as chunks finish.

    Raises:
        OSError: the log cannot be read.
    """
    jobs = min(jobs if jobs is not None else (os.cpu_count() or 1), _MAX_JOBS)
    size = log.stat().st_size
    if jobs <= 1 or size == 0 or size < min_bytes:
        return None
    with log.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        bounds = _bounds(data, jobs * _CHUNKS_PER_JOB)
        found = _state_lines(data)
    chunks = []
    for index, (start, end) in enumerate(bounds):
        prelude = tuple(e for off, e in found if off < start)
        inside = sum(1 for off, _ in found if start <= off < end)
        chunks.append(_Chunk(index, str(log), start, end, prelude, inside, proposed))
    # fork only when no other thread could hold a lock the child would inherit
    method = "fork" if threading.active_count() == 1 else "spawn"
    done_bytes = 0
    parts: list[ReplayResult] = []
    try:
        with ProcessPoolExecutor(max_workers=min(jobs, len(chunks)),
                                 mp_context=multiprocessing.get_context(method)) as pool:
            for future in as_completed([pool.submit(_replay_chunk, c) for c in chunks]):
                done = future.result()
                if done.state_entries != chunks[done.index].expected:
                    pool.shutdown(cancel_futures=True)
                    return None  # a state entry the scan missed: the split is not exact
                parts.append(done.result)
                done_bytes += done.size
                if progress is not None:
                    progress(done_bytes, size)
    except BrokenProcessPool:  # a worker died (out of memory, killed): replay serially
        return None
    whole = replay_entries([e for _, e in found], proposed=proposed)  # sets and changes
    return _merged(parts, whole)


def _bounds(data: mmap.mmap, n: int) -> list[tuple[int, int]]:
    """``n`` (or fewer) byte ranges covering ``data``, each ending after a newline."""
    size = len(data)
    cuts = [0]
    for i in range(1, n):
        at = data.find(b"\n", max(cuts[-1], size * i // n))
        if at < 0:
            break
        if at + 1 > cuts[-1]:
            cuts.append(at + 1)
    if cuts[-1] != size:
        cuts.append(size)
    return [(a, b) for a, b in itertools.pairwise(cuts) if b > a]


def _state_lines(data: mmap.mmap) -> list[tuple[int, Mapping[str, Any]]]:
    """(offset, entry) of every line spelling a policy_set or skill_loaded kind."""
    starts: set[int] = set()
    for marker in _MARKERS:
        at = data.find(marker)
        while at >= 0:
            starts.add(data.rfind(b"\n", 0, at) + 1)
            at = data.find(marker, at + 1)
    out: list[tuple[int, Mapping[str, Any]]] = []
    for start in sorted(starts):
        end = data.find(b"\n", start)
        entry = parse_line(data[start:end if end >= 0 else len(data)])
        if entry is not None and entry["kind"] in _STATE_KINDS:
            out.append((start, entry))
    return out


def _replay_chunk(chunk: _Chunk) -> _Done:
    """Worker: replay the chunk's lines after its prelude."""
    with open(chunk.path, "rb") as fh:
        fh.seek(chunk.start)
        raw = fh.read(chunk.end - chunk.start)
    entries: list[Mapping[str, Any]] = list(chunk.prelude)
    unreadable = state = 0
    needles = kind_needles(KINDS)
    with gc_paused():
        for line in raw.split(b"\n"):
            if not line or not may_be(line, needles):
                continue
            entry = parse_line(line)
            if entry is None:
                unreadable += 1
                continue
            state += entry["kind"] in _STATE_KINDS
            entries.append(entry)
    result = replay_entries(entries, proposed=chunk.proposed)
    result.unreadable_lines = unreadable
    return _Done(chunk.index, result, state, chunk.end - chunk.start)


def _merged(parts: list[ReplayResult], whole: ReplayResult) -> ReplayResult:
    out = ReplayResult(against=whole.against, policy_sets=whole.policy_sets,
                       policy_set_changes=whole.policy_set_changes)
    for r in parts:
        out.decisions += r.decisions
        out.evaluated += r.evaluated
        out.kernel += r.kernel
        out.distinct_requests += r.distinct_requests
        out.unreadable_lines += r.unreadable_lines
        for key, n in r.per_policy_set.items():
            out.per_policy_set[key] = out.per_policy_set.get(key, 0) + n
        out.differences.extend(r.differences)
        out.unreplayable.extend(r.unreplayable)
    out.differences.sort(key=lambda d: d.seq)
    out.unreplayable.sort(key=lambda u: u.seq)
    return out
