"""Session reuse through ``vak serve``: the kernel session of a call is its MCP session,
and the session stays on its worker, so guest state persists within a session only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

from kernel_helpers import DemoState, counter_skill
from serve_helpers import run, served_workdir, with_session

from vak.serve.process import ServeProcess


def test_each_mcp_session_keeps_its_own_instance_on_its_worker(demo_state: DemoState,
                                                               tmp_path: Path) -> None:
    workdir = served_workdir(demo_state, tmp_path / "reuse", "reuse")
    counter = counter_skill(demo_state, tmp_path / "skills")
    text = workdir.config.read_text().replace("skill_dirs = [", f'skill_dirs = ["{counter}", ')
    workdir.config.write_text("session_reuse = true\n" + text)

    async def three(session: Any) -> list[int]:
        out = []
        for _ in range(3):
            r = await session.call_tool("counter__execute", {})
            assert not r.is_error, r
            out.append(r.structured_content["n"])
        return out

    with ServeProcess.start(workdir.config, workers=2, token_file=workdir.tokens) as srv:
        runs = [run(lambda: with_session(srv.url, workdir.alice, three)) for _ in range(4)]
    assert runs == [[1, 2, 3]] * 4  # state persists within a session, never across
