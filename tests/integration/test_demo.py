"""`vak demo` end to end, then `vak run` and `vak-audit verify` on the state it leaves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vak.cli._common import Exit
from vak.demo import NOTE_TEXT, run_demo

VAK = [sys.executable, "-m", "vak.cli.main"]
#: the six core-module steps, then the Python component's allowed and denied reads
OUTCOMES = ["ok", "ok", "policy_denied", "ok", "policy_denied", "timeout", "ok", "policy_denied"]


def _cli(*args: str, cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"VAK_CACHE_DIR": str(cache)} if cache is not None else {})}
    return subprocess.run([*VAK, *args], capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def demo_dir(built_skills: Path, component_cache: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("demo")
    proc = _cli("demo", "--workdir", str(workdir), "--json", cache=component_cache.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    assert [s["outcome"] for s in report["steps"]] == OUTCOMES
    assert report["verification"]["result"] == "OK"
    assert all(isinstance(s["audit_seq"], int) for s in report["steps"])
    python = [s for s in report["steps"] if s["tool"] == "pynotes__read_note"]
    assert [s["decision"] for s in python] == ["allow", "deny"]
    assert python[0]["output"]["content"] == NOTE_TEXT
    assert "kernel ready in" in proc.stderr  # progress goes to stderr, never into the JSON
    return workdir


def test_a_second_demo_run_loads_the_python_skill_from_the_cache(
        demo_dir: Path, component_cache: Path, tmp_path: Path) -> None:
    proc = _cli("demo", "--workdir", str(tmp_path / "again"), "--json",
                cache=component_cache.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [s["outcome"] for s in json.loads(proc.stdout)["steps"]] == OUTCOMES
    log = tmp_path / "again" / "audit" / "vak.log"
    loaded = [json.loads(line) for line in log.read_text().splitlines()
              if '"skill_loaded"' in line and "pynotes" in line]
    assert loaded and loaded[0]["abi"] == "component"
    cached = list((component_cache.parent / "modules").glob("*.cwasm"))
    assert cached, "the compiled component is kept in the demo's cache directory"


def test_demo_leaves_state(demo_dir: Path) -> None:
    for rel in ("vak.toml", "trust.yaml", "audit/vak.log", "audit/log.key.pub",
                "skills/calculator/skill.yaml", "keys/demo-signer.key.pub"):
        assert (demo_dir / rel).exists(), rel


def test_vak_run_on_demo_state(demo_dir: Path) -> None:
    proc = _cli("run", "--config", str(demo_dir / "vak.toml"), "calculator__execute",
                "--input", '{"operation":"add","a":1,"b":2}', "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["output"] == {"result": 3} and out["audit_seq_finished"] > 0


def test_vak_run_skill_dir_form(demo_dir: Path) -> None:
    proc = _cli("run", "--config", str(demo_dir / "vak.toml"),
                str(demo_dir / "skills" / "calculator"), "execute",
                "--input", '{"operation":"subtract","a":5,"b":2}')
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"result": 3}


def test_vak_audit_verify_on_demo_state(demo_dir: Path) -> None:
    _cli("run", "--config", str(demo_dir / "vak.toml"), "calculator__execute",
         "--input", '{"operation":"add","a":1,"b":2}')
    proc = subprocess.run([sys.executable, "-m", "vak.cli.audit", "verify",
                           "--config", str(demo_dir / "vak.toml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "RESULT: OK" in proc.stdout


# issue 13: one exit-code table (docs/CLI.md); bad input and a denial no longer share a code
@pytest.mark.parametrize(("args", "code", "needle"), [
    (["run", "calculator__execute", "--input", "{bad"], Exit.INPUT_INVALID, "input is not JSON"),
    (["run", "nope__x", "--input", "{}"], Exit.UNKNOWN_TOOL, "unknown tool"),
    (["run", "calculator__execute", "--input", '{"operation":"pow","a":1,"b":1}'],
     Exit.INPUT_INVALID, "is not one of"),
    (["run", "notes__read", "--input", '{"path":"/etc/passwd"}'], Exit.POLICY_DENIED, "denied"),
], ids=["bad-json", "unknown-tool", "schema", "denied"])
def test_vak_run_user_mistakes_have_no_traceback(
    demo_dir: Path, args: list[str], code: int, needle: str
) -> None:
    proc = _cli(args[0], "--config", str(demo_dir / "vak.toml"), *args[1:])
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert needle in proc.stderr or needle in proc.stdout


def test_missing_config_is_a_clear_error(tmp_path: Path) -> None:
    proc = _cli("status", "--config", str(tmp_path / "nope.toml"))
    assert proc.returncode == Exit.CONFIG and "Traceback" not in proc.stderr
    assert "nope.toml" in proc.stderr and "vak demo" in proc.stderr


def test_skills_list_inspect_status(demo_dir: Path) -> None:
    cfg = str(demo_dir / "vak.toml")
    rows = json.loads(_cli("skills", "list", "--config", cfg, "--json").stdout)
    assert {r["name"] for r in rows} == {"calculator", "notes", "fetch", "loop", "pynotes"}
    info = json.loads(_cli("skills", "inspect", "calculator", "--config", cfg, "--json").stdout)
    assert info["exports"][0]["tool"] == "calculator__execute"
    assert info["signer"].startswith("ed25519:")
    status = json.loads(_cli("status", "--config", cfg, "--json").stdout)
    assert "calculator__execute" in status["tools"]
    assert "landlock" in status["os_sandbox"]


def test_help_teaches() -> None:
    proc = _cli("--help")
    assert proc.returncode == 0
    for word in ("run", "skills", "policy", "mcp", "status", "demo"):
        assert word in proc.stdout


def test_run_demo_api_in_process(built_skills: Path, component_cache: Path,
                                 tmp_path: Path) -> None:
    seen = []
    said: list[str] = []
    report = run_demo(tmp_path / "d", emit=seen.append, cache_dir=component_cache.parent,
                      progress=said.append)
    assert report.ok, report.render()
    assert len(seen) == 8
    assert "DEMO: OK" in report.render()
    assert any(m.startswith("kernel ready in") for m in said)


def test_vak_run_python_skill_on_demo_state(demo_dir: Path) -> None:
    cfg = str(demo_dir / "vak.toml")
    proc = _cli("run", "--config", cfg, "pynotes__read_note", "--input",
                '{"path": "/data/note.txt"}')
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["content"] == NOTE_TEXT
    proc = _cli("run", "--config", cfg, "pynotes__read_note", "--input",
                '{"path": "/etc/passwd"}')
    assert proc.returncode == Exit.POLICY_DENIED, proc.stderr


def test_policy_subcommands_are_wired(demo_dir: Path) -> None:
    proc = _cli("policy", "validate", "--config", str(demo_dir / "vak.toml"))
    assert proc.returncode == 0, proc.stderr
    assert "demo.fetch-local-server" in proc.stdout
