"""Kernel end to end on real signed skills: load, describe, invoke, audit."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from kernel_helpers import DemoState, verify

import vak
from vak.errors import (
    InputValidationError,
    PolicyDeniedError,
    SignatureError,
    SkillLoadError,
    SkillTimeout,
    UnknownToolError,
    UntrustedSignerError,
)
from vak.kernel import Kernel

ADD = {"operation": "add", "a": 1, "b": 2}


def _entries(state: DemoState) -> list[dict[str, object]]:
    return [json.loads(line) for line in state.log.read_text().splitlines()]


def test_tools_are_sorted_wire_names(kernel: Kernel) -> None:
    names = [t.name for t in kernel.tools()]
    assert names == sorted(names)
    assert {"calculator__execute", "notes__read", "fetch__fetch", "loop__execute"} <= set(names)
    calc = next(t for t in kernel.tools() if t.name == "calculator__execute")
    assert calc.tier == "trusted" and calc.signer_key_id.startswith("ed25519:")
    assert len(calc.module_sha256) == 64


def test_tool_specs_formats(kernel: Kernel) -> None:
    for fmt in ("mcp", "openai", "openai-responses", "anthropic"):
        assert len(kernel.tool_specs(fmt)) == len(kernel.tools())


def test_invoke_returns_output_and_evidence(kernel: Kernel, demo_state: DemoState) -> None:
    inv = kernel.invoke("calculator__execute", ADD, session="s1", call_id="c1")
    assert inv.output == {"result": 3}
    assert inv.fuel_used > 0 and inv.duration_ns > 0 and inv.host_calls == 0
    assert inv.audit_seq_finished > inv.audit_seq_started
    assert inv.receipt is not None and inv.receipt.seq == inv.audit_seq_finished
    assert inv.receipt.leaf_hash.hex() == inv.leaf_hash
    kernel.close()
    by_seq = {e["seq"]: e for e in _entries(demo_state)}
    started, finished = by_seq[inv.audit_seq_started], by_seq[inv.audit_seq_finished]
    assert started["kind"] == "invocation_started" and started["session"] == "s1"
    assert started["call_id"] == "c1" and started["skill"]["id"] == "calculator"
    assert started["skill"]["manifest_digest"].startswith("sha256:")
    assert started["input_digest"].startswith("hmac-sha256:")
    assert started["input_digest"].count("hmac-sha256:") == 1
    assert len(started["input_digest"]) == len("hmac-sha256:") + 64
    assert json.dumps(ADD) not in demo_state.log.read_text()  # never the raw input
    assert finished["kind"] == "invocation_finished"
    assert finished["outcome"]["status"] == "ok"
    assert finished["fuel"] == inv.fuel_used and finished["started_seq"] == started["seq"]


def test_bad_input_never_runs_and_is_recorded(kernel: Kernel, demo_state: DemoState) -> None:
    with pytest.raises(InputValidationError) as info:
        kernel.invoke("calculator__execute", {"operation": "pow", "a": 1, "b": 2})
    seq = info.value.details["finished_seq"]
    kernel.close()
    entry = next(e for e in _entries(demo_state) if e["seq"] == seq)
    assert entry["outcome"]["status"] == "error"
    assert entry["outcome"]["error"] == "invalid_input"
    assert "fuel" not in entry  # the guest never ran


def test_unknown_tool(kernel: Kernel) -> None:
    with pytest.raises(UnknownToolError):
        kernel.invoke("calculator__nope", {})


def test_denied_host_call_propagates_with_seq(kernel: Kernel) -> None:
    with pytest.raises(PolicyDeniedError) as info:
        kernel.invoke("notes__read", {"path": "/etc/passwd"})
    assert info.value.audit_seq is not None
    assert info.value.details["finished_seq"] > info.value.audit_seq


def test_file_read_inside_grant(kernel: Kernel) -> None:
    inv = kernel.invoke("notes__read", {"path": "/workspace/hello.txt"})
    assert "Hello from the VAK demo" in json.dumps(inv.output)
    assert inv.host_calls == 1


def test_http_inside_grant(kernel: Kernel, demo_state: DemoState) -> None:
    inv = kernel.invoke("fetch__fetch", {"url": f"http://127.0.0.1:{demo_state.port}/x"})
    assert "hello from the local demo server" in json.dumps(inv.output)


def test_runaway_stopped_by_deadline_and_kernel_keeps_serving(
        kernel: Kernel, demo_state: DemoState) -> None:
    # the demo signs the shipped manifest unchanged: its own limits make the
    # deadline (not fuel) what stops the runaway
    from vak.identity.manifest import load_manifest

    shipped = load_manifest(Path(__file__).resolve().parents[2] / "skills/hostile/loop")
    loaded = next(s for s in kernel.skills() if s.name == "loop")
    assert loaded.manifest.limits == shipped.limits
    with pytest.raises(SkillTimeout):
        kernel.invoke("loop__execute", {})
    assert kernel.invoke("calculator__execute", ADD).output == {"result": 3}


def test_ainvoke(kernel: Kernel) -> None:
    async def main() -> list[vak.Invocation]:
        return await asyncio.gather(*(
            kernel.ainvoke("calculator__execute", {"operation": "multiply", "a": i, "b": 2})
            for i in range(6)
        ))

    results = asyncio.run(main())
    assert [r.output["result"] for r in results] == [i * 2 for i in range(6)]


def test_wire_name_collision_refused(kernel: Kernel, demo_state: DemoState) -> None:
    with pytest.raises(SkillLoadError, match="already loaded"):
        kernel.load_skill(demo_state.workdir / "skills" / "calculator")


def test_unsigned_skill_refused(kernel: Kernel, built_skills: Path, tmp_path: Path) -> None:
    dest = tmp_path / "wordstats"
    shutil.copytree(built_skills / "wordstats", dest)
    with pytest.raises(SignatureError):
        kernel.load_skill(dest)


def test_unknown_signer_refused(kernel: Kernel, built_skills: Path, tmp_path: Path) -> None:
    from vak.identity.keys import generate_key_file, load_signing_key
    from vak.identity.signing import sign_skill

    dest = tmp_path / "wordstats"
    shutil.copytree(built_skills / "wordstats", dest)
    generate_key_file(tmp_path / "other.key")
    sign_skill(dest, load_signing_key(tmp_path / "other.key"))
    with pytest.raises(UntrustedSignerError):
        kernel.load_skill(dest)


def test_closed_kernel_refuses(demo_state: DemoState) -> None:
    k = Kernel.from_config(demo_state.config)
    k.close()
    k.close()  # idempotent
    with pytest.raises(vak.ConfigError):
        k.invoke("calculator__execute", ADD)


def test_log_verifies_after_everything(demo_state: DemoState) -> None:
    report = verify(demo_state)
    assert report.result.name == "OK", report.render()


def test_receipt_verifies_offline_after_close(demo_state: DemoState) -> None:
    from vak.audit.log import verify_receipt
    from vak.errors import AuditVerificationError

    with Kernel.from_config(demo_state.config) as k:
        inv = k.invoke("calculator__execute", ADD)
        early = inv.receipt
        for _ in range(3):
            k.invoke("calculator__execute", ADD)
    late = inv.receipt  # after close: covered by the final checkpoint
    for receipt in (early, late):
        verify_receipt(receipt, demo_state.log_pub)
    line = demo_state.log.read_bytes().splitlines()[inv.audit_seq_finished]
    verify_receipt(late, demo_state.log_pub, line=line)
    with pytest.raises(AuditVerificationError):
        verify_receipt(late, demo_state.log_pub, line=line.replace(b'"ok"', b'"no"'))


def test_failures_are_recorded_with_their_status(demo_state: DemoState) -> None:
    with Kernel.from_config(demo_state.config) as k:
        with pytest.raises(PolicyDeniedError) as denied:
            k.invoke("notes__read", {"path": "/etc/passwd"})
        with pytest.raises(SkillTimeout) as timeout:
            k.invoke("loop__execute", {})
    by_seq = {e["seq"]: e for e in _entries(demo_state)}
    d = by_seq[denied.value.details["finished_seq"]]["outcome"]
    assert d["status"] == "denied" and d["decision_seq"] == denied.value.audit_seq
    assert by_seq[denied.value.audit_seq]["kind"] == "host_decision"
    t = by_seq[timeout.value.details["finished_seq"]]["outcome"]
    assert t["status"] == "trap" and t["error"] == "timeout"
