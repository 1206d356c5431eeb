"""Routing into the OS-sandboxed worker pool: untrusted tier, or force_worker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kernel_helpers import DemoState, verify

from vak.config import KernelConfig
from vak.errors import PolicyDeniedError, SignatureError, SkillTimeout
from vak.kernel import Kernel

ADD = {"operation": "add", "a": 1, "b": 2}


def _untrusted_trust_store(state: DemoState, tmp_path: Path) -> Path:
    pub = (state.workdir / "keys" / "demo-signer.key.pub").read_text().strip()
    path = tmp_path / "trust-untrusted.yaml"
    path.write_text(f"keys:\n  - key: {json.dumps(pub)}\n    tier: untrusted\n")
    return path


def test_untrusted_tier_runs_in_worker(demo_state: DemoState, tmp_path: Path) -> None:
    cfg = KernelConfig.from_toml(demo_state.config).with_(
        trust_store=_untrusted_trust_store(demo_state, tmp_path))
    with Kernel(cfg) as kernel:
        calc = next(t for t in kernel.tools() if t.name == "calculator__execute")
        assert calc.tier == "untrusted"
        inv = kernel.invoke("calculator__execute", ADD)
        assert inv.output == {"result": 3} and inv.worker


@pytest.mark.slow
def test_force_worker_mediates_in_parent(demo_state: DemoState) -> None:
    cfg = KernelConfig.from_toml(demo_state.config).with_(force_worker=True)
    with Kernel(cfg) as kernel:
        assert all(s.use_worker for s in kernel.skills())
        inv = kernel.invoke("notes__read", {"path": "/workspace/hello.txt"})
        assert inv.worker and "Hello" in inv.output["content"]
        with pytest.raises(PolicyDeniedError):
            kernel.invoke("notes__read", {"path": "/etc/passwd"})
        with pytest.raises(SkillTimeout):
            kernel.invoke("loop__execute", {})
        assert kernel.invoke("calculator__execute", ADD).output == {"result": 3}
    assert verify(demo_state).result.name == "OK"


def test_unsigned_dev_skill_only_runs_in_worker(
    demo_state: DemoState, built_skills: Path, tmp_path: Path
) -> None:
    import shutil

    dest = tmp_path / "wordstats"
    shutil.copytree(built_skills / "wordstats", dest)
    strict = KernelConfig.from_toml(demo_state.config)
    with Kernel(strict) as kernel, pytest.raises(SignatureError):
        kernel.load_skill(dest)
    dev = strict.with_(require_signature=False, trust_store=None, skill_dirs=())
    with Kernel(dev) as kernel:
        (spec, *_) = kernel.load_skill(dest)
        assert spec.tier == "untrusted" and spec.signer_key_id == ""
        assert all(s.use_worker for s in kernel.skills())
