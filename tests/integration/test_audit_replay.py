"""Decision replay and what-if over logs written by a real kernel with real Cedar."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kernel_helpers import FORBID_HELLO, HELLO, DemoState

from vak.errors import PolicyError
from vak.kernel import Kernel
from vak.policy.loader import load_policies, loaded_from_record, policy_set_record
from vak.review.logread import LogEntries, read_entries
from vak.review.replay import replay, replay_entries

AUDIT = [sys.executable, "-m", "vak.cli.audit"]


@pytest.fixture(scope="module")
def history(demo_state: DemoState) -> LogEntries:
    """A log holding allowed and kernel-denied calls of two sessions."""
    with Kernel.from_config(demo_state.config) as k:
        k.invoke("notes__read", {"path": HELLO}, session="s1")
        k.invoke("notes__read", {"path": HELLO}, session="s2")
        for path in ("/etc/passwd", "/workspace/../etc/shadow"):
            with pytest.raises(Exception):  # noqa: B017 -- denied either way; replay judges
                k.invoke("notes__read", {"path": path}, session="s1")
        k.invoke("fetch__fetch", {"url": f"http://127.0.0.1:{demo_state.port}/status",
                                  "method": "GET"}, session="s2")
    return read_entries(demo_state.log)


def _operator_dirs(demo_state: DemoState) -> list[Path]:
    from vak.config import KernelConfig

    return list(KernelConfig.from_toml(demo_state.config).all_policy_dirs)


def test_replay_of_a_real_log_has_no_differences(history: LogEntries) -> None:
    result = replay_entries(history)
    assert result.differences == []
    assert result.unreplayable == []
    assert result.policy_sets >= 1
    assert result.evaluated >= 3  # two reads and the fetch, at least
    assert result.evaluated + result.kernel == result.decisions


def test_what_if_lists_exactly_the_affected_decisions(
    history: LogEntries, demo_state: DemoState, tmp_path: Path
) -> None:
    (tmp_path / "ops.cedar").write_text(FORBID_HELLO)
    dirs = [*_operator_dirs(demo_state), tmp_path]
    result = replay_entries(history, proposed=load_policies(dirs))
    expected = {e["seq"] for e in history if e["kind"] == "host_decision"
                and e.get("resource") == HELLO and e["decision"]["effect"] == "allow"}
    assert len(expected) >= 2
    assert {d.seq for d in result.differences} == expected
    assert all(d.change == "allow->deny" and d.replayed.policy_ids == ("ops.forbid-hello",)
               for d in result.differences)


def test_replay_detects_a_decision_rewritten_by_a_key_holder(history: LogEntries) -> None:
    entries = copy.deepcopy(history)
    target = next(e for e in entries if e["kind"] == "host_decision" and "request" in e
                  and e["decision"]["effect"] == "allow")
    target["decision"]["effect"] = "deny"
    result = replay_entries(entries)
    assert [d.seq for d in result.differences] == [target["seq"]]
    assert result.differences[0].change == "deny->allow"


def test_altered_policy_text_makes_its_decisions_unreplayable(history: LogEntries) -> None:
    entries = copy.deepcopy(history)
    record = next(e for e in entries if e["kind"] == "policy_set")
    record["files"][0]["text"] += "\n// edited after the fact\n"
    result = replay_entries(entries)
    cited = {e["seq"] for e in entries if e["kind"] == "host_decision" and "request" in e
             and e["decision"]["policy_set"] == record["policy_set"]}
    assert cited
    assert cited <= {u.seq for u in result.unreplayable}
    assert all("does not match its text" in u.reason or "not recorded" in u.reason
               for u in result.unreplayable)


def test_policy_set_record_round_trips_and_checks_its_digest(demo_state: DemoState) -> None:
    loaded = load_policies(_operator_dirs(demo_state))
    record = json.loads(json.dumps(policy_set_record(loaded)))
    again = loaded_from_record(record)
    assert again.digest == loaded.digest
    assert again.ids == loaded.ids
    record["schema"] += " "
    with pytest.raises(PolicyError, match="does not match"):
        loaded_from_record(record)
    for bad in (None, [], {"policy_set": 1}, {**record, "files": [{"name": 1, "text": "x"}]}):
        with pytest.raises(PolicyError):
            loaded_from_record(bad)


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=5),
                    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3),
                                                                         st.integers(), max_size=2))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_records_give_findings_never_crashes(
    history: LogEntries, data: st.DataObject
) -> None:
    """Structure-aware mutations (types swapped, fields dropped) of decision and
    policy-set records: replay reports a difference or an unreplayable seq, or
    (for a mutation Cedar cannot see) nothing, and never raises."""
    entries = copy.deepcopy(history)
    targets = [e for e in entries if e["kind"] in ("host_decision", "policy_set", "skill_loaded")]
    entry = data.draw(st.sampled_from(targets))
    # seq and kind are guaranteed by read_entries (a line without them is unreadable)
    paths = [p for p in _paths(entry) if p and p[0] not in ("seq", "kind")]
    path = data.draw(st.sampled_from(paths))
    parent: Any = entry
    for step in path[:-1]:
        parent = parent[step]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(_VALUES)
    result = replay_entries(entries)
    assert result.decisions == sum(1 for e in entries
                                   if e["kind"] in ("host_decision", "host_resolve"))
    assert result.evaluated + result.kernel + len(result.unreplayable) == result.decisions
    assert len(result.differences) <= result.evaluated


def test_cli_replay_and_what_if(history: LogEntries, demo_state: DemoState, tmp_path: Path) -> None:
    ok = subprocess.run([*AUDIT, "replay", "--config", str(demo_state.config)],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "RESULT: OK" in ok.stdout
    (tmp_path / "ops.cedar").write_text(FORBID_HELLO)
    args = [f"--policies={d}" for d in _operator_dirs(demo_state)[1:]]
    changed = subprocess.run([*AUDIT, "replay", str(demo_state.log), *args,
                              f"--policies={tmp_path}", "--json"],
                             capture_output=True, text=True, timeout=120)
    assert changed.returncode == 30, changed.stdout + changed.stderr
    data = json.loads(changed.stdout)
    assert data["result"] == "DIFFERENCES"
    assert {d["change"] for d in data["differences"]} == {"allow->deny"}
    assert data["policy_ids_involved"]["ops.forbid-hello"] == len(data["differences"])


def test_tampered_log_file_replays_to_a_difference(demo_state: DemoState, tmp_path: Path) -> None:
    lines = demo_state.log.read_bytes().splitlines()
    for i, raw in enumerate(lines):
        e = orjson.loads(raw)
        if e["kind"] == "host_decision" and "request" in e and e["decision"]["effect"] == "allow":
            e["decision"]["effect"] = "deny"
            lines[i] = orjson.dumps(e, option=orjson.OPT_SORT_KEYS)
            break
    log = tmp_path / "tampered.log"
    log.write_bytes(b"\n".join(lines) + b"\n")
    result = replay(log)
    assert len(result.differences) == 1
    proc = subprocess.run([*AUDIT, "replay", str(log)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 30
    assert f"seq {result.differences[0].seq}" in proc.stdout
