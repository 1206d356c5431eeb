"""Calls the engine refuses leave exactly one recorded decision (RULES contract 3).

The engine keeps only wasm-level limits; a host call whose argument span it
cannot read, a host call made by a re-entering allocator, and a host call past
the limit are refused by the mediation (``MediatedHandler.refuse`` / its
counting), which records one ``host_decision`` deny before the trap. Each case
runs in-process (trusted, signed with the demo key) and in the OS-sandboxed
worker (untrusted tier), through the real kernel and audit log.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kernel_helpers import DemoState

from vak.config import KernelConfig
from vak.errors import ABIError, HostCallLimitError, OutputStructureError, ToolCallError
from vak.host.mediation import MediatedHandler
from vak.kernel import Kernel

needs_refuse = pytest.mark.skipif(
    not hasattr(MediatedHandler, "refuse"),
    reason="MediatedHandler.refuse (helper 'mediation') has not landed on this branch")

HOSTILE = ("oob", "hostspin", "reenter", "deepnest")


@pytest.fixture(params=["engine", "worker"])
def kernel(request: pytest.FixtureRequest, demo_state: DemoState, built_skills: Path,
           tmp_path: Path) -> Iterator[Kernel]:
    """A kernel with the hostile skills loaded, signed with the demo key;
    ``worker``: the signer is trusted only at the untrusted tier."""
    from vak.identity.keys import load_signing_key
    from vak.identity.signing import sign_skill

    key = load_signing_key(demo_state.workdir / "keys" / "demo-signer.key")
    dirs = []
    for name in HOSTILE:
        dest = tmp_path / name
        shutil.copytree(built_skills / "hostile" / name, dest)
        sign_skill(dest, key)
        dirs.append(dest)
    cfg = KernelConfig.from_toml(demo_state.config)
    if request.param == "worker":
        pub = (demo_state.workdir / "keys" / "demo-signer.key.pub").read_text().strip()
        trust = tmp_path / "trust-untrusted.yaml"
        trust.write_text(f"keys:\n  - key: {json.dumps(pub)}\n    tier: untrusted\n")
        cfg = cfg.with_(trust_store=trust)
    with Kernel(cfg) as k:
        for d in dirs:
            k.load_skill(d)
        yield k


def _entries(state: DemoState) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in state.log.read_bytes().splitlines() if line]


def _decisions(kernel: Kernel, state: DemoState, error: ToolCallError) -> list[dict[str, Any]]:
    """The host_decision entries of the invocation that ended in ``error``
    (the kernel is closed first, so that every entry is on disk)."""
    kernel.close()
    entries = _entries(state)
    finished = {e["seq"]: e for e in entries}[error.details["finished_seq"]]
    return [e for e in entries
            if e["kind"] == "host_decision" and e["invocation"] == finished["invocation"]]


def _denies(decisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in decisions if d["decision"]["effect"] == "deny"]


@needs_refuse
@pytest.mark.parametrize("export", ["hostarg", "hostlen"])
def test_refused_span_leaves_exactly_one_deny(kernel: Kernel, demo_state: DemoState,
                                              export: str) -> None:
    with pytest.raises(ABIError) as info:
        kernel.invoke(f"oob__{export}", {})
    decisions = _decisions(kernel, demo_state, info.value)
    assert len(decisions) == 1
    assert decisions[0]["decision"]["effect"] == "deny"
    assert decisions[0]["decision"]["policy_ids"] == ["vak.invalid-args"]
    assert decisions[0]["host_function"] == "log"


@needs_refuse
def test_host_call_limit_leaves_exactly_one_deny(kernel: Kernel, demo_state: DemoState) -> None:
    with pytest.raises(HostCallLimitError) as info:
        kernel.invoke("hostspin__execute", {"message": "spin"})
    decisions = _decisions(kernel, demo_state, info.value)
    denies = _denies(decisions)
    assert len(denies) == 1
    assert denies[0]["decision"]["policy_ids"] == ["vak.host-call-limit"]
    assert len(decisions) == 4 + 1  # the manifest's max_host_calls, then the refusal


@needs_refuse
def test_reentrant_allocator_is_refused_with_its_real_cause(kernel: Kernel,
                                                            demo_state: DemoState) -> None:
    with pytest.raises(ABIError) as info:
        kernel.invoke("reenter__execute", {})
    assert "re-entrant" in info.value.message
    assert "vak_alloc failed" not in info.value.message
    denies = _denies(_decisions(kernel, demo_state, info.value))
    assert [d["decision"]["policy_ids"] for d in denies] == [["vak.invalid-args"]]


@pytest.mark.parametrize("export", ["execute", "deep300", "deep100k", "objects", "wide"])
def test_hostile_output_structure_is_a_typed_error(kernel: Kernel, demo_state: DemoState,
                                                   export: str) -> None:
    with pytest.raises(OutputStructureError) as info:
        kernel.invoke(f"deepnest__{export}", {})
    assert info.value.details["bound"] in ("max_depth", "max_items")
    # the kernel keeps serving; a moderately nested output is fine
    out = kernel.invoke("deepnest__ok32", {}).output
    depth = 0
    node: Any = out["d"]
    while node:
        node, depth = node[0], depth + 1
    assert depth == 30  # 31 arrays, the innermost empty
