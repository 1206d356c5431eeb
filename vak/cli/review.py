"""``vak-audit replay`` and ``vak-audit report``: the auditor's toolkit on the command line.

Examples::

    vak-audit replay audit/vak.log                       # every decision right?
    vak-audit replay audit/vak.log --policies proposed/  # what would change?
    vak-audit replay --config vak.toml --json
    vak-audit report audit/vak.log -o report.html --key audit/log.key.pub

Exit codes of ``replay`` (docs/CLI.md): 0 every Cedar decision replays to its
record (or, with ``--policies``, nothing would change); 30 differences found;
31 no differences, but some decisions could not be replayed; 2 usage or I/O.
``report`` exits 0 when the page was written (the verification result is shown
in the page, not in the exit code) and 2 on usage or I/O errors.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from vak.review.logread import read_entries
from vak.text import terminal

if TYPE_CHECKING:  # replay needs cedarpy: loaded by `vak-audit replay` only, never by verify
    from vak.review.replay import Difference, ReplayResult

__all__ = ["ReplayCode", "add_commands"]


class ReplayCode(IntEnum):
    """``vak-audit replay`` exit codes (apart from the verifier's and vak's codes)."""

    OK = 0
    DIFFERENCES = 30
    UNREPLAYABLE = 31


def _printable(text: str, limit: int = 200) -> str:
    """``text`` on one line with control characters escaped (a log string cannot forge a
    line), bounded to ``limit`` characters."""
    return terminal(text[:limit], keep_newlines=False) + ("..." if len(text) > limit else "")


def _diff_line(d: Difference) -> str:
    rec = ", ".join(d.recorded.policy_ids) or "-"
    rep = ", ".join(d.replayed.policy_ids) or "-"
    line = (f"seq {d.seq}  {_printable(d.skill)}  {_printable(d.host_function)} "
            f"{_printable(d.resource)}  {_printable(d.recorded.effect)} -> {d.replayed.effect}  "
            f"[{_printable(rec)}] -> [{_printable(rep)}]")
    if d.change == "policy-set":
        line += (f"  cites policy set {_printable(d.recorded.policy_set, 80)}, but "
                 f"{d.replayed.policy_set} was in force")
    return line


def _render(result: ReplayResult, what_if: bool) -> str:
    from vak.review.replay import changed_ids

    against = ("the recorded policy sets" if not what_if
               else f"the proposed policy set {result.against}")
    lines = [f"replayed {result.evaluated} of {result.decisions} decisions against {against} "
             f"({result.policy_sets} policy set(s) recorded, {result.policy_set_changes} "
             f"change(s) of the set in force; {result.kernel} kernel decision(s) need no "
             f"policy; {result.distinct_requests} distinct request(s) evaluated)"]
    lines += [_diff_line(d) for d in result.differences]
    lines += [f"seq {u.seq}  not replayable: {_printable(u.reason)}" for u in result.unreplayable]
    if result.unreadable_lines:
        lines.append(f"{result.unreadable_lines} unreadable line(s) skipped "
                     "(run vak-audit verify)")
    if what_if:
        to_deny = sum(1 for d in result.differences if d.change == "allow->deny")
        to_allow = sum(1 for d in result.differences if d.change == "deny->allow")
        lines.append(f"{len(result.differences)} decision(s) would change: allow->deny {to_deny}, "
                     f"deny->allow {to_allow}, other policy ids "
                     f"{len(result.differences) - to_deny - to_allow}")
        ids = changed_ids(result.differences)
        if ids:
            lines.append("policy ids involved: " + ", ".join(
                f"{_printable(k)} ({n})" for k, n in ids.items()))
    else:
        lines.append(f"differences: {len(result.differences)}")
    lines.append(f"RESULT: {_code(result).name}")
    return "\n".join(lines)


def _code(result: ReplayResult) -> ReplayCode:
    if result.differences:
        return ReplayCode.DIFFERENCES
    if result.unreplayable:
        return ReplayCode.UNREPLAYABLE
    return ReplayCode.OK


def _cmd_replay(args: argparse.Namespace, locate: Callable[..., tuple[Path, Any]]) -> int:
    from vak.policy.loader import load_policies
    from vak.review.replay import changed_ids, replay

    log, _ = locate(args, need_keys=False)
    proposed = None
    if args.policies:
        dirs = [Path(d) for d in args.policies]
        if not args.no_base:
            from vak.config import SHIPPED_POLICY_DIR

            dirs.insert(0, SHIPPED_POLICY_DIR)
        proposed = load_policies(dirs)
    meter = _Meter() if args.progress or sys.stderr.isatty() else None
    result = replay(log, proposed=proposed, jobs=args.jobs,
                    progress=meter.judging if meter is not None else None,
                    reading=meter.reading if meter is not None else None)
    if meter is not None:
        meter.done()
    if args.json:
        data = result.to_json()
        data["result"] = _code(result).name
        data["exit_code"] = int(_code(result))
        if proposed is not None:
            data["policy_ids_involved"] = changed_ids(result.differences)
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(_render(result, proposed is not None) + "\n")
    return int(_code(result))


class _Meter:
    """Progress of a long replay on one stderr line (stdout carries only the result)."""

    def __init__(self, every_s: float = 0.25) -> None:
        self._every = every_s
        self._last = 0.0
        self._line = ""

    def _show(self, line: str, final: bool) -> None:
        now = time.monotonic()
        if line == self._line or (now - self._last < self._every and not final):
            return
        pad = " " * max(0, len(self._line) - len(line))  # no tail of a longer line
        self._last, self._line = now, line
        sys.stderr.write("\r" + line + pad)
        sys.stderr.flush()

    def reading(self, done: int, size: int) -> None:
        self._show(f"replay: {done >> 20:,}/{size >> 20:,} MiB of the log read", done >= size)

    def judging(self, done: int, total: int) -> None:
        pct = 100 * done // total if total else 100
        self._show(f"replay: {done:,}/{total:,} decisions judged ({pct}%)", done >= total)

    def done(self) -> None:
        if self._line:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _cmd_report(args: argparse.Namespace, locate: Callable[..., tuple[Path, Any]]) -> int:
    from vak.audit.verify import verify_log
    from vak.review.report import render_report

    keyed = bool(args.config or args.key or args.trust)
    log, keys = locate(args, need_keys=keyed)
    if keyed:
        report = verify_log(log, keys.keys, pinned=keys.pinned, key_source=keys.source)
        verification = {
            "result": report.result.name,
            "summary": f"{report.valid_entries}/{report.entries} entries valid, "
                       f"{report.checkpoints_verified} checkpoints verified, keys "
                       f"{'pinned' if keys.pinned else 'NOT PINNED'} ({keys.source})",
            "findings": [f.render() for f in report.findings] + list(report.notes),
        }
    else:
        verification = {"result": "UNVERIFIED",
                        "summary": "no trusted key given (pass --key, --trust or --config)",
                        "findings": []}
    html = render_report(read_entries(log), verification)
    out = Path(args.output)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    sys.stdout.write(f"wrote {out} ({len(html)} bytes); verification: {verification['result']}\n")
    return 0


def add_commands(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    common: Callable[..., None],
    locate: Callable[..., tuple[Path, Any]],
) -> None:
    """Register ``replay`` and ``report`` on ``vak-audit``'s subcommand parser.

    ``common`` adds the shared LOG/--config(/--key) arguments; ``locate`` turns
    them into the log path and trusted keys (both from :mod:`vak.cli.audit`).
    """
    r = sub.add_parser(
        "replay", help="re-evaluate every recorded decision (or a what-if with --policies)",
        description="Re-evaluate each recorded Cedar decision with the policy set recorded "
                    "with it and report every difference by seq; with --policies DIR, "
                    "evaluate the history against a proposed set and list what would change. "
                    "Exit 0 none, 30 differences, 31 some decisions not replayable.")
    common(r)
    r.add_argument("--policies", action="append", metavar="DIR",
                   help="proposed operator policy directory (repeatable); the shipped schema "
                        "and base policies are added unless --no-base")
    r.add_argument("--no-base", action="store_true",
                   help="with --policies: the directories hold the whole set, schema included")
    r.add_argument("--json", action="store_true", help="one JSON object for machines")
    r.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="worker processes for a long log (default: one per CPU; 1: none)")
    r.add_argument("--progress", action="store_true",
                   help="show progress on stderr (the default when stderr is a terminal)")
    r.set_defaults(fn=lambda a: _cmd_replay(a, locate))

    p = sub.add_parser(
        "report", help="write one self-contained HTML timeline of the log",
        description="Write a single HTML file (no network) with sessions, invocations and "
                    "host calls on a timeline, denials and approvals highlighted, filters, "
                    "and the verification result at the top.")
    common(p, keys=True)
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the HTML file to write")
    p.set_defaults(fn=lambda a: _cmd_report(a, locate))
