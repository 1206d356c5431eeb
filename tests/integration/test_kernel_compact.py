"""``KernelConfig(compact_invocations=True)``: one entry for a call without host calls.

What must hold (docs/AUDIT-FORMAT.md, "Combined invocation entries"): a call
that makes no host call is recorded by one ``invocation_finished`` that also
carries the ``invocation_started`` fields and no ``started_seq``; a call that
makes host calls writes ``invocation_started`` before its first decision, so
record-before-effect holds; the log verifies, replays and reports as before.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kernel_helpers import DemoState

from vak.audit.keys import load_trusted_keys
from vak.audit.sink import AuditRef
from vak.audit.verify import verify_log
from vak.config import KernelConfig
from vak.errors import AuditError, ConfigError, InputValidationError, PolicyDeniedError
from vak.kernel import Kernel
from vak.review.logread import read_entries
from vak.review.replay import replay
from vak.review.timeline import build_timeline

ADD = {"operation": "add", "a": 1, "b": 2}
HELLO = "/workspace/hello.txt"
STARTED_FIELDS = ("call_id", "export", "input_digest", "principal", "route", "tool")


@pytest.fixture
def compact(demo_state: DemoState, tmp_path: Path) -> Iterator[Kernel]:
    # a log of its own: the shared demo log is counted by other tests' two-entry readers
    cfg = KernelConfig.from_toml(demo_state.config).with_(
        compact_invocations=True, audit_log=tmp_path / "audit" / "vak.log")
    with Kernel(cfg) as k:
        yield k


def _entries(k: Kernel) -> dict[int, dict[str, Any]]:
    return {e["seq"]: e for e in map(json.loads, k.audit.path.read_text().splitlines())}


def _verified(k: Kernel) -> int:
    return int(verify_log(k.audit.path, load_trusted_keys(k.audit.public_key_path)).result)


def _of(entries: dict[int, dict[str, Any]], invocation: str) -> list[dict[str, Any]]:
    return [e for _, e in sorted(entries.items()) if e.get("invocation") == invocation]


def test_a_call_without_host_calls_is_one_combined_entry(compact: Kernel) -> None:
    inv = compact.invoke("calculator__execute", ADD, session="s1", call_id="c1")
    assert inv.output == {"result": 3}
    assert inv.audit_seq_started == inv.audit_seq_finished
    assert inv.receipt is not None and inv.receipt.seq == inv.audit_seq_finished
    compact.close()
    entries = _entries(compact)
    (entry,) = _of(entries, inv.invocation_id)
    assert entry["seq"] == inv.audit_seq_finished and entry["kind"] == "invocation_finished"
    assert "started_seq" not in entry
    assert all(name in entry for name in STARTED_FIELDS)
    assert entry["call_id"] == "c1" and entry["session"] == "s1"
    assert entry["input_digest"].startswith("hmac-sha256:")
    assert entry["output_digest"].startswith("hmac-sha256:")
    assert entry["outcome"]["status"] == "ok" and entry["fuel"] == inv.fuel_used
    assert _verified(compact) == 0


def test_a_call_with_host_calls_records_started_before_its_first_decision(
        compact: Kernel) -> None:
    inv = compact.invoke("notes__read", {"path": HELLO}, session="s2")
    compact.close()
    kinds = [e["kind"] for e in _of(_entries(compact), inv.invocation_id)]
    assert kinds[0] == "invocation_started" and kinds[-1] == "invocation_finished"
    assert kinds.index("host_decision") > 0 and "host_result" in kinds
    started = _entries(compact)[inv.audit_seq_started]
    finished = _entries(compact)[inv.audit_seq_finished]
    assert started["kind"] == "invocation_started"
    assert finished["started_seq"] == started["seq"] < finished["seq"]
    assert _verified(compact) == 0


def test_a_denied_call_is_started_decided_and_finished(compact: Kernel) -> None:
    with pytest.raises(PolicyDeniedError) as info:
        compact.invoke("notes__read", {"path": "/etc/passwd"})
    compact.close()
    entries = _of(_entries(compact), info.value.details["invocation"])
    assert [e["kind"] for e in entries] == ["invocation_started", "host_decision",
                                            "invocation_finished"]
    assert entries[2]["outcome"]["status"] == "denied"


def test_refused_input_is_one_combined_entry(compact: Kernel) -> None:
    with pytest.raises(InputValidationError) as info:
        compact.invoke("calculator__execute", {"operation": "pow", "a": 1, "b": 2})
    compact.close()
    (entry,) = _of(_entries(compact), info.value.details["invocation"])
    assert entry["seq"] == info.value.details["finished_seq"]
    assert entry["outcome"]["error"] == "invalid_input" and "input_digest" in entry


def test_no_decision_without_its_started_entry(compact: Kernel) -> None:
    real = compact._audit.append

    def refuse_started(kind: str, fields: Any, **kw: Any) -> AuditRef:
        if kind == "invocation_started":
            raise AuditError("disk full (test)")
        return real(kind, fields, **kw)

    compact._audit.append = refuse_started  # type: ignore[method-assign]
    with pytest.raises(AuditError):
        compact.invoke("notes__read", {"path": HELLO}, session="s3")
    compact._audit.append = real  # type: ignore[method-assign]
    compact.close()
    assert not [e for e in _entries(compact).values()
                if e["kind"] == "host_decision" and e.get("session") == "s3"]


def test_timeline_and_replay_read_combined_entries(compact: Kernel) -> None:
    before = build_timeline(read_entries(compact.audit.path)).counts["invocations"]
    compact.invoke("calculator__execute", ADD)
    compact.invoke("notes__read", {"path": HELLO})
    compact.close()
    timeline = build_timeline(read_entries(compact.audit.path))
    assert timeline.counts["invocations"] == before + 2
    rows = {row[4]: row for row in timeline.invocations[-2:]}
    assert rows["execute"][7] == "ok" and rows["execute"][5] <= rows["execute"][6]
    result = replay(compact.audit.path)
    assert not result.differences and not result.unreplayable


def test_off_by_default_and_a_toml_key(tmp_path: Path) -> None:
    assert KernelConfig(state_dir=tmp_path).compact_invocations is False
    for where in ("compact_invocations = true\n", "[kernel]\ncompact_invocations = true\n"):
        (tmp_path / "vak.toml").write_text(where)
        assert KernelConfig.from_toml(tmp_path / "vak.toml").compact_invocations is True
    (tmp_path / "vak.toml").write_text('compact_invocations = "yes"\n')
    with pytest.raises(ConfigError, match="compact_invocations"):
        KernelConfig.from_toml(tmp_path / "vak.toml")
