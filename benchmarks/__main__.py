"""``python -m benchmarks [--quick] [--json PATH] [--markdown PATH] [--only NAME ...]``.

Runs every figure group (or only the named ones), prints the results table on
stdout, progress on stderr, and writes the same as JSON: a full run to the
committed ``benchmarks-results.json`` (then ``python -m benchmarks.chart``
redraws ``docs/benchmarks.png``), a ``--quick`` or ``--only`` run to the
temporary directory unless ``--json`` names a file. Exits non-zero only
when the harness itself crashes: a missed target or a broken part under test
is a row in the table, never an exit code (CI runs ``--quick`` to prove the
harness works, not as a gate).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from pathlib import Path

import orjson

from benchmarks._harness import Context, Figure, progress
from benchmarks._report import render_markdown, render_table, to_json

#: the committed results of the last full run (the README's table and chart)
FULL_JSON = Path(__file__).resolve().parent.parent / "benchmarks-results.json"
#: where a partial run (--quick or --only) writes unless --json says otherwise
QUICK_JSON = Path(tempfile.gettempdir()) / "vak-benchmarks-quick.json"

#: figure groups, in run order (cheap and independent first)
GROUPS = ("engine", "kernel", "mediation", "audit", "review", "worker", "concurrency",
          "fleet", "components", "serve")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="about one minute, fewer iterations")
    ap.add_argument("--json", type=Path, default=None,
                    help=f"where to write the JSON results (default: {FULL_JSON} for a full "
                         f"run; a --quick or --only run writes {QUICK_JSON.name} in the "
                         "temporary directory, so it never replaces the committed figures)")
    ap.add_argument("--markdown", type=Path, default=None,
                    help="also write the table as Markdown (for the README)")
    ap.add_argument("--only", action="append", choices=GROUPS, metavar="NAME",
                    help=f"run only this group (repeatable): {', '.join(GROUPS)}")
    return ap.parse_args(argv)


def json_path(args: argparse.Namespace) -> Path:
    """Where this run's JSON goes: ``--json``, else the committed file only for a full run."""
    if args.json is not None:
        return Path(args.json)
    return QUICK_JSON if args.quick or args.only else FULL_JSON


def run(groups: tuple[str, ...], ctx: Context) -> list[Figure]:
    """Collect the figures of ``groups``; a group that cannot even import is one error row."""
    figures: list[Figure] = []
    try:
        for group in groups:
            progress(f"group {group}")
            try:
                module = importlib.import_module(f"benchmarks.bench_{group}")
                figures.extend(module.figures(ctx))
            except Exception as exc:  # a broken room must not hide the other figures
                figures.append(Figure.failed(group, f"{type(exc).__name__}: {exc}"))
    finally:
        close_all(ctx)
    return figures


def close_all(ctx: Context) -> None:
    """Close kernels, engines, pools and logs the figures opened, newest first."""
    for closer in reversed(ctx.cache.pop("closers", [])):
        try:
            closer()
        except Exception as exc:  # shutting down: report, keep closing the rest
            progress(f"close failed: {type(exc).__name__}: {exc}")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    groups = tuple(args.only) if args.only else GROUPS
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vak-bench-") as tmp:
        figures = run(groups, Context(quick=args.quick, workdir=Path(tmp)))
    elapsed = time.perf_counter() - start
    print(render_table(figures))
    doc = to_json(figures, quick=args.quick, elapsed_s=elapsed)
    out = json_path(args)
    out.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    if args.markdown is not None:
        command = "python -m benchmarks" + (" --quick" if args.quick else "") + "".join(
            f" --only {g}" for g in args.only or ())
        args.markdown.write_text(render_markdown(figures, command=command), encoding="utf-8")
    progress(f"done in {elapsed:.0f} s; JSON written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
