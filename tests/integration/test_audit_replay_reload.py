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
from pathlib import Path
from typing import Any

import pytest
from kernel_helpers import HELLO, Reloaded

from vak.review.logread import LogEntries, read_entries
from vak.review.parallel import replay_split
from vak.review.replay import ReplayResult, replay, replay_entries
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


def _same(a: ReplayResult, b: ReplayResult) -> None:
    ja, jb = a.to_json(), b.to_json()
    ja.pop("distinct_requests"), jb.pop("distinct_requests")  # per chunk when split
    assert ja == jb


@pytest.mark.parametrize("jobs", [2, 3, 5])
def test_a_split_replay_equals_the_serial_one(reloaded: Reloaded, tmp_path: Path,
                                              jobs: int) -> None:
    """Chunks cut anywhere (here: a few lines each) still judge every decision by
    the set in force, with the what-if and with a tampered decision."""
    serial = replay(reloaded.log, jobs=1)
    split = replay_split(reloaded.log, jobs=jobs, min_bytes=0)
    assert split is not None
    _same(split, serial)
    assert split.per_policy_set == serial.per_policy_set and split.evaluated == 4
    what_if = replay_split(reloaded.log, jobs=jobs, min_bytes=0, proposed=reloaded.second)
    assert what_if is not None
    _same(what_if, replay(reloaded.log, jobs=1, proposed=reloaded.second))
    lines = reloaded.log.read_bytes().splitlines()
    for i, raw in enumerate(lines):
        e = json.loads(raw)
        if e["kind"] == "host_decision" and e["decision"]["effect"] == "deny":
            e["decision"]["effect"] = "allow"
            lines[i] = json.dumps(e, sort_keys=True, separators=(",", ":")).encode()
            break
    tampered = tmp_path / "tampered.log"
    tampered.write_bytes(b"\n".join(lines) + b"\n")
    split = replay_split(tampered, jobs=jobs, min_bytes=0)
    assert split is not None and [d.change for d in split.differences] == ["allow->deny"]
    _same(split, replay(tampered, jobs=1))


def test_a_state_entry_the_scan_cannot_see_makes_the_split_give_way(
    reloaded: Reloaded, tmp_path: Path
) -> None:
    """A policy_set line whose key is spelled with an escape is a policy_set all the
    same: the split notices it missed one and the serial replay decides."""
    text = reloaded.log.read_bytes()
    at = text.rindex(b'"kind":"policy_set"')
    crafted = tmp_path / "escaped.log"
    crafted.write_bytes(text[:at] + b'"kind":"policy\\u005fset"' + text[at + 19:])
    assert replay_split(crafted, jobs=3, min_bytes=0) is None
    serial = replay(crafted, jobs=1)
    assert serial.policy_set_changes == 2 and serial.differences == []
    _same(replay(crafted, jobs=3), serial)
