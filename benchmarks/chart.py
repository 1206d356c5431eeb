"""``python -m benchmarks.chart [RESULTS.json] [-o PNG]``: the README's benchmark chart.

Draws one horizontal bar per figure of a results file written by
``python -m benchmarks`` (default: the committed ``benchmarks-results.json``):
the bar is the figure's ratio to its baseline (lower is better, log scale, the
dashed line is parity), green when its target is met, red when missed, grey
for informational rows; a black tick marks a ratio target (``<= 2x``). Error
rows are listed under the chart rather than drawn. Needs matplotlib (the
``bench`` extra); the image is written with the non-interactive Agg backend.

Example::

    python -m benchmarks && python -m benchmarks.chart   # table JSON, then docs/benchmarks.png
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

__all__ = ["draw", "main", "ratio_target"]

_REPO = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = _REPO / "benchmarks-results.json"
DEFAULT_PNG = _REPO / "docs" / "benchmarks.png"
_RATIO_TARGET = re.compile(r"^\s*<=?\s*([0-9]*\.?[0-9]+)\s*x\b")
_COLOURS = {True: "#2e7d32", False: "#c62828", None: "#9e9e9e"}


def ratio_target(target: str) -> float | None:
    """The ratio limit of a target such as ``"<= 2.5x"`` or ``"< 1x"`` (None otherwise)."""
    m = _RATIO_TARGET.match(target or "")
    return float(m.group(1)) if m else None


def _rows(doc: Mapping[str, Any]) -> tuple[list[Mapping[str, Any]], list[str]]:
    drawn: list[Mapping[str, Any]] = []
    errors: list[str] = []
    for f in doc.get("figures", []):
        ratio = f.get("ratio")
        if f.get("error") or not isinstance(ratio, int | float) or ratio <= 0:
            errors.append(f"{f.get('figure', '?')}: {f.get('error') or 'no ratio'}")
        else:
            drawn.append(f)
    return drawn, errors


def draw(doc: Mapping[str, Any], out: Path) -> Path:
    """Render ``doc`` (a parsed results file) as a PNG at ``out``; return ``out``.

    Raises:
        ValueError: the document holds no figure with a ratio.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    rows, errors = _rows(doc)
    if not rows:
        raise ValueError("no figure with a ratio to draw")
    names = [str(f["figure"]) for f in rows]
    ratios = [float(f["ratio"]) for f in rows]
    height = 0.8 + 0.36 * len(rows) + 0.2 * len(errors)
    fig, ax = plt.subplots(figsize=(10, height), dpi=110)
    y = list(range(len(rows)))[::-1]
    ax.barh(y, ratios, color=[_COLOURS[f.get("met")] for f in rows], height=0.62)
    for yi, f, r in zip(y, rows, ratios, strict=True):
        ax.text(r * 1.04, yi, f"{r:.2f}x", va="center", fontsize=8)
        limit = ratio_target(str(f.get("target", "")))
        if limit is not None:
            ax.plot([limit, limit], [yi - 0.38, yi + 0.38], color="black", linewidth=2)
    ax.axvline(1.0, color="#555555", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    lo, hi = min(*ratios, 1.0), max(*ratios, 1.0)
    ax.set_xlim(lo / 1.6, hi * 1.6)
    ticks = [t for t in (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32) if lo / 1.6 <= t <= hi * 1.6]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_yticks(y, names, fontsize=8)
    ax.set_xlabel("cost relative to the baseline measured in the same run "
                  "(log scale; lower is better; | = target)", fontsize=8)
    machine = doc.get("machine", {})
    ax.set_title(f"VAK benchmarks, {doc.get('date', '?')}"
                 f"{' (quick)' if doc.get('quick') else ''}: {machine.get('cpus', '?')} CPUs, "
                 f"Python {machine.get('python', '?')}", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    if errors:
        fig.text(0.01, 0.005, "not measured: " + "; ".join(errors)[:400], fontsize=6,
                 va="bottom")
    fig.tight_layout(rect=(0, 0.03 if errors else 0, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.chart", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="?", type=Path, default=DEFAULT_RESULTS)
    ap.add_argument("-o", "--output", type=Path, default=DEFAULT_PNG)
    args = ap.parse_args(argv)
    doc = orjson.loads(args.results.read_bytes())
    print(f"chart written to {draw(doc, args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
