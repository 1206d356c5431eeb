"""Kernel.reload(): a new policy set is recorded, then decides; a bad one changes nothing;
Cedar sees the caller (``context.caller``) and decides per caller."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from kernel_helpers import DemoState
from serve_helpers import CALLER_POLICY, served_workdir

from vak.config import KernelConfig
from vak.errors import ConfigError, PolicyDeniedError, PolicyError, UntrustedSignerError
from vak.host.swap import SwapGuard
from vak.invocation import Principal
from vak.kernel import Kernel

READ = {"path": "/workspace/hello.txt"}
ALICE, BOB = Principal(id="alice"), Principal(id="bob")


def _kernel(demo_state: DemoState, tmp_path: Path) -> tuple[Kernel, Path]:
    workdir = served_workdir(demo_state, tmp_path / "k", "reload-unit")
    return Kernel(KernelConfig.from_toml(workdir.config)), workdir.policies


def _kinds(kernel: Kernel) -> list[dict[str, object]]:
    return [json.loads(line) for line in
            kernel.config.audit_settings().log.read_text().splitlines()]


def test_a_policy_forbids_one_caller_and_allows_another(demo_state: DemoState,
                                                        tmp_path: Path) -> None:
    kernel, _ = _kernel(demo_state, tmp_path)
    with kernel:
        assert kernel.invoke("notes__read", READ, principal=ALICE).output
        with pytest.raises(PolicyDeniedError) as info:
            kernel.invoke("notes__read", READ, principal=BOB)
        assert "ops.no-bob-notes" in info.value.policy_ids
        # anonymous calls are a caller too: id "anonymous"
        assert kernel.invoke("notes__read", READ).output
    assert "context.caller.id" in CALLER_POLICY


def test_reload_records_then_installs_and_empties_the_cache(demo_state: DemoState,
                                                            tmp_path: Path) -> None:
    kernel, policies = _kernel(demo_state, tmp_path)
    with kernel:
        kernel.invoke("notes__read", READ, principal=ALICE)  # cached allow
        (policies / "alice.cedar").write_text(
            '@id("ops.no-alice")\nforbid (principal, action, resource)\n'
            'when { context.caller.id == "alice" };\n')
        result = kernel.reload()
        assert result.changed and "ops.no-alice" in result.policy_ids
        entries = _kinds(kernel)
        assert entries[result.audit_seq]["kind"] == "policy_set"
        assert entries[result.audit_seq]["policy_set"] == result.policy_set
        with pytest.raises(PolicyDeniedError) as info:
            kernel.invoke("notes__read", READ, principal=ALICE)
        assert info.value.policy_ids == ("ops.no-alice",)
        decision = _kinds(kernel)[info.value.audit_seq]  # type: ignore[index]
        assert decision["decision"]["policy_set"] == result.policy_set  # type: ignore[index]
        again = kernel.reload()
        assert not again.changed and again.audit_seq > result.audit_seq


@pytest.mark.parametrize(("text", "line"), [
    ('@id("x")\npermit (principal, action, resource) when { context.nope };\n', 1),
    ('// one\n// two\n@id("y")\nforbid (principal, action, resource) when { 1 };\n', 3),
    ("not cedar at all", 1),
], ids=["unknown-attr", "type-error", "syntax"])
def test_a_bad_policy_set_keeps_the_old_one(demo_state: DemoState, tmp_path: Path,
                                            text: str, line: int) -> None:
    kernel, policies = _kernel(demo_state, tmp_path)
    with kernel:
        before = len(_kinds(kernel))
        (policies / "bad.cedar").write_text(text)
        with pytest.raises(PolicyError) as info:
            kernel.reload()
        assert info.value.details["file"].endswith("bad.cedar")
        assert info.value.details.get("line", 1) == line
        assert len(_kinds(kernel)) == before  # nothing recorded
        assert kernel.invoke("notes__read", READ, principal=ALICE).output  # old set decides


def test_reload_refuses_a_trust_store_under_which_a_skill_would_not_load(
        demo_state: DemoState, tmp_path: Path) -> None:
    workdir = served_workdir(demo_state, tmp_path / "t", "trust")
    trust = tmp_path / "trust.yaml"
    trust.write_text((demo_state.workdir / "trust.yaml").read_text())
    text = workdir.config.read_text().replace(str(demo_state.workdir / "trust.yaml"), str(trust))
    workdir.config.write_text(text)
    with Kernel(KernelConfig.from_toml(workdir.config)) as kernel:
        trust.write_text(trust.read_text().replace("tier: trusted", "tier: untrusted"))
        before = len(_kinds(kernel))
        with pytest.raises(ConfigError, match="changed nothing") as info:
            kernel.reload()
        assert "restart" in info.value.details["fix"]
        assert len(_kinds(kernel)) == before
        trust.write_text("keys: []\n")
        with pytest.raises((ConfigError, UntrustedSignerError)):  # the signer is unknown now
            kernel.reload()
        assert kernel.invoke("notes__read", READ).output


def test_the_swap_guard_waits_for_decisions_in_their_step() -> None:
    guard = SwapGuard()
    inside, release, order = threading.Event(), threading.Event(), []

    def decide() -> None:
        with guard.deciding():
            inside.set()
            release.wait(5)
            order.append("decision recorded")

    t = threading.Thread(target=decide)
    t.start()
    inside.wait(5)
    s = threading.Thread(target=lambda: guard.exclusive(lambda: order.append("swapped")))
    s.start()
    s.join(0.2)
    assert order == []  # the swap waits
    release.set()
    t.join(5)
    s.join(5)
    assert order == ["decision recorded", "swapped"]
    late: list[str] = []
    with guard.deciding():
        late.append("after")
    assert late == ["after"]
