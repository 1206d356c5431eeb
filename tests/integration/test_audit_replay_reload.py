"""Replay, what-if and report over a log in which the policy set was reloaded.

The log (fixture ``reloaded``, tests/integration/conftest.py) is written by a
real kernel that reloads twice: reads of the same file are allowed, then
forbidden by the reloaded set, then allowed again after a reload back to the
first set.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

from kernel_helpers import HELLO, Reloaded

from vak.review.logread import LogEntries, read_entries
from vak.review.replay import replay_entries
from vak.review.timeline import build_timeline

AUDIT = [sys.executable, "-m", "vak.cli.audit"]


def _reads(entries: LogEntries) -> list[dict[str, Any]]:
    return [e for e in entries if e["kind"] == "host_decision" and e.get("resource") == HELLO]


def test_each_decision_is_judged_by_the_set_in_force(reloaded: Reloaded) -> None:
    entries = read_entries(reloaded.log)
    reads = _reads(entries)
    assert [e["decision"]["effect"] for e in reads] == ["allow", "deny", "deny", "allow"]
    assert [e["decision"]["policy_set"] for e in reads] == [
        reloaded.first.digest, reloaded.second.digest, reloaded.second.digest,
        reloaded.first.digest]
    result = replay_entries(entries)
    assert result.differences == []
    assert result.unreplayable == []
    assert result.policy_sets == 2
    assert result.policy_set_changes == 2
    assert result.per_policy_set == {reloaded.first.digest: 2, reloaded.second.digest: 2}
    assert result.evaluated == 4
    assert result.distinct_requests == 2  # the same read, once under each set


def test_a_decision_before_its_set_was_recorded_is_a_difference(reloaded: Reloaded) -> None:
    """Judged by the set in force (the one before it), not by the set it cites."""
    entries = copy.deepcopy(read_entries(reloaded.log))
    denied = _reads(entries)[1]
    at = next(i for i, e in enumerate(entries.entries) if e["kind"] == "policy_set"
              and e["policy_set"] == reloaded.second.digest)
    record = entries.entries.pop(at)
    entries.entries.insert(entries.entries.index(denied) + 1, record)
    result = replay_entries(entries)
    assert [d.seq for d in result.differences] == [denied["seq"]]
    diff = result.differences[0]
    assert diff.change == "deny->allow"
    assert diff.replayed.policy_set == reloaded.first.digest
    assert diff.recorded.policy_set == reloaded.second.digest


def test_a_decision_citing_a_superseded_set_is_a_difference(reloaded: Reloaded) -> None:
    entries = copy.deepcopy(read_entries(reloaded.log))
    last = _reads(entries)[-1]
    last["decision"]["policy_set"] = reloaded.second.digest  # same verdict, wrong set cited
    result = replay_entries(entries)
    assert [(d.seq, d.change) for d in result.differences] == [(last["seq"], "policy-set")]


def test_a_decision_before_any_policy_set_is_unreplayable(reloaded: Reloaded) -> None:
    entries = copy.deepcopy(read_entries(reloaded.log))
    entries.entries = [e for e in entries if e["kind"] != "policy_set"]
    result = replay_entries(entries)
    assert result.evaluated == 0
    assert {u.reason for u in result.unreplayable} == {"no policy_set entry before it"}
    assert len(result.unreplayable) == result.decisions - result.kernel


def test_what_if_spans_every_policy_set(reloaded: Reloaded) -> None:
    """The proposed set judges the whole history: it changes exactly the reads that
    were allowed under the first set, and none of those decided by the second."""
    entries = read_entries(reloaded.log)
    result = replay_entries(entries, proposed=reloaded.second)
    expected = [e["seq"] for e in _reads(entries) if e["decision"]["effect"] == "allow"]
    assert len(expected) == 2
    assert [d.seq for d in result.differences] == expected
    assert all(d.change == "allow->deny" for d in result.differences)
    assert all(d.recorded.policy_set == reloaded.first.digest for d in result.differences)
    back = replay_entries(entries, proposed=reloaded.first)
    assert [d.seq for d in back.differences] == [e["seq"] for e in _reads(entries)
                                                 if e["decision"]["effect"] == "deny"]
    assert all(d.change == "deny->allow" for d in back.differences)


def test_cli_replay_with_progress_and_what_if(reloaded: Reloaded) -> None:
    ok = subprocess.run([*AUDIT, "replay", str(reloaded.log), "--progress", "--json"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    data = json.loads(ok.stdout)
    assert data["policy_set_changes"] == 2
    assert set(data["per_policy_set"]) == {reloaded.first.digest, reloaded.second.digest}
    assert "decisions judged" in ok.stderr
    quiet = subprocess.run([*AUDIT, "replay", str(reloaded.log)], capture_output=True,
                           text=True, timeout=120)
    assert quiet.returncode == 0 and quiet.stderr == ""  # not a terminal: no progress
    args = [f"--policies={d}" for d in reloaded.dirs[1:]]
    changed = subprocess.run([*AUDIT, "replay", str(reloaded.log), *args,
                              f"--policies={reloaded.extra}"],
                             capture_output=True, text=True, timeout=120)
    assert changed.returncode == 30, changed.stdout + changed.stderr
    assert "2 decision(s) would change: allow->deny 2" in changed.stdout


def test_timeline_marks_the_reloads(reloaded: Reloaded) -> None:
    tl = build_timeline(read_entries(reloaded.log))
    assert [(r[2], r[3]) for r in tl.policy_sets] == [
        (reloaded.first.digest, "start"), (reloaded.second.digest, "reload"),
        (reloaded.first.digest, "reload")]
    assert tl.counts["policy_reloads"] == 2
