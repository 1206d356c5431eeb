"""MCP completeness (issue 16, item 4) through the real ``mcp`` client.

Server name and version, tool annotations from the signed capabilities,
structured results (wrapped when the output schema is not an object), and the
audit seq on every result -- refusals included -- checked against the log
itself. The in-memory client talks to ``build_server``; stdio and HTTP runs of
``vak mcp serve`` cover the transports.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

pytest.importorskip("mcp")

from kernel_helpers import DemoState, constant_output_wat, mcp_http_server, wat_skill
from mcp import Client
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from vak._version import distribution_version
from vak.config import KernelConfig
from vak.identity.keys import load_signing_key
from vak.identity.signing import sign_skill
from vak.kernel import Kernel

ADD = {"operation": "add", "a": 2, "b": 3}

APPROVAL_POLICY = """\
@id("ops.notes-writes-need-approval")
@approval("required")
permit (principal == Vak::Skill::"notes", action == Vak::Action::"fs_write", resource)
when { resource in principal.fs_write };
"""

#: a non-object output schema whose $ref points at the root's $defs
LIST_SCHEMA = {"$defs": {"n": {"type": "integer"}}, "type": "array", "items": {"$ref": "#/$defs/n"}}


def _with_output_schema(state: DemoState, skill: Path, schema: dict[str, Any]) -> Path:
    doc = yaml.safe_load((skill / "skill.yaml").read_text())
    doc["exports"][0]["output_schema"] = schema
    doc.pop("signature", None)
    (skill / "skill.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    sign_skill(skill, load_signing_key(state.workdir / "keys" / "demo-signer.key"))
    return skill


@pytest.fixture
def state(private_state: DemoState) -> DemoState:
    """A private demo workdir plus two skills with non-object outputs and an approval policy."""
    st = private_state
    work = st.workdir
    extra = work / "extra"
    scalar = _with_output_schema(st, wat_skill(st, extra, "scalar", constant_output_wat(b"42")),
                                 {"type": "integer"})
    listed = _with_output_schema(
        st, wat_skill(st, extra, "listed", constant_output_wat(b"[1,2]")), LIST_SCHEMA)
    (work / "policies" / "approvals.cedar").write_text(APPROVAL_POLICY)
    text = st.config.read_text()
    st.config.write_text(text.replace('"skills/loop"]', f'"skills/loop", "{scalar}", "{listed}"]',
                                      1))
    return st


@pytest.fixture
def kernel(state: DemoState) -> Iterator[Kernel]:
    with Kernel(KernelConfig.from_toml(state.config)) as k:
        yield k


def _entries(state: DemoState) -> dict[int, dict[str, Any]]:
    lines = state.log.read_bytes().splitlines()
    return {e["seq"]: e for e in map(json.loads, lines)}


async def _session(kernel: Kernel) -> dict[str, Any]:
    from vak.adapters.mcp import build_server

    out: dict[str, Any] = {}
    async with Client(build_server(kernel)) as client:
        out["info"] = client.server_info
        out["tools"] = {t.name: t for t in (await client.list_tools()).tools}
        calls = {
            "ok": ("calculator__execute", ADD),
            "scalar": ("scalar__execute", {}),
            "listed": ("listed__execute", {}),
            "denied": ("notes__read", {"path": "/etc/passwd"}),
            "invalid": ("calculator__execute", {"operation": "pow", "a": 1, "b": 2}),
            "trap": ("loop__execute", {}),
            "pending": ("notes__write", {"path": "/workspace/o.txt", "content": "x"}),
            "unknown": ("nope__tool", {}),
        }
        for key, (name, args) in calls.items():
            out[key] = await client.call_tool(name, args)
    return out


@pytest.fixture
def session(kernel: Kernel) -> dict[str, Any]:
    return anyio.run(_session, kernel)


def test_initialize_names_the_server_and_its_version(session: dict[str, Any]) -> None:
    assert session["info"].name == "vak"
    assert session["info"].version == distribution_version() != "0+unknown"


@pytest.mark.parametrize(("tool", "read_only", "open_world"), [
    ("calculator__execute", True, False),   # capabilities: {}
    ("notes__read", False, False),          # fs.write declared
    ("fetch__fetch", False, True),          # http declared
], ids=["pure", "fs-write", "http"])
def test_annotations_follow_the_signed_capabilities(
        session: dict[str, Any], tool: str, read_only: bool, open_world: bool) -> None:
    ann = session["tools"][tool].annotations
    assert ann.read_only_hint is read_only
    assert ann.destructive_hint is (not read_only)
    assert ann.open_world_hint is open_world
    skill, _, export = tool.partition("__")
    assert ann.title == f"{skill}: {export}"
    meta = session["tools"][tool].meta
    assert meta["vak/module_sha256"].startswith("sha256:") and meta["vak/tier"] == "trusted"


def test_kv_counts_as_a_write() -> None:
    from vak.adapters.mcp import tool_annotations
    from vak.identity.manifest import Capabilities
    from vak.invocation import ToolSpec

    spec = ToolSpec("s__e", "s", "e", "", {}, {})
    assert tool_annotations(spec, Capabilities(kv=True))["read_only_hint"] is False
    reads = tool_annotations(spec, Capabilities(fs_read=("/w",), secrets=("k",), log=True))
    assert reads["read_only_hint"] is True and reads["destructive_hint"] is False


def test_results_are_structured_and_wrapped_when_not_objects(session: dict[str, Any]) -> None:
    tools = session["tools"]
    assert tools["calculator__execute"].output_schema["type"] == "object"
    assert "x-vak-wrapped" not in tools["calculator__execute"].output_schema
    assert session["ok"].structured_content == {"result": 5}
    scalar = tools["scalar__execute"].output_schema
    assert scalar["x-vak-wrapped"] is True and scalar["properties"]["result"] == {
        "type": "integer"}
    assert session["scalar"].structured_content == {"result": 42}
    assert json.loads(session["scalar"].content[0].text) == 42
    listed = tools["listed__execute"].output_schema
    assert listed["$defs"] == LIST_SCHEMA["$defs"]  # so "#/$defs/n" resolves from the root
    # the real client validated structuredContent against the schema (no RuntimeError)
    assert session["listed"].structured_content == {"result": [1, 2]}


@pytest.mark.parametrize(("key", "error", "closing_kind"), [
    ("ok", None, "invocation_finished"),
    ("scalar", None, "invocation_finished"),
    ("denied", "policy_denied", "invocation_finished"),
    ("invalid", "invalid_input", "invocation_finished"),
    ("trap", "timeout", "invocation_finished"),
    ("pending", "approval_pending", "invocation_finished"),
    ("unknown", "unknown_tool", "call_refused"),
])
def test_every_result_carries_its_audit_seq(
        session: dict[str, Any], state: DemoState, key: str, error: str | None,
        closing_kind: str) -> None:
    result = session[key]
    meta = result.meta
    assert result.is_error is (error is not None)
    if error is not None:
        body = json.loads(result.content[0].text)
        assert body["error"] == meta["vak/error"] == error
    seq = meta["vak/audit_seq"]
    assert isinstance(seq, int)
    entry = _entries(state)[seq]
    assert entry["kind"] == closing_kind
    if closing_kind == "invocation_finished":
        assert entry["invocation"] == meta["vak/invocation"]
        assert entry["outcome"].get("error") == error
    if key in ("denied", "pending"):  # the host decision that refused or paused it
        decision = _entries(state)[meta["vak/decision_seq"]]
        assert decision["kind"] == "host_decision"
        assert decision["invocation"] == meta["vak/invocation"]


def test_results_before_any_listing_are_still_wrapped(kernel: Kernel) -> None:
    from vak.adapters.mcp import build_server

    async def call() -> Any:
        async with Client(build_server(kernel)) as client:
            client.session._tool_output_schemas = {}  # as a client that never listed
            return await client.session.call_tool("scalar__execute", {})

    result = anyio.run(call)
    assert result.structured_content == {"result": 42}


# ---------------------------------------------------------------------- transports
async def _stdio(state: DemoState) -> dict[str, Any]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "vak.cli.main", "mcp", "serve", "--config", str(state.config)])
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        init = await session.initialize()
        tools = (await session.list_tools()).tools
        scalar = await session.call_tool("scalar__execute", {})
        unknown = await session.call_tool("nope__tool", {})
    return {"init": init, "tools": tools, "scalar": scalar, "unknown": unknown}


def test_stdio_serves_the_same(state: DemoState, tmp_path: Path) -> None:
    # a broken skill in the config: refused and recorded, the others still served
    bad = tmp_path / "missing-skill"
    text = state.config.read_text()
    state.config.write_text(text.replace('"skills/loop",', f'"skills/loop", "{bad}",', 1))
    out = anyio.run(_stdio, state)
    assert out["init"].server_info.name == "vak"
    assert out["init"].server_info.version == distribution_version()
    names = {t.name for t in out["tools"]}
    assert {"calculator__execute", "scalar__execute", "notes__read"} <= names
    assert out["scalar"].structured_content == {"result": 42}
    assert out["unknown"].is_error and isinstance(out["unknown"].meta["vak/audit_seq"], int)
    kinds = [e["kind"] for e in _entries(state).values()]
    assert "skill_refused" in kinds and "call_refused" in kinds


async def _http(url: str) -> dict[str, Any]:
    async with streamable_http_client(url) as (read, write), \
            ClientSession(read, write) as session:
        init = await session.initialize()
        tools = {t.name: t for t in (await session.list_tools()).tools}
        denied = await session.call_tool("notes__read", {"path": "/etc/passwd"})
    return {"init": init, "tools": tools, "denied": denied}


def test_http_serves_the_same(state: DemoState) -> None:
    with mcp_http_server(state.config) as url:
        out = anyio.run(_http, url)
    assert out["init"].server_info.version == distribution_version()
    assert out["tools"]["fetch__fetch"].annotations.open_world_hint is True
    denied = out["denied"]
    assert denied.is_error and isinstance(denied.meta["vak/decision_seq"], int)
    assert _entries(state)[denied.meta["vak/audit_seq"]]["kind"] == "invocation_finished"
