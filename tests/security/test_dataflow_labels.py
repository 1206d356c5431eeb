"""Data-flow labels through the real kernel (issue 15, item 4).

A label rule stops a read-then-send sequence that crosses two invocations
through kv, while another session is not affected; the log shows why (the
deny names the template policy and records the session's labels). The same
holds on the OS-sandboxed worker route, because the labels live with the
kernel-side handler and the worker only proxies host calls.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from secret_env import (
    PRIVATE_TEXT,
    REPO,
    SecretEnv,
    make_env,
    recording_server,
)

from vak.errors import PolicyDeniedError

TEMPLATE = REPO / "policies" / "templates" / "dataflow.cedar"
URL = "http://127.0.0.1:{port}/send"


@pytest.fixture
def rules(relay_env: SecretEnv) -> SecretEnv:
    """The workdir with the shipped data-flow templates enabled (copied into policies/)."""
    shutil.copy(TEMPLATE, relay_env.root / "policies" / "dataflow.cedar")
    return relay_env


def _entries(env: SecretEnv, kind: str) -> list[dict[str, Any]]:
    lines = env.log.read_text(encoding="utf-8").splitlines()
    return [e for e in map(json.loads, lines) if e["kind"] == kind]


def _send(env: SecretEnv) -> list[Any]:
    return [["http_request", {"url": URL.format(port=env.port), "method": "POST", "body": "$0"}]]


ROUTES = {"engine": {}, "worker": {"force_worker": True}}


@pytest.mark.parametrize("route", list(ROUTES))
def test_read_private_then_send_through_kv_is_stopped(rules: SecretEnv, route: str) -> None:
    with rules.kernel(**ROUTES[route]) as kernel:
        # invocation 1, session A: read the private file, stash it in kv
        kernel.invoke("relay__run", {"steps": [
            ["fs_read", {"path": "/workspace/private/plan.txt"}],
            ["kv_put", {"key": "plan", "value": "$0"}]], "out": {}}, session="A")
        # invocation 2, session B (never read the file itself): kv_get, then send
        with pytest.raises(PolicyDeniedError) as info:
            kernel.invoke("relay__run", {"steps": [
                ["kv_get", {"key": "plan"}], *_send(rules)], "out": {}}, session="B")
        assert "template.dataflow.no-network-after-private" in info.value.policy_ids
        # another session is not affected: it sends
        ok = kernel.invoke("relay__run", {"steps": [
            ["fs_read", {"path": "/workspace/hello.txt"}], *_send(rules)], "out": {}},
            session="C")
        assert ok.output == {}
        assert "fs:/workspace/private" in kernel._mediator.session_labels("B")
        assert "fs:/workspace/private" not in kernel._mediator.session_labels("C")
    assert len(rules.seen) == 1 and "hello world" in rules.seen[0]
    assert all(PRIVATE_TEXT not in s for s in rules.seen)
    # the log shows why: the deny entry names the rule and carries the labels
    denies = [e for e in _entries(rules, "host_decision")
              if e["decision"]["effect"] == "deny" and e["session"] == "B"]
    assert len(denies) == 1
    assert denies[0]["decision"]["policy_ids"] == ["template.dataflow.no-network-after-private"]
    assert "fs:/workspace/private" in denies[0]["labels"]
    assert "kv:relay" in denies[0]["labels"]


@pytest.mark.parametrize("route", list(ROUTES))
def test_secret_label_limits_hosts(rules: SecretEnv, route: str) -> None:
    """"no http_request to any host but api.github.com once the session holds
    secret:github_token" -- the mark also arrives through a kv value."""
    with rules.kernel(**ROUTES[route]) as kernel:
        kernel.invoke("relay__run", {"steps": [
            ["secret_get", {"name": "github_token"}],
            ["kv_put", {"key": "gh", "value": "$0"}]], "out": {}}, session="A")
        for session in ("A", "B"):
            steps = [] if session == "A" else [["kv_get", {"key": "gh"}]]
            with pytest.raises(PolicyDeniedError) as info:
                kernel.invoke("relay__run", {"steps": [*steps, *_send(rules)], "out": {}},
                              session=session)
            assert info.value.policy_ids == ("template.dataflow.github-token-only-to-github",)
        # a session holding only another secret may still reach the local server
        kernel.invoke("relay__run", {"steps": [
            ["secret_get", {"name": "API_TOKEN"}],
            ["http_request", {"url": f"http://127.0.0.1:{rules.port}/x"}]], "out": {}},
            session="C")
    assert len(rules.seen) == 1


def test_labels_survive_a_restart_through_kv(rules: SecretEnv) -> None:
    with rules.kernel() as kernel:
        kernel.invoke("relay__run", {"steps": [
            ["fs_read", {"path": "/workspace/private/plan.txt"}],
            ["kv_put", {"key": "plan", "value": "$0"}]], "out": {}}, session="A")
    with rules.kernel() as kernel, pytest.raises(PolicyDeniedError):
        kernel.invoke("relay__run", {"steps": [
            ["kv_get", {"key": "plan"}], *_send(rules)], "out": {}}, session="A")
    assert rules.seen == []


def test_every_decision_records_the_labels_it_saw(rules: SecretEnv) -> None:
    with rules.kernel() as kernel:
        kernel.invoke("relay__run", {"steps": [
            ["fs_read", {"path": "/workspace/hello.txt"}],
            ["secret_get", {"name": "API_TOKEN"}],
            ["kv_list", {}],
            ["http_request", {"url": f"http://127.0.0.1:{rules.port}/"}],
            ["clock_now", {}]], "out": {}}, session="L")
    decisions = [e for e in _entries(rules, "host_decision") if e["session"] == "L"]
    seen = [sorted(e.get("labels", [])) for e in decisions]
    assert seen == [
        [],
        ["fs:/workspace"],
        ["fs:/workspace", "secret:API_TOKEN"],
        ["fs:/workspace", "kv:relay", "secret:API_TOKEN"],
        ["fs:/workspace", "kv:relay", "net:127.0.0.1", "secret:API_TOKEN"],
    ]


def test_templates_are_off_by_default(tmp_path: Path, relay_wasm: bytes) -> None:
    """Without copying the template, the same sequence is allowed (nothing shipped loads it)."""
    with recording_server() as (port, seen):
        e = make_env(tmp_path / "w", relay_wasm, port, seen)
        with e.kernel() as kernel:
            kernel.invoke("relay__run", {"steps": [
                ["fs_read", {"path": "/workspace/private/plan.txt"}],
                ["http_request", {"url": f"http://127.0.0.1:{port}/"}]], "out": {}},
                session="A")
        assert len(seen) == 1
