"""The kernel's view of the sandbox: OS barriers at start, untrusted skills on a
degraded host, and which wasmtime call path the self-test chose."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import orjson
import pytest
from kernel_helpers import DemoState

from vak.audit.entry import KINDS
from vak.config import KernelConfig
from vak.errors import OSSandboxUnavailableError
from vak.kernel import Kernel
from vak.sandbox import oslock
from vak.sandbox import pool as pool_mod

needs_kind = pytest.mark.skipif(
    "sandbox_degraded" not in KINDS,
    reason="the sandbox_degraded entry kind (helper 'audit') has not landed on this branch")

_DEGRADED = oslock.BarrierStatus(
    platform="linux-x86_64", arch_supported=True, no_new_privs=True, seccomp=False,
    seccomp_tsync=False, landlock_abi=0, landlock_fs=False, landlock_net=False,
    landlock_scopes=(), missing=("seccomp", "landlock_fs", "landlock_net", "landlock_scope"),
)


def _degrade(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oslock, "barrier_status", lambda: _DEGRADED)
    monkeypatch.setattr(pool_mod, "barrier_status", lambda: _DEGRADED)


def _untrusted(state: DemoState, tmp_path: Path) -> Path:
    pub = (state.workdir / "keys" / "demo-signer.key.pub").read_text().strip()
    path = tmp_path / "trust-untrusted.yaml"
    path.write_text(f"keys:\n  - key: {json.dumps(pub)}\n    tier: untrusted\n")
    return path


def test_status_shows_barriers_and_the_call_path(kernel: Kernel) -> None:
    status = kernel.sandbox_status()
    assert status["degraded"] is (not oslock.barrier_status().complete)
    assert status["wasmtime"]["backend"] in ("fastcall", "public")
    assert status["wasmtime"]["self_test"] in ("passed", "failed")


@needs_kind
def test_degraded_host_is_recorded_and_untrusted_skills_refused(
    demo_state: DemoState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _degrade(monkeypatch)
    state = tmp_path / "state"
    shutil.copytree(demo_state.workdir, state)
    config = KernelConfig.from_toml(state / "vak.toml")
    cfg = config.with_(trust_store=_untrusted(demo_state, tmp_path), skill_dirs=())
    with Kernel(cfg) as kernel:
        assert kernel.sandbox_status()["untrusted"] == "refused"
        with pytest.raises(OSSandboxUnavailableError, match="allow_unsandboxed"):
            kernel.load_skill(state / "skills" / "calculator")
    entries = [orjson.loads(line) for line in (state / "audit" / "vak.log").read_bytes()
               .splitlines() if line]
    degraded = [e for e in entries if e["kind"] == "sandbox_degraded"]
    assert degraded and degraded[-1]["missing"] == list(_DEGRADED.missing)
    assert degraded[-1]["untrusted"] == "refused"
    # the operator's opt-out: the skill loads and runs, and the log says so
    with Kernel(cfg.with_(worker_allow_unsandboxed=True)) as kernel:
        kernel.load_skill(state / "skills" / "calculator")
        inv = kernel.invoke("calculator__execute", {"operation": "add", "a": 1, "b": 2})
        assert inv.output == {"result": 3} and inv.worker
    entries = [orjson.loads(line) for line in (state / "audit" / "vak.log").read_bytes()
               .splitlines() if line]
    assert [e for e in entries if e["kind"] == "sandbox_degraded"][-1]["untrusted"] == \
        "unsandboxed"
