"""Read-only kernels and refused skills (issue 16, item 3).

* ``Kernel(config, read_only=True)`` and the commands built on it (``vak status``,
  ``vak skills list``, ``vak skills inspect``) take no lock on the audit log and
  append nothing, so they work while another process serves the same state;
* a skill of ``skill_dirs`` that fails to load is a ``skill_refused`` entry with
  its reason, escaped and bounded, while the other skills serve; ``strict_skills``
  stops the start instead.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kernel_helpers import DemoState, verify

from vak.config import KernelConfig
from vak.errors import AuditError, ConfigError, ManifestError, VakError
from vak.identity.keys import SigningKey
from vak.identity.signing import sign_skill
from vak.kernel import Kernel

ADD = {"operation": "add", "a": 2, "b": 3}


@pytest.fixture
def state(private_state: DemoState) -> DemoState:
    return private_state


def _entries(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_bytes().splitlines() if line.strip()]


def _log_files(state: DemoState) -> dict[str, bytes]:
    """Every file of the audit directory with its bytes (log, checkpoints, tree)."""
    audit = state.workdir / "audit"
    if not audit.exists():
        return {}
    return {p.name: p.read_bytes() for p in sorted(audit.iterdir())
            if p.is_file() and not p.name.endswith(".lock")}


def _settled_log_files(state: DemoState) -> dict[str, bytes]:
    """:func:`_log_files` once two reads half a second apart agree (a writer's
    background commit, checkpoint and tree files included, is finished)."""
    import time

    files = _log_files(state)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        time.sleep(0.5)
        again = _log_files(state)
        if again == files:
            return files
        files = again
    raise AssertionError("the serving kernel kept writing its log")


def _vak(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vak.cli.main", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


@pytest.fixture
def serving(state: DemoState) -> Iterator[subprocess.Popen[str]]:
    """A real kernel in another process, holding the log's write lock until stdin closes."""
    code = ("import sys\nfrom vak.kernel import Kernel\n"
            "k = Kernel.from_config(sys.argv[1])\n"
            "k.invoke('calculator__execute', {'operation': 'add', 'a': 1, 'b': 1})\n"
            "print('ready', flush=True)\nsys.stdin.read()\nk.close()\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(state.config)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=60)


def test_read_only_commands_beside_a_running_kernel(
        state: DemoState, serving: subprocess.Popen[str]) -> None:
    cfg = KernelConfig.from_toml(state.config)
    # the lock is really held: a writing kernel cannot open the log now
    with pytest.raises(AuditError):
        Kernel(cfg)
    before = _settled_log_files(state)  # the server's own group commit is done
    entries = len(_entries(state.log))

    status = _vak("status", "--config", str(state.config), "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert "calculator__execute" in data["tools"] and data["refused"] == []
    listed = _vak("skills", "list", "--config", str(state.config), "--json")
    assert listed.returncode == 0, listed.stderr
    assert {r["name"] for r in json.loads(listed.stdout)} >= {"calculator", "notes", "fetch"}
    inspect = _vak("skills", "inspect", "calculator", "--config", str(state.config), "--json")
    assert inspect.returncode == 0, inspect.stderr
    assert json.loads(inspect.stdout)["exports"][0]["tool"] == "calculator__execute"

    assert _log_files(state) == before
    assert len(_entries(state.log)) == entries


def test_read_only_kernel_writes_nothing_and_refuses_invoke(state: DemoState) -> None:
    floor = state.workdir / ".vak" / "version-floor.json"
    floor.unlink(missing_ok=True)
    before = _log_files(state)
    with Kernel(KernelConfig.from_toml(state.config), read_only=True) as kernel:
        assert kernel.read_only
        assert "calculator__execute" in {t.name for t in kernel.tools()}
        with pytest.raises(ConfigError, match="read-only") as info:
            kernel.invoke("calculator__execute", ADD)
        assert info.value.details["field"] == "read_only"
        with pytest.raises(ConfigError, match="read-only"):
            kernel.invoke("no_such__tool", {})
        with pytest.raises(ConfigError, match="read-only"):
            _ = kernel.audit
        assert kernel.end_session("s") == 0
    assert _log_files(state) == before
    assert not floor.exists()
    # and a writing kernel opens the same state at once (no lock was left behind)
    with Kernel(KernelConfig.from_toml(state.config)) as kernel:
        assert kernel.invoke("calculator__execute", ADD).output == {"result": 5}


def test_closed_read_only_kernel_says_closed(state: DemoState) -> None:
    kernel = Kernel(KernelConfig.from_toml(state.config), read_only=True)
    kernel.close()
    with pytest.raises(ConfigError, match="closed"):
        kernel.invoke("calculator__execute", ADD)


# ---------------------------------------------------------------------- refused skills
def _copy(state: DemoState, tmp: Path, name: str = "calculator") -> Path:
    dest = tmp / "broken" / name
    shutil.copytree(state.workdir / "skills" / name, dest)
    return dest


def _bad_signature(state: DemoState, tmp: Path) -> Path:
    skill = _copy(state, tmp)
    doc = yaml.safe_load((skill / "skill.yaml").read_text())
    sig = doc["signature"]["value"]
    doc["signature"]["value"] = ("A" if sig[0] != "A" else "B") + sig[1:]
    (skill / "skill.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return skill


def _digest_mismatch(state: DemoState, tmp: Path) -> Path:
    skill = _copy(state, tmp)
    wasm = skill / "calculator.wasm"
    wasm.write_bytes(wasm.read_bytes() + b"\x00")
    return skill


def _missing_module(state: DemoState, tmp: Path) -> Path:
    skill = _copy(state, tmp)
    (skill / "calculator.wasm").unlink()
    return skill


def _bad_manifest(state: DemoState, tmp: Path) -> Path:
    skill = _copy(state, tmp)
    doc = yaml.safe_load((skill / "skill.yaml").read_text())
    # hostile text: a terminal escape and a forged line in a field the error quotes
    doc["name"] = "evil\x1b[31m\nkind: log_closed"
    (skill / "skill.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return skill


def _untrusted_signer(state: DemoState, tmp: Path) -> Path:
    skill = _copy(state, tmp)
    sign_skill(skill, SigningKey.generate())
    return skill


def _missing_dir(state: DemoState, tmp: Path) -> Path:
    return tmp / "no-such-skill"


def _duplicate(state: DemoState, tmp: Path) -> Path:
    return _copy(state, tmp)  # the same skill again: its wire names collide


BREAKERS: list[tuple[Callable[[DemoState, Path], Path], str, bool]] = [
    # breaker, error code, whether the manifest (identity) is readable
    (_bad_signature, "bad_signature", True),
    (_digest_mismatch, "digest_mismatch", True),
    (_missing_module, "manifest_invalid", True),
    (_bad_manifest, "manifest_invalid", False),
    (_untrusted_signer, "untrusted_signer", True),
    (_missing_dir, "manifest_invalid", False),
    (_duplicate, "skill_load_error", True),
]


@pytest.mark.parametrize(("breaker", "code", "identified"), BREAKERS,
                         ids=[b.__name__.strip("_") for b, _, _ in BREAKERS])
def test_a_bad_skill_is_refused_and_recorded_while_the_others_serve(
        state: DemoState, tmp_path: Path, breaker: Callable[[DemoState, Path], Path],
        code: str, identified: bool) -> None:
    bad = breaker(state, tmp_path)
    cfg = KernelConfig.from_toml(state.config)
    cfg = cfg.with_(skill_dirs=(*cfg.skill_dirs, bad))
    with Kernel(cfg) as kernel:
        assert kernel.invoke("calculator__execute", ADD).output == {"result": 5}
        assert {"notes", "fetch", "calculator"} <= {s.name for s in kernel.skills()}
        (refused,) = kernel.refused_skills()
    assert refused.error == code
    assert refused.path.endswith(bad.name)
    assert (refused.skill is not None) == identified
    (entry,) = [e for e in _entries(state.log) if e["seq"] == refused.audit_seq]
    assert entry["kind"] == "skill_refused"
    assert entry["error"] == code and entry["path"] == refused.path
    assert entry["message"] == refused.message and entry["message"]
    if identified:
        assert refused.skill is not None
        assert entry["skill"] == refused.skill.to_audit()
        assert entry["skill"]["id"] == "calculator"
    else:
        assert "skill" not in entry
    # nothing a file said reaches the log raw: no control character survives
    assert not any(ord(c) < 0x20 for c in entry["message"] + entry["path"])
    report = verify(state)
    assert report.result.name == "OK", report.render()


def test_strict_skills_refuses_to_start_and_records_why(state: DemoState,
                                                        tmp_path: Path) -> None:
    cfg = KernelConfig.from_toml(state.config)
    cfg = cfg.with_(skill_dirs=(*cfg.skill_dirs, _missing_dir(state, tmp_path)),
                    strict_skills=True)
    with pytest.raises(ManifestError):
        Kernel(cfg)
    kinds = [e["kind"] for e in _entries(state.log)]
    assert kinds[-2:] == ["skill_refused", "log_closed"]


def test_strict_skills_still_lets_vak_status_report(state: DemoState, tmp_path: Path) -> None:
    cfg = KernelConfig.from_toml(state.config)
    cfg = cfg.with_(skill_dirs=(*cfg.skill_dirs, _missing_dir(state, tmp_path)),
                    strict_skills=True)
    with Kernel(cfg, read_only=True) as kernel:
        (refused,) = kernel.refused_skills()
    assert refused.error == "manifest_invalid" and refused.audit_seq is None


def test_strict_skills_is_a_kernel_key_of_vak_toml(state: DemoState) -> None:
    text = state.config.read_text()
    state.config.write_text(text.replace("[audit]", "[kernel]\nstrict_skills = true\n\n[audit]",
                                         1))
    assert KernelConfig.from_toml(state.config).strict_skills is True


def test_status_and_skills_list_show_refused_skills(state: DemoState, tmp_path: Path) -> None:
    bad = _bad_signature(state, tmp_path)
    text = state.config.read_text()
    state.config.write_text(text.replace('"skills/loop"]', f'"skills/loop", "{bad}"]', 1))
    before = _log_files(state)
    status = _vak("status", "--config", str(state.config), "--json")
    assert status.returncode == 0, status.stderr
    (refused,) = json.loads(status.stdout)["refused"]
    assert refused["error"] == "bad_signature" and refused["skill"] == "calculator 1.0.0"
    shown = _vak("status", "--config", str(state.config)).stdout
    assert "refused skill" in shown and "bad_signature" in shown
    listed = _vak("skills", "list", "--config", str(state.config)).stdout
    assert "REFUSED" in listed and "bad_signature" in listed
    assert _log_files(state) == before  # read-only: the refusal is reported, not recorded


def test_a_refusal_the_log_cannot_record_stops_the_start(
        state: DemoState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail closed: a refusal is never silently dropped."""
    from vak.audit.log import AuditLog

    real = AuditLog.append

    def failing(self: AuditLog, kind: str, fields: Any, **kw: Any) -> Any:
        if kind == "skill_refused":
            raise AuditError("disk full (test)")
        return real(self, kind, fields, **kw)

    monkeypatch.setattr(AuditLog, "append", failing)
    cfg = KernelConfig.from_toml(state.config)
    cfg = cfg.with_(skill_dirs=(*cfg.skill_dirs, _missing_dir(state, tmp_path)))
    with pytest.raises(AuditError, match="disk full"):
        Kernel(cfg)


def test_unknown_tool_calls_are_recorded(state: DemoState) -> None:
    from vak.errors import UnknownToolError

    with Kernel(KernelConfig.from_toml(state.config)) as kernel, \
            pytest.raises(UnknownToolError) as info:
        kernel.invoke("evil\x1b[2J__tool" + "x" * 200, {}, session="s\n1", call_id="c")
    seq = info.value.details["audit_seq"]
    entry = next(e for e in _entries(state.log) if e["seq"] == seq)
    assert entry["kind"] == "call_refused" and entry["error"] == "unknown_tool"
    assert "\x1b" not in entry["tool"] and len(entry["tool"]) < 100
    assert "\n" not in entry["session"] and entry["call_id"] == "c"


def test_only_skill_failures_are_refusals() -> None:
    """A config, policy or audit failure while loading stops the start (not a refusal)."""
    from vak.kernel import _SKILL_REFUSALS

    for error in (ConfigError, AuditError, VakError):
        assert not issubclass(error, _SKILL_REFUSALS)


def test_vak_run_serves_the_others_and_says_which_skill_was_refused(
        state: DemoState, tmp_path: Path) -> None:
    bad = _digest_mismatch(state, tmp_path)
    text = state.config.read_text()
    state.config.write_text(text.replace('"skills/loop"]', f'"skills/loop", "{bad}"]', 1))
    proc = _vak("run", "--config", str(state.config), "calculator__execute",
                "--input", json.dumps(ADD))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"result": 5}
    assert "skill refused" in proc.stderr and "digest_mismatch" in proc.stderr
