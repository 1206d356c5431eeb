"""``vak serve --workers 2`` under steady load from real MCP clients, in flat memory.

Four sessions call the calculator and the notes skill (a host call each) in a
loop; the resident set of every server process (the front and each worker)
is sampled after a warm-up and must not grow by more than its budget. The
default form runs about 20 s; the ``slow`` form 10 minutes.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import anyio
import psutil
import pytest

pytest.importorskip("mcp")

from kernel_helpers import DemoState
from serve_helpers import Ack, call_loop, served_workdir, verify_json

from vak.serve.process import ServeProcess

MIB = 1 << 20


def _soak(demo: DemoState, root: Path, seconds: float, warmup: float, budget: int) -> None:
    workdir = served_workdir(demo, root, "soak")
    srv = ServeProcess.start(workdir.config, workers=2, token_file=workdir.tokens,
                             extra=("--log-level", "warning"))
    acks: list[Ack] = []
    stop = threading.Event()

    async def load() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(4):
                tool, args = (("calculator__execute", {"operation": "add", "a": i, "b": 1})
                              if i % 2 else ("notes__read", {"path": "/workspace/hello.txt"}))
                tg.start_soon(call_loop, srv.url, workdir.alice, tool, args, stop.is_set, acks)

    thread = threading.Thread(target=anyio.run, args=(load,), daemon=True)
    try:
        thread.start()
        time.sleep(warmup)
        procs = [psutil.Process(pid) for pid in srv.pids]
        base = [p.memory_info().rss for p in procs]
        peak = list(base)
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds - warmup:
            time.sleep(min(5.0, seconds / 10))
            peak = [max(a, p.memory_info().rss) for a, p in zip(peak, procs, strict=True)]
        calls = len(acks)
    finally:
        stop.set()
        thread.join(30)
        code = srv.stop(signal.SIGTERM)
    assert code == 0
    assert calls > 50 and all(a.error is None for a in acks), acks[-1:]
    growth = [(p - b) / MIB for p, b in zip(peak, base, strict=True)]
    print(f"serve soak: {calls} calls in {seconds:.0f} s, RSS base MiB "
          f"{[round(b / MIB, 1) for b in base]}, growth MiB {[round(g, 2) for g in growth]}")
    assert max(growth) <= budget / MIB, f"RSS growth MiB per process: {growth}"
    for i, log in enumerate(srv.logs):
        assert verify_json(log, workdir.worker_pin(i))["result"] == "OK"


def test_serve_soak_bounded(demo_state: DemoState, tmp_path: Path) -> None:
    _soak(demo_state, tmp_path, seconds=20, warmup=6, budget=12 * MIB)


@pytest.mark.slow
@pytest.mark.long_form
def test_serve_soak_ten_minutes(demo_state: DemoState, tmp_path: Path) -> None:
    _soak(demo_state, tmp_path, seconds=600, warmup=60, budget=24 * MIB)
