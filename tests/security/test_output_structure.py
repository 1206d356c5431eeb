"""Issue 12, class 3 (ABI part): hostile output structure ends in a typed error.

A skill whose output JSON nests 300, 1,000 or 100,000 levels deep, or holds one
array of 200,000 items, must end in :class:`OutputStructureError` everywhere a
call can be made: the kernel in-process, the kernel through the OS-sandboxed
worker, ``vak run`` (exit code and message, no traceback) and the MCP adapter
(a tool error, not a protocol failure). One row per hostile export.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vak.config import KernelConfig
from vak.errors import OutputStructureError
from vak.kernel import Kernel

EXPORTS = ["execute", "deep300", "deep100k", "objects", "wide"]


@pytest.fixture(scope="module")
def hostile_state(built_skills: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A demo workdir (real keys, policies, audit log) whose config also loads
    ``deepnest``, signed with the demo key."""
    from vak.demo import _local_server, prepare_workdir
    from vak.identity.keys import load_signing_key
    from vak.identity.signing import sign_skill

    workdir = tmp_path_factory.mktemp("deepnest-state")
    with _local_server() as port:
        config = prepare_workdir(workdir, port)
        skill = workdir / "deepnest"
        shutil.copytree(built_skills / "hostile" / "deepnest", skill)
        sign_skill(skill, load_signing_key(workdir / "keys" / "demo-signer.key"))
        text = config.read_text().replace(
            "skill_dirs = [", f"skill_dirs = [{json.dumps(str(skill))}, ", 1)
        config.write_text(text)
        yield config


@pytest.mark.parametrize("route", ["engine", "worker"])
@pytest.mark.parametrize("export", EXPORTS)
def test_kernel_returns_the_typed_error(hostile_state: Path, route: str, export: str) -> None:
    cfg = KernelConfig.from_toml(hostile_state).with_(force_worker=route == "worker")
    with Kernel(cfg) as kernel:
        with pytest.raises(OutputStructureError) as info:
            kernel.invoke(f"deepnest__{export}", {})
        assert info.value.to_dict()["error"] == "output_structure"
        assert kernel.invoke("calculator__execute",
                             {"operation": "add", "a": 1, "b": 1}).output == {"result": 2}


@pytest.mark.parametrize("export", ["execute", "deep100k"])
def test_vak_run_prints_a_message_not_a_traceback(hostile_state: Path, export: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vak.cli.main", "run", "--config", str(hostile_state),
         f"deepnest__{export}", "--input", "{}"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode not in (0, None)
    assert "Traceback" not in proc.stderr and "RecursionError" not in proc.stderr
    assert "nested deeper than 64 levels" in proc.stderr


def test_mcp_adapter_returns_a_tool_error(hostile_state: Path) -> None:
    pytest.importorskip("mcp")
    import anyio
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    async def session() -> list[Any]:
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "vak.cli.main", "mcp", "serve", "--config", str(hostile_state)])
        async with stdio_client(params) as (read, write), ClientSession(read, write) as s:
            await s.initialize()
            results = [await s.call_tool(f"deepnest__{e}", {}) for e in ("deep300", "execute")]
            results.append(await s.call_tool("calculator__execute",
                                             {"operation": "add", "a": 2, "b": 3}))
            return results

    deep300, deep1000, ok = anyio.run(session)
    for result in (deep300, deep1000):
        assert result.is_error
        assert json.loads(result.content[0].text)["error"] == "output_structure"
    assert not ok.is_error  # the server kept serving
