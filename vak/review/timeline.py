"""The timeline model of a log: sessions, invocations and host calls, with counts.

A pure function of the parsed entries (no I/O), so the HTML report, its tests
and any other viewer share one reading of what happened:

* an invocation spans ``invocation_started`` .. ``invocation_finished`` (an
  unfinished one ends at the last entry's time and has outcome ``unfinished``);
* a host call is one ``host_decision`` (allowed, denied or awaiting approval),
  joined with its ``host_result`` by ``decision_seq``;
* ``approval`` entries (human decisions on a call) are listed and counted;
* every ``policy_set`` entry marks the moment a policy set came into force: the
  first after a ``log_opened`` is the kernel's start, any other a reload
  (``Kernel.reload``), drawn across the timeline and counted.

Every string that came from the log stays data: the report puts it into the
page through ``textContent``, never as markup.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Timeline", "build_timeline"]


@dataclass(slots=True)
class Timeline:
    """Everything the report shows, as plain JSON-ready data."""

    origin: str = ""
    first_time: str = ""
    last_time: str = ""
    entries: int = 0
    unreadable: int = 0
    sessions: list[str] = field(default_factory=list)
    skills: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    #: [seq, id, skill, session, export, start_us, end_us, status, error]
    invocations: list[list[Any]] = field(default_factory=list)
    #: [seq, invocation index or -1, function, resource, effect, policy ids, time_us,
    #:  result status, reason]
    calls: list[list[Any]] = field(default_factory=list)
    #: [seq, kind, time_us, summary] for everything else worth seeing
    events: list[list[Any]] = field(default_factory=list)
    #: [seq, time_us, policy set digest, "start" or "reload"] for every policy_set entry
    policy_sets: list[list[Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "origin": self.origin, "first_time": self.first_time, "last_time": self.last_time,
            "entries": self.entries, "unreadable": self.unreadable, "sessions": self.sessions,
            "skills": self.skills, "functions": self.functions,
            "invocations": self.invocations, "calls": self.calls, "events": self.events,
            "policy_sets": self.policy_sets, "counts": self.counts,
        }


_EVENT_KINDS = frozenset({"log_opened", "log_closed", "key_rotated", "recovered", "skill_loaded",
                          "skill_refused", "worker_crashed", "policy_set", "sandbox_degraded",
                          "approval", "reload"})


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _micros(stamp: str, base: datetime | None) -> int:
    """Microseconds since ``base`` of an RFC 3339 ``...Z`` stamp (0 when unreadable)."""
    if base is None:
        return 0
    try:
        t = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return 0
    return int((t - base).total_seconds() * 1_000_000)


def _base(entries: list[Mapping[str, Any]]) -> datetime | None:
    for e in entries:
        try:
            return datetime.fromisoformat(_str(e.get("time")).replace("Z", "+00:00"))
        except ValueError:
            continue
    return None


def build_timeline(  # noqa: C901 - one pass over the log, one branch per entry kind
    entries: Iterable[Mapping[str, Any]], unreadable: int = 0
) -> Timeline:
    """The :class:`Timeline` of ``entries`` (parsed log entries in file order)."""
    items = list(entries)
    tl = Timeline(entries=len(items), unreadable=unreadable)
    base = _base(items)
    sessions: dict[str, None] = {}
    skills: dict[str, None] = {}
    functions: dict[str, None] = {}
    open_inv: dict[str, int] = {}
    calls_by_seq: dict[int, int] = {}
    counts = {"invocations": 0, "host_calls": 0, "allowed": 0, "denied": 0,
              "approval_required": 0, "approvals": 0, "errors": 0, "policy_reloads": 0}
    last_us = 0
    started = False  # a policy_set since the last log_opened (the next one is a reload)
    for e in items:
        kind = _str(e.get("kind"))
        seq = e.get("seq")
        stamp = _str(e.get("time"))
        us = _micros(stamp, base)
        last_us = max(last_us, us)
        if not tl.origin:
            tl.origin = _str(e.get("origin"))
        if stamp:
            tl.first_time = tl.first_time or stamp
            tl.last_time = stamp
        session = _str(e.get("session"))
        skill = _str(_obj(e.get("skill")).get("id"))
        if kind == "invocation_started":
            inv = _str(e.get("invocation"))
            counts["invocations"] += 1
            sessions.setdefault(session)
            skills.setdefault(skill)
            open_inv[inv] = len(tl.invocations)
            tl.invocations.append([seq, inv, skill, session, _str(e.get("export")), us, us,
                                   "unfinished", ""])
        elif kind == "invocation_finished":
            idx = open_inv.pop(_str(e.get("invocation")), None)
            if idx is not None:
                outcome = _obj(e.get("outcome"))
                row = tl.invocations[idx]
                row[6] = us
                row[7] = _str(outcome.get("status")) or "unknown"
                row[8] = _str(outcome.get("error"))
                if row[7] != "ok":
                    counts["errors"] += 1
        elif kind == "host_decision":
            decision = _obj(e.get("decision"))
            effect = _str(decision.get("effect")) or "unknown"
            counts["host_calls"] += 1
            key = {"allow": "allowed", "deny": "denied",
                   "approval_required": "approval_required"}.get(effect)
            if key:
                counts[key] += 1
            fn = _str(e.get("host_function"))
            functions.setdefault(fn)
            ids = decision.get("policy_ids")
            inv_idx = open_inv.get(_str(e.get("invocation")), -1)
            if isinstance(seq, int):
                calls_by_seq[seq] = len(tl.calls)
            tl.calls.append([seq, inv_idx, fn, _str(e.get("resource")), effect,
                             [i for i in ids if isinstance(i, str)] if isinstance(ids, list)
                             else [], us, "", _str(decision.get("reason"))])
        elif kind == "host_result":
            idx = calls_by_seq.get(e.get("decision_seq"))  # type: ignore[arg-type]
            if idx is not None:
                tl.calls[idx][7] = _str(_obj(e.get("outcome")).get("status"))
        elif kind in _EVENT_KINDS:
            if kind == "approval":
                counts["approvals"] += 1
            elif kind == "log_opened":
                started = False
            elif kind == "policy_set":
                tl.policy_sets.append([seq, us, _str(e.get("policy_set")),
                                       "reload" if started else "start"])
                counts["policy_reloads"] += 1 if started else 0
                started = True
            tl.events.append([seq, kind, us, _summary(kind, e)])
    for idx in open_inv.values():
        tl.invocations[idx][6] = last_us
    tl.sessions = sorted(sessions)
    tl.skills = sorted(skills)
    tl.functions = sorted(functions)
    tl.counts = counts
    return tl


def _summary(kind: str, e: Mapping[str, Any]) -> str:
    skill = _obj(e.get("skill"))
    if kind in ("skill_loaded", "skill_refused", "worker_crashed"):
        return f"{_str(skill.get('id'))} {_str(skill.get('version'))}".strip() + (
            f": {_str(e.get('reason'))}" if kind == "skill_refused" else "")
    if kind == "policy_set":
        return _str(e.get("policy_set"))
    if kind == "approval":
        return f"{_str(e.get('verdict')) or _str(e.get('decision'))} {_str(e.get('approval'))}"
    if kind == "recovered":
        return f"{e.get('dropped_bytes')} bytes dropped"
    return ""
