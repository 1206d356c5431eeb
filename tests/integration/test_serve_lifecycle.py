"""``vak serve`` under load: SIGTERM drains without losing an acknowledged call,
a reload takes effect between decisions, a bad policy set keeps the old one;
and what is refused before anything starts (non-loopback without tokens, a
token file others can read, a reload with no server)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("mcp")

from kernel_helpers import DemoState
from serve_helpers import Ack, call_loop, entries, served_workdir, verify_json, worker_of

from vak.serve.control import ask, read_state
from vak.serve.process import ServeProcess


def _load(url: str, token: str, tool: str, args: dict[str, Any], clients: int,
          acks: list[Ack], stop: threading.Event) -> threading.Thread:
    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(clients):
                tg.start_soon(call_loop, url, token, tool, args, stop.is_set, acks)

    thread = threading.Thread(target=anyio.run, args=(main,), daemon=True)
    thread.start()
    return thread


def _wait_for(pred: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _vak(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vak.cli.main", *args], capture_output=True,
                          text=True, check=False, timeout=120)


def test_sigterm_under_load_loses_no_acknowledged_call_and_closes_every_log(
        demo_state: DemoState, tmp_path: Path) -> None:
    workdir = served_workdir(demo_state, tmp_path / "drain", "drain")
    srv = ServeProcess.start(workdir.config, workers=2, token_file=workdir.tokens)
    acks: list[Ack] = []
    stop = threading.Event()
    thread = _load(srv.url, workdir.alice, "notes__read", {"path": "/workspace/hello.txt"},
                   8, acks, stop)
    _wait_for(lambda: len(acks) >= 40)
    assert srv.stop(signal.SIGTERM) == 0  # every worker closed its kernel
    stop.set()
    thread.join(60)
    assert not srv.state_file.exists()
    by_worker: dict[int, set[int]] = {0: set(), 1: set()}
    for i, log in enumerate(srv.logs):
        by_worker[i] = {e["seq"] for e in entries(log) if e["kind"] == "invocation_finished"}
    missing = [a for a in acks if a.seq not in by_worker[worker_of(a.session)]]
    assert not missing, missing[:3]
    assert {worker_of(a.session) for a in acks} == {0, 1}
    for i, log in enumerate(srv.logs):
        report = verify_json(log, workdir.worker_pin(i))
        assert report["result"] == "OK", report["findings"]
        assert report["tail"].startswith("closed cleanly"), report["tail"]
        assert report["keys"]["pinned"] is True or "pinned" in str(report["keys"])


def _decisions_follow_their_policy_set(log: Path) -> int:
    """Every Cedar decision names the set of the most recent ``policy_set`` before it."""
    current = None
    checked = 0
    for e in entries(log):
        if e["kind"] == "policy_set":
            current = e["policy_set"]
        elif e["kind"] in ("host_decision", "host_resolve") and "request" in e:
            assert e["decision"]["policy_set"] == current, e
            checked += 1
    return checked


def test_reload_under_load_takes_effect_between_decisions(
        demo_state: DemoState, tmp_path: Path) -> None:
    workdir = served_workdir(demo_state, tmp_path / "reload", "reload")
    with ServeProcess.start(workdir.config, workers=2, token_file=workdir.tokens) as srv:
        acks: list[Ack] = []
        stop = threading.Event()
        thread = _load(srv.url, workdir.alice, "notes__read",
                       {"path": "/workspace/hello.txt"}, 6, acks, stop)
        _wait_for(lambda: len(acks) >= 30)
        (workdir.policies / "alice.cedar").write_text(
            '@id("ops.no-alice")\nforbid (principal, action in Vak::Action::"fs", resource)\n'
            'when { context.caller.id == "alice" };\n', encoding="utf-8")
        done = _vak("reload", "--config", str(workdir.config))
        assert done.returncode == 0, done.stderr
        after = len(acks)
        _wait_for(lambda: len(acks) >= after + 30)
        stop.set()
        thread.join(60)
        assert all(a.error is None for a in acks[:20])  # allowed before
        late = acks[after + 12:]  # surely started after every worker swapped
        assert late and all(a.error == "policy_denied" and "ops.no-alice" in a.text
                            for a in late)
        # the bad set: refused by every worker, the previous one stays in force
        (workdir.policies / "bad.cedar").write_text(
            '@id("bad")\nforbid (principal, action, resource) when { context.nope };\n',
            encoding="utf-8")
        sets_before = [sum(e["kind"] == "policy_set" for e in entries(p)) for p in srv.logs]
        answer = ask(read_state(workdir.root / ".vak"), "reload")
        assert answer["ok"] is False
        for w in answer["workers"]:
            assert w["ok"] is False and w["error"]["error"] == "policy_invalid"
            assert w["error"]["file"].endswith("bad.cedar") and w["error"]["line"] == 1
        refused = _vak("reload", "--config", str(workdir.config))
        assert refused.returncode == 24 and "bad.cedar" in refused.stderr
        assert [sum(e["kind"] == "policy_set" for e in entries(p)) for p in srv.logs] == \
            sets_before
        os.unlink(workdir.policies / "bad.cedar")
    for i, log in enumerate(srv.logs):
        sets = [e for e in entries(log) if e["kind"] == "policy_set"]
        assert len(sets) == 2 and sets[0]["policy_set"] != sets[1]["policy_set"]
        assert any(f["name"] == "alice.cedar" for f in sets[1]["files"])
        assert _decisions_follow_their_policy_set(log) > 0
        kinds = {e["seq"]: e["kind"] for e in entries(log)}
        for a in acks:  # every result's seq names its invocation_finished (docs/MCP.md);
            if worker_of(a.session) == i:  # a refusal's decision_seq names the deny
                assert kinds.get(a.seq) == "invocation_finished", a
                if a.error is not None:
                    assert kinds.get(a.decision_seq) == "host_decision", a
        assert verify_json(log, workdir.worker_pin(i))["result"] == "OK"


def test_sighup_reloads_too_and_json_logs_are_json(demo_state: DemoState,
                                                  tmp_path: Path) -> None:
    import json

    workdir = served_workdir(demo_state, tmp_path / "hup", "hup")
    err = (tmp_path / "stderr").open("wb")
    with ServeProcess.start(workdir.config, workers=1, token_file=workdir.tokens, stderr=err,
                            extra=("--log-format", "json")) as srv:
        srv.send(signal.SIGHUP)
        _wait_for(lambda: sum(e["kind"] == "policy_set" for e in entries(srv.logs[0])) == 2)
    err.close()
    records = [json.loads(line) for line in (tmp_path / "stderr").read_text().splitlines()]
    assert {r["process"] for r in records} == {"front", "w0"}
    assert any("reload done" in r["msg"] for r in records)
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)


@pytest.mark.parametrize("listen", ["0.0.0.0:0", "[::]:0", "192.0.2.1:8765"],
                         ids=["any4", "any6", "other"])
def test_a_non_loopback_address_without_a_token_file_is_refused(
        demo_state: DemoState, tmp_path: Path, listen: str) -> None:
    workdir = served_workdir(demo_state, tmp_path / "open", "open")
    out = _vak("serve", "--config", str(workdir.config), "--listen", listen)
    assert out.returncode == 8, out.stderr
    assert "without authentication" in out.stderr and "--token-file" in out.stderr
    assert not (workdir.root / "audit" / "vak-w0.log").exists()  # nothing started


def test_a_listen_name_is_refused_not_resolved(demo_state: DemoState, tmp_path: Path) -> None:
    workdir = served_workdir(demo_state, tmp_path / "name", "name")
    out = _vak("serve", "--config", str(workdir.config), "--listen", "example.com:80")
    assert out.returncode == 8 and "IP address literal" in out.stderr


def test_token_files_are_0600_and_a_readable_one_is_refused(tmp_path: Path,
                                                             demo_state: DemoState) -> None:
    tokens = tmp_path / "t" / "tokens.json"
    out = _vak("serve", "token", "add", "ci", "--token-file", str(tokens))
    assert out.returncode == 0 and len(out.stdout.strip()) == 43
    assert tokens.stat().st_mode & 0o777 == 0o600
    assert out.stdout.strip() not in tokens.read_text(encoding="utf-8")
    listed = _vak("serve", "token", "list", "--token-file", str(tokens))
    assert "ci" in listed.stdout and out.stdout.strip() not in listed.stdout
    tokens.chmod(0o644)
    workdir = served_workdir(demo_state, tmp_path / "perm", "perm")
    refused = _vak("serve", "--config", str(workdir.config), "--token-file", str(tokens))
    assert refused.returncode == 8 and "chmod 600" in refused.stderr
    tokens.chmod(0o600)
    assert _vak("serve", "token", "revoke", "ci", "--token-file", str(tokens)).returncode == 0
    assert _vak("serve", "token", "revoke", "ci", "--token-file", str(tokens)).returncode == 8


def test_reload_without_a_server_says_so(demo_state: DemoState, tmp_path: Path) -> None:
    workdir = served_workdir(demo_state, tmp_path / "none", "none")
    out = _vak("reload", "--config", str(workdir.config))
    assert out.returncode == 8 and "no `vak serve` is running" in out.stderr


def test_the_demo_config_served_by_two_workers_to_a_token_holder(
        demo_state: DemoState, tmp_path: Path) -> None:
    """Done-when of issue 16: `vak demo`'s vak.toml, two workers, a token, a drain."""
    from serve_helpers import run, with_session

    from vak.serve.tokens import TokenFile

    tokens = tmp_path / "tokens.json"
    token = TokenFile.load_or_empty(tokens).add("agent")
    srv = ServeProcess.start(demo_state.config, workers=2, token_file=tokens)

    async def body(session: Any) -> tuple[list[str], Any]:
        names = [t.name for t in (await session.list_tools()).tools]
        return names, await session.call_tool("calculator__execute",
                                              {"operation": "add", "a": 40, "b": 2})

    names, result = run(lambda: with_session(srv.url, token, body))
    assert {"calculator__execute", "notes__read", "fetch__fetch", "loop__execute"} <= set(names)
    assert result.structured_content == {"result": 42}
    assert srv.stop(signal.SIGTERM) == 0
    for log in srv.logs:
        out = subprocess.run([sys.executable, "-m", "vak.cli.audit", "verify", str(log),
                              "--key", str(demo_state.log_pub)], capture_output=True,
                             text=True, check=False)
        assert out.returncode == 0 and "closed cleanly" in out.stdout, out.stdout


