"""Render figures as the results table (text) and as JSON."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from benchmarks._harness import Figure, Sample

__all__ = ["render_markdown", "render_table", "to_json"]

_HEADER = ("figure", "VAK", "baseline", "ratio", "target", "met?")


def _fmt(s: Sample | None, unit: str) -> str:
    if s is None:
        return "-"
    if unit == "time":
        return f"{_dur(s.median_ns)} (p99 {_dur(s.p99_ns)})"
    if unit.endswith("/s"):
        return f"{s.median_ns:,.0f} {unit}"
    return f"{s.median_ns:,.1f} {unit} (p99 {s.p99_ns:,.1f})"


def _dur(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e3:.1f} us"


def _row(f: Figure) -> tuple[str, ...]:
    if f.error:
        return (f.name, "ERROR", f.baseline_name or "-", "-", f.target or "-", "n/a")
    base = f"{f.baseline_name}: {_fmt(f.baseline, f.unit)}" if f.baseline else f.baseline_name
    ratio = "-" if f.ratio is None else f"{f.ratio:.2f}x"
    met = {True: "yes", False: "NO", None: "-"}[f.met]
    return (f.name, _fmt(f.subject, f.unit), base or "-", ratio, f.target or "-", met)


def render_table(figures: Sequence[Figure]) -> str:
    """A fixed-width table, then one line per note or error."""
    rows = [_HEADER, *(_row(f) for f in figures)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for f in figures:
        if f.error:
            lines.append(f"! {f.name}: {f.error}")
        elif f.note:
            lines.append(f"* {f.name}: {f.note}")
    return "\n".join(lines)


def to_json(figures: Sequence[Figure], *, quick: bool, elapsed_s: float) -> dict[str, Any]:
    """The run as a JSON document: machine facts first, then one object per figure."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "elapsed_s": round(elapsed_s, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "figures": [f.to_dict() for f in figures],
    }


def render_markdown(figures: Sequence[Figure], *, command: str) -> str:
    """The table as Markdown for the README, headed by date, cores and the command."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"Run {now} on {os.cpu_count()} CPUs ({platform.machine()}, "
           f"Python {platform.python_version()}); reproduce with `{command}`.", "",
           "| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    out += ["| " + " | ".join(c.replace("|", "/") for c in _row(f)) + " |" for f in figures]
    notes = [f"- {f.name}: {f.error or f.note}" for f in figures if f.error or f.note]
    return "\n".join([*out, "", *notes, ""])
