"""Every audit entry that names a skill names it in one shape: ``SkillRef.to_audit()``."""

from __future__ import annotations

import json

from kernel_helpers import DemoState

from vak.identity.ref import SkillRef
from vak.kernel import Kernel

BASE = {"id", "version", "manifest_digest", "signer"}


def test_one_skill_shape_across_entry_kinds(kernel: Kernel, demo_state: DemoState) -> None:
    kernel.invoke("notes__read", {"path": "/workspace/hello.txt"})
    kernel.close()
    entries = [json.loads(line) for line in demo_state.log.read_text().splitlines()]
    seen: dict[str, dict[str, str]] = {}
    kinds: dict[str, set[str]] = {}
    for entry in entries:
        if "skill" not in entry:
            continue
        skill = entry["skill"]
        extra = {"module_sha256", "tier"} if entry["kind"] == "skill_loaded" else set()
        assert set(skill) == BASE | extra, entry["kind"]
        base = {k: skill[k] for k in BASE}
        assert seen.setdefault(skill["id"], base) == base, entry["kind"]
        kinds.setdefault(skill["id"], set()).add(entry["kind"])
    assert {"skill_loaded", "invocation_started", "host_decision",
            "invocation_finished"} <= kinds["notes"]
    ref = SkillRef(**seen["notes"])
    assert ref.to_audit() == seen["notes"]
    assert ref.manifest_digest.startswith("sha256:") and ref.signer.startswith("ed25519:")


def test_skill_ref_to_audit_is_a_fresh_dict() -> None:
    ref = SkillRef("a", "1.0.0", "sha256:" + "0" * 64, "")
    first = ref.to_audit()
    first["id"] = "changed"
    assert ref.to_audit()["id"] == "a"
    loaded = ref.to_audit_loaded("ab" * 32, "untrusted")
    assert loaded["module_sha256"] == "sha256:" + "ab" * 32 and loaded["tier"] == "untrusted"
