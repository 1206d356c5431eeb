"""``vak serve --workers 2`` through the real ``mcp`` client over HTTP: tokens, callers,
sessions sticky to a worker, health and readiness.

One server (two workers, a token file with alice and bob) is shared by the
module; the drain and reload tests (test_serve_lifecycle.py) start their own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("mcp")

from kernel_helpers import DemoState
from serve_helpers import (
    Ack,
    Served,
    call_loop,
    entries,
    run,
    served_workdir,
    with_session,
    worker_of,
)

from vak.serve.process import ServeProcess


@pytest.fixture(scope="module")
def served(demo_state: DemoState, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Served, ServeProcess]]:
    workdir = served_workdir(demo_state, tmp_path_factory.mktemp("served"))
    stderr = (workdir.root / "serve.stderr").open("wb")
    with ServeProcess.start(workdir.config, workers=2, token_file=workdir.tokens,
                            stderr=stderr, extra=("--log-level", "debug")) as srv:
        yield workdir, srv
    stderr.close()


def _call(url: str, token: str | None, tool: str, args: dict[str, Any]) -> Any:
    async def body(session: Any) -> Any:
        return await session.call_tool(tool, args)

    return run(lambda: with_session(url, token, body))


def test_a_token_holder_lists_and_calls_the_demo_tools(
        served: tuple[Served, ServeProcess]) -> None:
    workdir, srv = served

    async def body(session: Any) -> Any:
        names = [t.name for t in (await session.list_tools()).tools]
        result = await session.call_tool("calculator__execute",
                                         {"operation": "multiply", "a": 6, "b": 7})
        return names, result

    names, result = run(lambda: with_session(srv.url, workdir.alice, body))
    assert {"calculator__execute", "notes__read"} <= set(names)
    assert not result.is_error and result.structured_content == {"result": 42}
    assert isinstance(result.meta["vak/audit_seq"], int)


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer not-a-token", "Basic YWxpY2U6eA==",
                                    "bearer  x" + "y" * 600],
                         ids=["missing", "empty", "wrong", "basic", "oversized"])
def test_without_a_valid_token_the_answer_is_one_and_the_same_401(
        served: tuple[Served, ServeProcess], header: str | None) -> None:
    _, srv = served
    headers = {"content-type": "application/json",
               "accept": "application/json, text/event-stream"}
    if header is not None:
        headers["authorization"] = header
    r = httpx.post(srv.url, headers=headers, content=json.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}))
    assert r.status_code == 401
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
    metadata_url = challenge.split('resource_metadata="', 1)[1].rstrip('"')
    assert metadata_url == f"{srv.base}/.well-known/oauth-protected-resource/mcp"
    assert r.json() == {"error": "invalid_token", "error_description": "Authentication required"}
    meta = httpx.get(metadata_url).json()  # RFC 9728 metadata of the resource
    assert meta["resource"] == srv.url and meta["bearer_methods_supported"] == ["header"]


@pytest.mark.parametrize("token", [None, "wrong-token"], ids=["none", "wrong"])
def test_the_real_client_without_a_valid_token_cannot_initialize(
        served: tuple[Served, ServeProcess], token: str | None) -> None:
    from mcp.shared.exceptions import MCPError

    _, srv = served
    with pytest.raises(BaseExceptionGroup) as info:
        _call(srv.url, token, "calculator__execute", {"operation": "add", "a": 1, "b": 1})
    assert info.group_contains(MCPError)
    # and nothing was run
    assert not any(e["kind"] == "invocation_started" and e["principal"]["id"] == "anonymous"
                   for log in srv.logs for e in entries(log))


def test_cedar_sees_the_caller_bob_is_forbidden_alice_is_not(
        served: tuple[Served, ServeProcess]) -> None:
    workdir, srv = served
    args = {"path": "/workspace/hello.txt"}
    as_alice = _call(srv.url, workdir.alice, "notes__read", args)
    as_bob = _call(srv.url, workdir.bob, "notes__read", args)
    assert not as_alice.is_error
    assert as_bob.is_error and as_bob.meta["vak/error"] == "policy_denied"
    assert "ops.no-bob-notes" in as_bob.content[0].text
    # the log records who asked and what Cedar saw
    started = [e for log in srv.logs for e in entries(log) if e["kind"] == "invocation_started"]
    assert {"alice", "bob"} <= {e["principal"]["id"] for e in started}
    denied = [e for log in srv.logs for e in entries(log) if e["kind"] == "host_decision"
              and e["decision"]["effect"] == "deny"]
    assert any(e["request"]["context"]["caller"] == {"id": "bob", "kind": "agent"}
               for e in denied)


def test_sessions_are_sticky_to_the_worker_their_id_names(
        served: tuple[Served, ServeProcess]) -> None:
    workdir, srv = served
    seen: set[int] = set()
    for _ in range(4):
        acks: list[Ack] = []
        run(lambda: call_loop(srv.url, workdir.alice, "calculator__execute",
                              {"operation": "add", "a": 1, "b": 1},
                              lambda: len(acks) >= 3, acks))  # noqa: B023 - runs at once
        assert len(acks) == 3 and len({a.session for a in acks}) == 1
        index = worker_of(acks[0].session)
        seen.add(index)
        finished = {e["seq"] for e in entries(srv.logs[index])
                    if e["kind"] == "invocation_finished" and e["session"] == acks[0].session}
        assert {a.seq for a in acks} <= finished  # every call of the session ran there
    assert seen == {0, 1}  # new sessions are spread over both workers


def test_health_and_readiness(served: tuple[Served, ServeProcess]) -> None:
    _, srv = served
    assert httpx.get(f"{srv.base}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{srv.base}/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert [w["ready"] for w in ready.json()["workers"]] == [True, True]


def test_no_token_appears_in_a_log_or_the_server_output(
        served: tuple[Served, ServeProcess]) -> None:
    workdir, srv = served
    _call(srv.url, workdir.alice, "calculator__execute", {"operation": "add", "a": 1, "b": 1})
    texts = [log.read_text(encoding="utf-8") for log in srv.logs]
    texts.append((workdir.root / "serve.stderr").read_text(encoding="utf-8", errors="replace"))
    texts.append(workdir.tokens.read_text(encoding="utf-8"))
    for token in (workdir.alice, workdir.bob):
        assert not any(token in t for t in texts)


def test_a_skill_log_line_reaches_the_server_log_under_vak_skill(
        served: tuple[Served, ServeProcess]) -> None:
    workdir, srv = served
    result = _call(srv.url, workdir.alice, "logger__execute", {})
    assert not result.is_error, result
    stderr = workdir.root / "serve.stderr"
    _wait(lambda: "vak.skill.logger" in stderr.read_text(encoding="utf-8", errors="replace"))
    text = stderr.read_text(encoding="utf-8", errors="replace")
    line = next(x for x in text.splitlines() if "vak.skill.logger" in x)
    assert "hello from logger" in line
    assert "\x1b" not in line  # control characters escaped: one call, one line


def _wait(pred: Any, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_worker_logs_are_named_after_the_configured_log(
        served: tuple[Served, ServeProcess]) -> None:
    _, srv = served
    assert [p.name for p in srv.logs] == ["vak-w0.log", "vak-w1.log"]
    origins = [entries(p)[0]["origin"] for p in srv.logs]
    assert origins == ["test.vak/serve/w0", "test.vak/serve/w1"]
    assert Path(srv.state["control"]).stat().st_mode & 0o077 == 0


def test_a_request_for_another_workers_session_is_misdirected(
        served: tuple[Served, ServeProcess]) -> None:
    workdir, srv = served
    headers = {"content-type": "application/json", "authorization": f"Bearer {workdir.alice}",
               "accept": "application/json, text/event-stream"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}}
    with httpx.Client(headers=headers) as client:  # one keep-alive connection
        first = client.post(srv.url, json=init)
        here = worker_of(first.headers["mcp-session-id"])
        other = f"w{1 - here}-" + "0" * 32
        r = client.post(srv.url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
                        headers={"mcp-session-id": other})
        assert r.status_code == 421 and r.headers["connection"] == "close"
