"""Measurement harness: interleaved subject/baseline timing, medians and p99, ratios.

Absolute times drift on a shared 2-core machine, so every figure is a ratio
against a baseline measured *in the same run*, interleaved call by call so
that drift hits both sides alike. A figure module exposes
``figures(ctx: Context) -> list[Figure]``; ``python -m benchmarks`` collects them.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Context",
    "Figure",
    "Sample",
    "guarded",
    "interleaved",
    "interleaved_rates",
    "progress",
    "sample",
]


@dataclass(frozen=True, slots=True)
class Sample:
    """Summary of one timed series, in nanoseconds per operation."""

    median_ns: float
    p99_ns: float
    n: int

    @classmethod
    def of(cls, times_ns: list[float]) -> Sample:
        """Median and p99 (nearest rank) of ``times_ns``.

        Raises:
            ValueError: ``times_ns`` is empty (a figure with no data is a bug).
        """
        if not times_ns:
            raise ValueError("no samples")
        ordered = sorted(times_ns)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return cls(statistics.median(ordered), p99, len(ordered))

    def to_dict(self) -> dict[str, Any]:
        return {"median_ns": round(self.median_ns), "p99_ns": round(self.p99_ns), "n": self.n}


@dataclass(frozen=True, slots=True)
class Figure:
    """One row of the results table.

    ``ratio`` is always "cost relative to the baseline" (lower is better):
    subject/baseline for times and sizes, baseline/subject when ``unit`` is
    a rate ending in ``/s`` (e.g. ``"entries/s"``) and both samples hold rates.
    """

    name: str
    subject: Sample | None
    baseline: Sample | None
    baseline_name: str
    target: str
    met: bool | None
    unit: str = "time"  # "time" (ns/op) or a rate label such as "entries/s"
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: why the figure could not be measured (the part under test failed)
    error: str = ""

    @classmethod
    def failed(cls, name: str, error: str, *, target: str = "", baseline_name: str = "") -> Figure:
        """An error row: the run goes on and the table says what broke."""
        return cls(name, None, None, baseline_name, target, None, error=error)

    @property
    def ratio(self) -> float | None:
        if self.subject is None or self.baseline is None:
            return None
        num, den = self.subject.median_ns, self.baseline.median_ns
        if self.unit.endswith("/s"):
            num, den = den, num
        return None if den == 0 else num / den

    def to_dict(self) -> dict[str, Any]:
        return {
            "figure": self.name,
            "unit": self.unit,
            "vak": self.subject.to_dict() if self.subject else None,
            "baseline_name": self.baseline_name,
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "target": self.target,
            "met": self.met,
            "note": self.note,
            "error": self.error or None,
            **self.extra,
        }


@dataclass(slots=True)
class Context:
    """What every figure module gets: run size, a scratch dir, shared fixtures."""

    quick: bool
    workdir: Path
    cache: dict[str, Any] = field(default_factory=dict)

    def iterations(self, full: int) -> int:
        """Scale an iteration count down for ``--quick`` runs."""
        return max(20, full // 10) if self.quick else full


def sample(fn: Callable[[], object], *, iterations: int, warmup: int = 50) -> Sample:
    """Time ``fn`` alone (for figures without a per-call baseline)."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for _ in range(iterations):
            t0 = clock()
            fn()
            times.append(clock() - t0)
    finally:
        gc.enable()
    return Sample.of(times)


def interleaved(
    subject: Callable[[], object],
    baseline: Callable[[], object],
    *,
    iterations: int,
    warmup: int = 50,
) -> tuple[Sample, Sample]:
    """Time ``subject`` and ``baseline`` alternately, one call each per round."""
    for _ in range(warmup):
        subject()
        baseline()
    a: list[float] = []
    b: list[float] = []
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for i in range(iterations):
            # alternate who goes first so cache warmth does not favour one side
            first, second, fa, fb = (
                (subject, baseline, a, b) if i % 2 == 0 else (baseline, subject, b, a)
            )
            t0 = clock()
            first()
            t1 = clock()
            second()
            t2 = clock()
            fa.append(t1 - t0)
            fb.append(t2 - t1)
    finally:
        gc.enable()
    return Sample.of(a), Sample.of(b)


def interleaved_rates(
    subject: Callable[[], int],
    baseline: Callable[[], int],
    *,
    rounds: int,
) -> tuple[Sample, Sample]:
    """Throughput version of :func:`interleaved`: alternate whole bursts.

    Each callable runs one burst and returns how many operations it completed;
    the samples hold operations per second (``median_ns`` is then a rate).
    """
    a: list[float] = []
    b: list[float] = []
    clock = time.perf_counter_ns
    for i in range(rounds):
        order = ((subject, a), (baseline, b)) if i % 2 == 0 else ((baseline, b), (subject, a))
        for fn, out in order:
            t0 = clock()
            ops = fn()
            out.append(ops * 1e9 / max(1, clock() - t0))
    return Sample.of(a), Sample.of(b)


def progress(message: str) -> None:
    """One progress line on stderr (stdout carries only the table)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def guarded(
    name: str, build: Callable[[], Figure], *, target: str = "", baseline_name: str = ""
) -> Figure:
    """Run ``build``; if the part under test is broken, return an error row instead.

    A benchmark run must report every figure it can even when one part is
    unfinished, so an exception becomes :meth:`Figure.failed` (with the last
    frame, to tell the owner where) rather than ending the run.
    """
    progress(name)
    try:
        return build()
    except Exception as exc:  # any failure of the measured part becomes a row
        where = traceback.extract_tb(exc.__traceback__)[-1]
        detail = f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})"
        progress(f"  ERROR {detail}")
        return Figure.failed(name, detail, target=target, baseline_name=baseline_name)
