"""A skill author's path through `vak`: init, skill new/build/test/sign, run; one code each."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vak.cli._common import Exit
from vak.config import KernelConfig

VAK = [sys.executable, "-m", "vak.cli.main"]
SIGN = [sys.executable, "-m", "vak.cli.skill_sign"]


def _run(cmd: list[str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300, cwd=cwd)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def vak(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return _run(VAK, *args, cwd=cwd)


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("author") / "k"
    proc = vak("init", str(d), "--author")
    assert proc.returncode == 0, proc.stderr
    assert "next" in proc.stdout and "vak skill new" in proc.stdout
    proc = vak("skill", "new", "hello", "--lang", "c", "--dir", str(d / "skills"))
    assert proc.returncode == 0, proc.stderr
    return d


def test_init_writes_a_working_kernel_directory(kernel_dir: Path) -> None:
    for rel in ("vak.toml", "trust.yaml", "policies/operator.cedar", "keys/author.key",
                "keys/author.key.pub", "skills"):
        assert (kernel_dir / rel).exists(), rel
    cfg = KernelConfig.from_toml(kernel_dir / "vak.toml")
    assert cfg.require_signature is True and cfg.trust_store == kernel_dir / "trust.yaml"
    pub = (kernel_dir / "keys/author.key.pub").read_text().strip()
    assert pub in (kernel_dir / "trust.yaml").read_text()
    status = json.loads(vak("status", "--config", str(kernel_dir / "vak.toml"), "--json").stdout)
    assert status["require_signature"] is True and status["tools"] == []


def test_init_refuses_to_overwrite(kernel_dir: Path) -> None:
    proc = vak("init", str(kernel_dir))
    assert proc.returncode == Exit.CONFIG and "--force" in proc.stderr


def test_build_test_sign_run(kernel_dir: Path) -> None:
    skill = kernel_dir / "skills" / "hello"
    assert vak("skill", "build", str(skill)).returncode == 0
    assert "up to date" in vak("skill", "build", str(skill)).stdout
    proc = vak("skill", "test", str(skill), "--input", '{"name": "Ada"}', "--json", "--keep")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["output"] == {"greeting": "Hello, Ada!"} and out["dev_mode"] is True
    loaded = [json.loads(line) for line in Path(out["audit_log"]).read_text().splitlines()
              if '"skill_loaded"' in line]
    assert loaded and loaded[0]["dev_mode"] is True and loaded[0]["route"] == "worker"

    cfg = str(kernel_dir / "vak.toml")
    unsigned = vak("run", "--config", cfg, str(skill), "execute", "--input", '{"name": "x"}')
    verified = _run(SIGN, "verify", str(skill), "--trust", str(kernel_dir / "trust.yaml"))
    assert unsigned.returncode == verified.returncode == Exit.SIGNATURE  # one code everywhere

    proc = vak("skill", "sign", str(skill), "--key", str(kernel_dir / "keys/author.key"))
    assert proc.returncode == 0, proc.stderr
    proc = vak("run", "--config", cfg, str(skill), "execute", "--input", '{"name": "Bo"}')
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"greeting": "Hello, Bo!"}
    signed_load = [json.loads(line) for line in
                   (kernel_dir / ".vak/audit/vak.log").read_text().splitlines()
                   if '"skill_loaded"' in line]
    assert signed_load and all("dev_mode" not in e for e in signed_load)
    # the key vak init pinned (when the audit settings can hold one) verifies the log: OK
    audited = _run([sys.executable, "-m", "vak.cli.audit"], "verify", "--config", cfg)
    assert audited.returncode == 0 and "RESULT: OK" in audited.stdout, audited.stdout


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["skill", "new", "Bad Name"], Exit.CONFIG, "lowercase letter"),
    (["skill", "build", "/nonexistent-dir"], Exit.CONFIG, "not a directory"),
    (["skill", "test", "/nonexistent-dir"], Exit.CONFIG, "no skill.yaml"),
    (["skill", "sign", ".", "--key", "/nonexistent.key"], Exit.KEY_FILE, "keygen"),
    (["run", "--config", "/nonexistent/vak.toml", "x__y"], Exit.CONFIG, "vak init"),
], ids=["bad-name", "build-missing", "test-missing", "sign-missing", "no-config"])
def test_author_mistakes_name_the_fix(tmp_path: Path, args: list[str], code: int,
                                      needle: str) -> None:
    proc = vak(*args, cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    assert needle in proc.stderr


def test_skill_test_input_errors(kernel_dir: Path) -> None:
    skill = str(kernel_dir / "skills" / "hello")
    assert vak("skill", "test", skill, "--input", "{bad").returncode == Exit.INPUT_INVALID
    proc = vak("skill", "test", skill, "--input", '{"name": 1}')
    assert proc.returncode == Exit.INPUT_INVALID and "/name" in proc.stderr
    proc = vak("skill", "test", skill, "--export", "nope")
    assert proc.returncode == Exit.CONFIG and "execute" in proc.stderr


def test_status_without_a_config_reports_the_machine(tmp_path: Path) -> None:
    proc = vak("status", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["config"] is None
    assert isinstance(data["os_sandbox"]["landlock"]["abi"], int)
    assert "available" in data["os_sandbox"]["seccomp"] and "available" in data["pooling"]
    text = vak("status", cwd=tmp_path).stdout
    assert "landlock" in text and "seccomp" in text and "pooling" in text


def test_vak_audit_show_into_head_has_no_traceback(kernel_dir: Path) -> None:
    log = kernel_dir / ".vak" / "audit" / "vak.log"
    assert log.exists()
    proc = subprocess.run(f"{sys.executable} -m vak.cli.audit show {log} | head -1; "
                          "echo \"rc=${PIPESTATUS[0]}\"", shell=True, executable="/bin/bash",
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
    assert proc.stdout.splitlines()[-1] in ("rc=0", "rc=141")


def test_skill_test_with_a_mount_and_a_denial(built_skills: Path, tmp_path: Path) -> None:
    shutil.copytree(built_skills / "notes", tmp_path / "notes")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("hi\n")
    ok = vak("skill", "test", "notes", "--export", "read", "--input",
             '{"path": "/workspace/a.txt"}', "--mount", "/workspace=data", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["content"] == "hi\n"
    denied = vak("skill", "test", "notes", "--export", "read", "--input",
                 '{"path": "/etc/passwd"}', "--mount", "/workspace=data", cwd=tmp_path)
    assert denied.returncode == Exit.POLICY_DENIED, denied.stderr
    bad = vak("skill", "test", "notes", "--export", "read", "--mount", "workspace", cwd=tmp_path)
    assert bad.returncode == Exit.CONFIG and "GUEST=HOST" in bad.stderr