def test_sigterm_while_the_workers_start_still_closes_every_log(
        demo_state: DemoState, tmp_path: Path) -> None:
    workdir = served_workdir(demo_state, tmp_path / "early", "early")
    proc = subprocess.Popen([sys.executable, "-m", "vak.cli.main", "serve", "--config",
                             str(workdir.config), "--workers", "2", "--listen", "127.0.0.1:0",
                             "--token-file", str(workdir.tokens)], stderr=subprocess.PIPE)
    logs = [workdir.root / "audit" / f"vak-w{i}.log" for i in (0, 1)]
    _wait_for(lambda: any(p.exists() for p in logs))  # a kernel is opening its log
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    for i, log in enumerate(logs):
        if log.exists():
            report = verify_json(log, workdir.worker_pin(i))
            assert report["result"] == "OK" and report["tail"].startswith("closed cleanly")


def test_a_worker_killed_while_serving_is_restarted(demo_state: DemoState,
                                                     tmp_path: Path) -> None:
    import httpx
    from serve_helpers import run, with_session

    workdir = served_workdir(demo_state, tmp_path / "kill", "kill")
    with ServeProcess.start(workdir.config, workers=2, token_file=workdir.tokens) as srv:
        victim = srv.state["workers"][1]["pid"]
        os.kill(victim, signal.SIGKILL)
        _wait_for(lambda: httpx.get(f"{srv.base}/readyz").status_code == 503, 30)
        _wait_for(lambda: httpx.get(f"{srv.base}/readyz").status_code == 200, 120)

        async def body(session: Any) -> Any:
            return await session.call_tool("calculator__execute",
                                           {"operation": "add", "a": 2, "b": 2})

        for _ in range(4):  # new sessions reach both workers again
            assert run(lambda: with_session(srv.url, workdir.alice, body)).structured_content \
                == {"result": 4}
        ctl = ask(read_state(workdir.root / ".vak"), "status")
        assert [w["ready"] for w in ctl["workers"]] == [True, True]
    assert srv.process.returncode == 0
    # the killed kernel's log is recovered by its successor and verifies
    assert verify_json(srv.logs[1], workdir.worker_pin(1))["result"] == "OK"


def test_one_server_per_state_dir_and_reload_json(demo_state: DemoState, tmp_path: Path) -> None:
    import json

    workdir = served_workdir(demo_state, tmp_path / "one", "one")
    with ServeProcess.start(workdir.config, workers=1, token_file=workdir.tokens) as srv:
        second = _vak("serve", "--config", str(workdir.config), "--listen", "127.0.0.1:0")
        assert second.returncode == 8 and "already runs" in second.stderr
        done = _vak("reload", "--config", str(workdir.config), "--json")
        assert done.returncode == 0
        answer = json.loads(done.stdout)
        assert answer["ok"] is True and answer["workers"][0]["audit_seq"] > 0
        assert srv.process.poll() is None
