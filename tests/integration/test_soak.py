"""Load: four threads of mixed benign and hostile calls, in constant memory.

Each thread cycles through benign calls (calculator, notes write + read) and
hostile ones (a busy loop stopped by its deadline, a memory bomb, an
out-of-bounds output pointer, an output over its limit, a 1,000-level nested
output). Every call must end with its output or a typed ``ToolCallError``;
the kernel's resident set, measured after a warm-up, must not grow by more
than 10 MiB over a 50 s window (the ``slow`` form, at least 60 s in all), or
proportionally less over the default bounded form's shorter window.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kernel_helpers import (
    DemoState,
    constant_output_wat,
    nested_output,
    signed_copy,
    verify,
    wat_skill,
)

from vak.config import KernelConfig
from vak.errors import ToolCallError
from vak.kernel import Kernel

MIB = 1 << 20
#: growth allowed over a 50 s window after warm-up (issue 12 "Load")
BUDGET_PER_50S = 10 * MIB


def _rss() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def _calls(thread: int) -> list[tuple[str, dict[str, Any], bool]]:
    """(tool, input, benign) in the order one thread cycles through them."""
    note = f"/workspace/soak-{thread}.txt"
    return [
        ("calculator__execute", {"operation": "add", "a": thread, "b": 2}, True),
        ("notes__write", {"path": note, "content": "soak " * 20}, True),
        ("notes__read", {"path": note}, True),
        ("membomb__execute", {}, False),
        ("calculator__execute", {"operation": "multiply", "a": 6, "b": 7}, True),
        ("oob__output", {}, False),
        ("hugeoutput__execute", {}, False),
        ("deep__execute", {}, False),
        ("notes__read", {"path": note}, True),
        ("loop__execute", {}, False),
    ]


def _soak(demo_state: DemoState, built_skills: Path, tmp_path: Path,
          seconds: float, warmup: float) -> None:
    hostile = built_skills / "hostile"
    extra = [signed_copy(demo_state, hostile / name, tmp_path / "skills")
             for name in ("membomb", "oob", "hugeoutput")]
    extra.append(wat_skill(demo_state, tmp_path / "skills", "deep",
                           constant_output_wat(nested_output(1000))))
    state = tmp_path / "state"
    cfg = KernelConfig.from_toml(demo_state.config).with_(
        skill_dirs=(*KernelConfig.from_toml(demo_state.config).skill_dirs, *extra),
        audit_log=state / "audit" / "vak.log", audit_key=state / "audit" / "log.key",
        audit_hmac_key=state / "audit" / "args.hmac", kv_path=state / "kv.sqlite3",
    )
    stop = threading.Event()
    counts: Counter[str] = Counter()
    failures: list[BaseException] = []
    lock = threading.Lock()

    def worker(kernel: Kernel, thread: int) -> None:
        try:
            for tool, payload, benign in itertools.cycle(_calls(thread)):
                if stop.is_set():
                    return
                try:
                    kernel.invoke(tool, payload)
                    outcome = "ok" if benign else "hostile-succeeded"
                except ToolCallError as exc:
                    name = type(exc).__name__
                    outcome = f"benign-failed-{name}" if benign else name
                with lock:
                    counts[outcome] += 1
        except BaseException as exc:  # anything else is a kernel fault: report it
            failures.append(exc)

    with Kernel(cfg) as kernel:
        threads = [threading.Thread(target=worker, args=(kernel, i), daemon=True)
                   for i in range(4)]
        for t in threads:
            t.start()
        t0 = time.monotonic()
        time.sleep(warmup)
        baseline = _rss()
        samples = []
        while time.monotonic() - t0 < seconds:
            time.sleep(0.5)
            samples.append(_rss())
        window = time.monotonic() - t0 - warmup
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not failures, failures
    assert counts["hostile-succeeded"] == 0, counts
    assert not [k for k in counts if k.startswith("benign-failed")], counts
    assert counts["ok"] > 0 and counts["MemoryLimitExceeded"] > 0, counts
    # the least of the last samples: a transient allocation is not growth
    growth = min(samples[-3:]) - baseline
    budget = BUDGET_PER_50S * window / 50
    print(f"soak: {sum(counts.values())} calls in {window + warmup:.0f} s, RSS {baseline / MIB:.1f}"
          f" -> {samples[-1] / MIB:.1f} MiB (growth {growth / MIB:.2f} MiB over {window:.0f} s,"
          f" budget {budget / MIB:.2f}); {dict(counts)}")
    assert growth < budget, (
        f"RSS grew {growth / MIB:.1f} MiB in {window:.0f} s after warm-up "
        f"(budget {budget / MIB:.1f} MiB); calls: {dict(counts)}")
    report = verify_state(state)
    assert report.result.name == "OK", report.render()


def verify_state(state: Path) -> Any:
    return verify(DemoState(state, state / "vak.toml", 0))


def test_soak_bounded(demo_state: DemoState, built_skills: Path, tmp_path: Path) -> None:
    _soak(demo_state, built_skills, tmp_path, seconds=15, warmup=5)


@pytest.mark.slow
@pytest.mark.long_form
def test_soak_60s(demo_state: DemoState, built_skills: Path, tmp_path: Path) -> None:
    """The full form (over a minute): run it with ``pytest -m slow``."""
    _soak(demo_state, built_skills, tmp_path, seconds=62, warmup=10)
