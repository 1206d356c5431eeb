"""Helpers of the ``vak serve`` tests: a served workdir on the demo's signed skills,
a real ``mcp`` client holding a token, and readers of the workers' logs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
from kernel_helpers import ALLOC_WAT, DemoState, wat_skill
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from vak.serve.tokens import TokenFile

T = TypeVar("T")

#: bob may not touch the filesystem through notes; alice may (docs/POLICY.md, caller)
CALLER_POLICY = """@id("ops.no-bob-notes")
forbid (principal == Vak::Skill::"notes", action in Vak::Action::"fs", resource)
when { context.caller.id == "bob" };
"""

#: a skill whose ``execute`` logs one line (with an escape character) and answers {}
LOGGER_WAT = r"""
(module
  (import "vak" "log" (func $log (param i32 i32) (result i64)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 16) "{\"level\":\"info\",\"message\":\"hello from logger \\u001b[31m\"}")
  (data (i32.const 200) "{}")
""" + ALLOC_WAT + r"""  (func (export "execute") (param i32 i32) (result i64)
    (drop (call $log (i32.const 16) (i32.const 57)))
    (i64.const 858993459202)))
"""


@dataclass
class Served:
    """A config of its own (state, logs, policies) on the demo's skills, and two tokens."""

    root: Path
    config: Path
    policies: Path
    tokens: Path
    alice: str
    bob: str
    pin: Path

    def worker_pin(self, index: int) -> Path:
        return self.pin.with_name(f"{self.pin.stem}-w{index}{self.pin.suffix}")


def served_workdir(demo: DemoState, root: Path, name: str = "serve") -> Served:
    """Write ``root/vak.toml``: the demo's skills, trust store and workspace, with
    this directory's own state, log, key pin and policy copy (so tests can edit them)."""
    from vak.audit.keys import load_or_create_private_key, public_bytes
    from vak.identity.keys import verifier_key

    root.mkdir(parents=True, exist_ok=True)
    policies = root / "policies"
    shutil.copytree(demo.workdir / "policies", policies, dirs_exist_ok=True)
    (policies / "caller.cedar").write_text(CALLER_POLICY, encoding="utf-8")
    logger = wat_skill(demo, root / "skills", "logger", LOGGER_WAT,
                       capabilities={"log": True},
                       limits={"max_fuel": 100000, "max_host_calls": 1})
    skills = ", ".join(f'"{demo.workdir / "skills" / n}"' for n in ("calculator", "notes"))
    skills += f', "{logger}"'
    origin = f"test.vak/{name}"
    key = root / "audit" / "log.key"
    key.parent.mkdir(parents=True, exist_ok=True)
    pin = root / "audit-pin.pub"
    pin.write_text(verifier_key(origin, public_bytes(load_or_create_private_key(key))) + "\n",
                   encoding="utf-8")
    config = root / "vak.toml"
    config.write_text(
        f'state_dir = "{root / ".vak"}"\ntrust_store = "{demo.workdir / "trust.yaml"}"\n'
        f'policy_dirs = ["{policies}"]\nskill_dirs = [{skills}]\n'
        f'[audit]\nlog = "{root / "audit" / "vak.log"}"\nkey = "{key}"\n'
        f'origin = "{origin}"\nfsync = "batched:5"\ntrust = "{pin}"\n'
        f'[host.fs_mounts]\n"/workspace" = "{demo.workdir / "workspace"}"\n', encoding="utf-8")
    tokens = root / "tokens.json"
    store = TokenFile.load_or_empty(tokens)
    alice = store.add("alice")
    bob = TokenFile.load(tokens).add("bob")
    return Served(root, config, policies, tokens, alice, bob, pin)


async def with_session(url: str, token: str | None,
                       body: Callable[[ClientSession], Awaitable[T]]) -> T:
    """Run ``body`` in one MCP session of the real client, with a bearer token."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    http = create_mcp_http_client(headers=headers)
    async with http, streamable_http_client(url, http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        return await body(session)


def run(body: Callable[[], Awaitable[T]]) -> T:
    return anyio.run(body)


def entries(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def verify_json(log: Path, pin: Path) -> dict[str, Any]:
    """``vak-audit verify LOG --trust PIN --json`` (the operator's command)."""
    out = subprocess.run([sys.executable, "-m", "vak.cli.audit", "verify", str(log),
                          "--trust", str(pin), "--json"], capture_output=True, text=True,
                         check=False)
    report: dict[str, Any] = json.loads(out.stdout)
    return report


def worker_of(session_id: str) -> int:
    return int(session_id.split("-", 1)[0][1:])


@dataclass(frozen=True)
class Ack:
    """One acknowledged tool result: its session (so its worker), seq and outcome."""

    session: str
    seq: int
    error: str | None
    text: str
    #: a refusal's ``vak/decision_seq``: the host_decision that denied it
    decision_seq: int | None = None


async def call_loop(url: str, token: str, tool: str, args: dict[str, Any],
                    stop: Callable[[], bool], acks: list[Ack]) -> None:
    """Call ``tool`` in one session until ``stop()`` or the server goes away;
    every result the server acknowledged is appended to ``acks``."""
    ids: list[str] = []
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})

    async def remember(response: Any) -> None:
        if response.headers.get("mcp-session-id"):
            ids.append(response.headers["mcp-session-id"])

    http.event_hooks["response"].append(remember)
    try:
        async with http, streamable_http_client(url, http_client=http) as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            while not stop():
                res = await session.call_tool(tool, args)
                meta = res.meta or {}
                decision = meta.get("vak/decision_seq")
                acks.append(Ack(ids[0], int(meta["vak/audit_seq"]), meta.get("vak/error"),
                                res.content[0].text if res.content else "",
                                decision if isinstance(decision, int) else None))
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
