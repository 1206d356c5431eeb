"""A declared secret's value never leaves the kernel, whatever the skill does with it.

One row per leak channel (issue 12, class 1), each through the real kernel:
in-process, the OS-sandboxed worker route (``force_worker``) and, where the
channel is a session's memory, session reuse; a subset through ``vak run``
and the MCP adapter. Every row checks what the caller sees (output, or the
error's message, details, diagnostics and JSON form) and the whole audit log.

The ``relay`` skill (tests/security/relay/relay.c) is the attacker: it reads
a secret and puts it wherever its input says -- the output (raw, as ``\\u``
escapes, as a key, deep inside), a refused argument (header name, URL port,
scheme, host, path), non-JSON output, a kv value or key read back by another
session, or its own memory for the next call of a reused session.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest
from secret_env import (
    API_TOKEN,
    SecretEnv,
    error_text,
    leaks,
    log_leaks,
    strings_in,
)

from vak.errors import ABIError, PolicyDeniedError, VakError

SG = ["secret_get", {"name": "API_TOKEN"}]
URL = "http://127.0.0.1:{port}/"


@dataclass(frozen=True)
class Call:
    session: str | None
    steps: list[Any]
    out: Any
    #: the error class this call must end with (None: it succeeds)
    error: type[VakError] | None = None


@dataclass(frozen=True)
class Case:
    id: str
    calls: tuple[Call, ...]
    #: the routes this channel applies to
    routes: tuple[str, ...] = ("engine", "worker")


def _kv_put_secret(key: str = "k1") -> Call:
    return Call("writer", [SG, ["kv_put", {"key": key, "value": "$0"}]], {})


CASES = [
    # (a) the output spells the value: raw, \u-escaped, as a key, deep inside
    Case("output-raw", (Call("s", [SG], {"v": "$0"}),)),
    Case("output-json-u-escapes", (Call("s", [SG], {"v": "$u0"}),)),
    Case("output-as-key", (Call("s", [SG], {"$0": 1, "x$u0": 2}),)),
    Case("output-nested", (Call("s", [SG], {"a": [{"b": ["x$0y", {"$u0": "z"}]}]}),)),
    Case("output-no-session", (Call(None, [SG], {"v": "$u0"}),)),
    # (b) the value is put into an argument that is refused; the message quotes it
    Case("refused-header-name", (Call("s", [SG, ["http_request", {
        "url": URL, "headers": {"$0 x": "v"}}]], {}, PolicyDeniedError),)),
    Case("refused-url-port", (Call("s", [SG, ["http_request", {
        "url": "http://127.0.0.1:$0/"}]], {}, PolicyDeniedError),)),
    Case("refused-url-scheme", (Call("s", [SG, ["http_request", {
        "url": "$0://127.0.0.1/"}]], {}, PolicyDeniedError),)),
    Case("refused-url-host", (Call("s", [SG, ["http_request", {
        "url": "http://$0.invalid/"}]], {}, PolicyDeniedError),)),
    Case("refused-method", (Call("s", [SG, ["http_request", {
        "url": URL, "method": "$0"}]], {}, ABIError),)),
    Case("refused-path-outside-grant", (Call("s", [SG, ["fs_read", {
        "path": "/etc/$0"}]], {}, PolicyDeniedError),)),
    Case("refused-path-nul", (Call("s", [SG, ["fs_read", {
        "path": "/workspace/$0\u0000"}]], {}, PolicyDeniedError),)),
    Case("refused-write-path", (Call("s", [SG, ["fs_write", {
        "path": "/workspace/$0", "content": "$0"}]], {}, PolicyDeniedError),)),
    Case("refused-kv-key", (Call("s", [SG, ["kv_get", {
        "key": "$0\u0000"}]], {}, PolicyDeniedError),)),
    # (c) the output is not JSON: the error must not carry the raw bytes
    Case("non-json-output", (Call("s", [SG], "not json $0", ABIError),)),
    Case("non-json-output-prefix", (Call("s", [SG], "$0 {", ABIError),)),
    # (d) stored with kv_put, read back by another session (value, key)
    Case("kv-value-read-back", (_kv_put_secret(), Call("reader", [
        ["kv_get", {"key": "k1"}]], {"v": "$0"}))),
    Case("kv-value-read-back-escaped", (_kv_put_secret(), Call("reader", [
        ["kv_get", {"key": "k1"}]], {"v": "$u0"}))),
    Case("kv-value-read-back-no-session", (_kv_put_secret(), Call(None, [
        ["kv_get", {"key": "k1"}]], {"v": "$0"}))),
    Case("kv-value-then-refused-arg", (_kv_put_secret(), Call("reader", [
        ["kv_get", {"key": "k1"}], ["http_request", {"url": "http://127.0.0.1:$0/"}]],
        {}, PolicyDeniedError))),
    Case("kv-key-listed", (Call("writer", [SG, ["kv_put", {"key": "$0", "value": "x"}]], {}),
                           Call("reader", [["kv_list", {}]], {"k": "$0"}))),
    Case("kv-key-listed-then-used", (
        Call("writer", [SG, ["kv_put", {"key": "$0", "value": "x"}]], {}),
        Call("reader", [["kv_list", {}], ["kv_get", {"key": "$0"}],
                        ["fs_read", {"path": "/nowhere/$0"}]], {}, PolicyDeniedError))),
    # a file one session writes and another reads (no label follows a file)
    Case("fs-file-read-back", (
        Call("writer", [SG, ["fs_write", {"path": "/workspace/out/t.txt", "content": "$0"}]], {}),
        Call("reader", [["fs_read", {"path": "/workspace/out/t.txt"}]], {"v": "$u0"}))),
    # (e) session reuse: guest memory keeps the value for the next call
    Case("reuse-memory", (Call("s", [SG], {}), Call("s", [], {"v": "$S"})),
         routes=("reuse",)),
    Case("reuse-memory-refused-arg", (Call("s", [SG], {}), Call("s", [
        ["http_request", {"url": "http://127.0.0.1:$S/"}]], {}, PolicyDeniedError)),
        routes=("reuse",)),
    Case("reuse-memory-non-json", (Call("s", [SG], {}), Call("s", [], "x $S", ABIError)),
         routes=("reuse",)),
]

ROWS = [(case, route) for case in CASES for route in case.routes]


def _fill(value: Any, port: int) -> Any:
    return json.loads(json.dumps(value).replace("{port}", str(port)))


def _input(env: SecretEnv, call: Call) -> dict[str, Any]:
    return {"steps": _fill(call.steps, env.port), "out": call.out}


ROUTES = {"engine": {}, "worker": {"force_worker": True}, "reuse": {"session_reuse": True}}


@pytest.mark.parametrize(("case", "route"), ROWS, ids=[f"{c.id}-{r}" for c, r in ROWS])
def test_secret_never_leaves_the_kernel(relay_env: SecretEnv, case: Case, route: str) -> None:
    with relay_env.kernel(**ROUTES[route]) as kernel:
        for call in case.calls:
            payload = _input(relay_env, call)
            if call.error is None:
                inv = kernel.invoke("relay__run", payload, session=call.session)
                shown = json.dumps(inv.output, ensure_ascii=False)
                assert not leaks(shown), shown
                assert not any(leaks(s) for s in strings_in(inv.output))
            else:
                with pytest.raises(call.error) as info:
                    kernel.invoke("relay__run", payload, session=call.session)
                assert not leaks(error_text(info.value)), error_text(info.value)
    assert not log_leaks(relay_env)


def test_redaction_is_visible_in_the_output(relay_env: SecretEnv) -> None:
    with relay_env.kernel() as kernel:
        inv = kernel.invoke("relay__run", {"steps": [SG], "out": {"v": "a $u0 b", "$0": 1}},
                            session="s")
    assert inv.output == {"v": "a [REDACTED] b", "[REDACTED]": 1}


def test_a_value_handed_out_is_scrubbed_from_every_session(relay_env: SecretEnv) -> None:
    """Beyond the data flow: exact matching is cheap, so a value the kernel handed out
    is scrubbed everywhere, also from a session it reached by a route no label
    follows (here: the caller passing it in)."""
    with relay_env.kernel() as kernel:
        kernel.invoke("relay__run", {"steps": [SG], "out": {}}, session="holder")
        inv = kernel.invoke("relay__run", {"steps": [], "out": {"v": API_TOKEN}},
                            session="bystander")
        assert inv.output == {"v": "[REDACTED]"}
        assert "secret:API_TOKEN" not in kernel._mediator.session_labels("bystander")


def test_log_lines_are_scrubbed(relay_env: SecretEnv, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="vak.skill.relay"), relay_env.kernel() as kernel:
        kernel.invoke("relay__run", {"steps": [
            SG, ["log", {"message": "token=$0 escaped=$u0"}]], "out": {}}, session="s")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "token=" in text
    assert not leaks(text)


def test_end_session_drops_the_mark(relay_env: SecretEnv) -> None:
    with relay_env.kernel() as kernel:
        kernel.invoke("relay__run", {"steps": [SG], "out": {}}, session="s")
        mediator = kernel._mediator
        assert "secret:API_TOKEN" in mediator.session_labels("s")
        kernel.end_session("s")
        assert mediator.session_labels("s") == frozenset()


# ---------------------------------------------------------------------- the CLI
CLI_CASES = [c for c in CASES if c.id in {
    "output-json-u-escapes", "refused-url-port", "refused-header-name", "non-json-output",
    "kv-value-read-back-escaped"}]


def _vak(env: SecretEnv, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vak.cli.main", *args], capture_output=True,
                          text=True, timeout=120, cwd=env.root)


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
@pytest.mark.parametrize("json_flag", [False, True], ids=["text", "json"])
def test_cli_run_never_prints_the_secret(relay_env: SecretEnv, case: Case, json_flag: bool) -> None:
    for call in case.calls:
        args = ["run", "--config", str(relay_env.config), "relay__run",
                "--input", json.dumps(_input(relay_env, call))]
        if call.session:
            args += ["--session", call.session]
        if json_flag:
            args.append("--json")
        proc = _vak(relay_env, *args)
        assert (proc.returncode == 0) == (call.error is None), proc.stderr
        assert not leaks(proc.stdout + proc.stderr), proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
    assert not log_leaks(relay_env)


# ---------------------------------------------------------------------- the MCP adapter
MCP_CASES = [c for c in CASES if c.id in {
    "output-json-u-escapes", "output-as-key", "refused-url-port", "non-json-output",
    "kv-value-read-back"}]


def _mcp_calls(env: SecretEnv, payloads: list[dict[str, Any]]) -> list[Any]:
    import anyio
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    async def run() -> list[Any]:
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "vak.cli.main", "mcp", "serve", "--config", str(env.config)],
        )
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            return [await session.call_tool("relay__run", p) for p in payloads]

    return anyio.run(run)


@pytest.mark.parametrize("case", MCP_CASES, ids=[c.id for c in MCP_CASES])
def test_mcp_tool_results_never_carry_the_secret(relay_env: SecretEnv, case: Case) -> None:
    pytest.importorskip("mcp")
    results = _mcp_calls(relay_env, [_input(relay_env, c) for c in case.calls])
    for call, result in zip(case.calls, results, strict=True):
        assert result.is_error == (call.error is not None)
        shown = json.dumps(result.model_dump(mode="json"), ensure_ascii=False)
        assert not leaks(shown), shown
    assert not log_leaks(relay_env)


def test_evicted_session_loses_its_reused_instance(relay_env: SecretEnv) -> None:
    """Past max_tracked_sessions the least recently used session is ended: its labels
    go, and with them the reused instance whose memory holds the secret."""
    with relay_env.kernel(session_reuse=True) as kernel:
        kernel.invoke("relay__run", {"steps": [SG], "out": {}}, session="s")
        kept = kernel.invoke("relay__run", {"steps": [], "out": {"v": "$S"}}, session="s")
        assert kept.output == {"v": "[REDACTED]"}  # the instance still holds it
        kernel._mediator._flows._max = 1  # what max_tracked_sessions = 1 configures
        kernel.invoke("relay__run", {"steps": [["clock_now", {}]], "out": {}}, session="t")
        assert kernel._mediator.session_labels("s") == frozenset()
        fresh = kernel.invoke("relay__run", {"steps": [], "out": {"v": "$S"}}, session="s")
        assert fresh.output == {"v": ""}  # a new instance: nothing left in memory
    assert not log_leaks(relay_env)
