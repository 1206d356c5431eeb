"""``vak-audit`` end to end: real logs, real subprocesses, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vak.audit.log import AuditLog
from vak.audit.verify import Code
from vak.cli.audit import main

SKILL = {"id": "calc", "version": "1.0.0", "manifest_digest": "sha256:" + "ab" * 32,
         "signer": "k1"}


@pytest.fixture()
def cfg(tmp_path: Path) -> Path:
    toml = tmp_path / "vak.toml"
    log = AuditLog.open(tmp_path / "state/audit/vak.log", key_path=tmp_path / "state/audit/log.key",
                        origin="cli.vak/k1")
    for i in range(4):
        log.append("host_decision", {
            "invocation": f"i{i}", "session": "s1" if i < 2 else "s2", "skill": SKILL,
            "host_function": "fs_read", "resource": f"/workspace/{i}",
            "decision": {"effect": "deny" if i == 3 else "allow", "policy_ids": ["p"],
                         "policy_set": "sha256:00"},
        }, durable=True)
    log.close()
    # the operator pins the log's key outside the log's directory
    (tmp_path / "pinned.pub").write_bytes((tmp_path / "state/audit/log.key.pub").read_bytes())
    toml.write_text('state_dir = "state"\n[audit]\norigin = "cli.vak/k1"\n'
                    'trust = "pinned.pub"\n')
    return toml


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vak.cli.audit", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_verify_with_config(cfg: Path) -> None:
    out = run("verify", "--config", str(cfg))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "RESULT: OK" in out.stdout and "6/6 entries valid" in out.stdout


def test_verify_with_key_json_and_state(cfg: Path, tmp_path: Path) -> None:
    log = tmp_path / "state/audit/vak.log"
    state = tmp_path / "verifier.state"
    out = run("verify", str(log), "--key", str(tmp_path / "state/audit/log.key.pub"), "--json",
              "--state", str(state), "--update-state")
    report = json.loads(out.stdout)
    assert out.returncode == 0 and report["result"] == "OK" and state.exists()
    lines = log.read_bytes().split(b"\n")
    log.write_bytes(b"\n".join(lines[:3]) + b"\n")
    ck = tmp_path / "state/audit/vak.log.ckpt"
    ck.write_bytes(b"".join(x + b"\n" for x in ck.read_bytes().split(b"\n")[:2]))
    out = run("verify", "--config", str(cfg), "--state", str(state))
    assert out.returncode == Code.ROLLBACK, out.stdout
    assert "RESULT: ROLLBACK" in out.stdout


def test_tampered_log_exit_code_and_location(cfg: Path, tmp_path: Path) -> None:
    log = tmp_path / "state/audit/vak.log"
    data = log.read_bytes().replace(b'"effect":"deny"', b'"effect":"allo"')
    log.write_bytes(data)
    out = run("verify", "--config", str(cfg))
    assert out.returncode == Code.MODIFIED
    assert "line 5, seq 4, offset" in out.stdout


@pytest.mark.parametrize("args", [["verify"], ["verify", "/nonexistent.log", "--key", "x"],
                                  ["bogus"]], ids=["no-key", "missing-file", "bad-command"])
def test_usage_errors(args: list[str]) -> None:
    out = run(*args)
    assert out.returncode == Code.USAGE


def test_show_filters(cfg: Path) -> None:
    out = run("show", "--config", str(cfg), "--decision", "deny")
    assert out.returncode == 0 and out.stdout.count("\n") == 1 and "/workspace/3" in out.stdout
    out = run("show", "--config", str(cfg), "--session", "s1", "--json")
    assert [json.loads(x)["seq"] for x in out.stdout.splitlines()] == [1, 2]
    out = run("show", "--config", str(cfg), "--kind", "log_opened", "--since", "2000-01-01")
    assert out.stdout.count("\n") == 1


def test_prove_and_verify_receipt(cfg: Path, tmp_path: Path) -> None:
    out = run("prove", "--config", str(cfg), "--seq", "2")
    assert out.returncode == 0, out.stderr
    receipt = tmp_path / "r.json"
    receipt.write_text(out.stdout)
    ok = run("verify-receipt", str(receipt), "--config", str(cfg))
    assert ok.returncode == 0 and "RESULT: OK" in ok.stdout
    data = json.loads(out.stdout)
    data["leaf_hash"] = "00" * 32
    receipt.write_text(json.dumps(data))
    bad = run("verify-receipt", str(receipt), "--config", str(cfg))
    assert bad.returncode == Code.MODIFIED


def test_consistency_and_checkpoint(cfg: Path) -> None:
    out = run("consistency", "2", "5", "--config", str(cfg))
    assert out.returncode == 0 and json.loads(out.stdout)["size2"] == 5
    out = run("checkpoint", "--config", str(cfg))
    assert out.returncode == 0 and out.stdout.startswith("cli.vak/k1\n6\n")


def test_tail_follow(cfg: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "vak.cli.audit", "tail", "-n", "1",
                             "--follow", "--config", str(cfg)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert "log_closed" in proc.stdout.readline()
        log = AuditLog.open(tmp_path / "state/audit/vak.log",
                            key_path=tmp_path / "state/audit/log.key", origin="cli.vak/k1")
        log.append("heartbeat", {}, durable=True)
        deadline = time.monotonic() + 20
        seen = ""
        while "heartbeat" not in seen and time.monotonic() < deadline:
            seen += proc.stdout.readline()
        log.close()
        assert "heartbeat" in seen
    finally:
        proc.kill()
        proc.wait()


def test_main_in_process_returns_code(cfg: Path) -> None:
    assert main(["verify", "--config", str(cfg)]) == 0


def test_verify_checks_per_entry_signatures(tmp_path: Path) -> None:
    log = AuditLog.open(tmp_path / "vak.log", key_path=tmp_path / "log.key",
                        origin="cli.vak/sigs", sign_entries=True)
    for i in range(3):
        log.append("heartbeat", {"i": i})
    log.close()
    pub = str(tmp_path / "log.key.pub")
    assert run("verify", str(tmp_path / "vak.log"), "--key", pub).returncode == Code.OK
    sigs = tmp_path / "vak.log.sigs"
    moved = tmp_path / "elsewhere.sigs"
    sigs.rename(moved)  # the sidecar is announced by log_opened: its absence is detected
    out = run("verify", str(tmp_path / "vak.log"), "--key", pub)
    assert out.returncode == Code.BAD_SIGNATURE and "per-entry signature" in out.stdout
    out = run("verify", str(tmp_path / "vak.log"), "--key", pub, "--sigs", str(moved))
    assert out.returncode == Code.OK, out.stdout
