"""Concurrency: invoke throughput with 1, 2 and 4 threads; memory of 1,000 idle instances.

Throughput: bursts of ``Kernel.invoke("calculator__execute")`` spread over N
threads, alternated with bursts of the naive wasmtime-py path over the same N
threads; each burst gives one rate, the figure is the median rate. The machine
has few cores and the GIL serialises Python-side work, so the interesting part
is how the ratio moves with N (the kernel's group commit lets waiting threads
overlap).

Memory: see :mod:`benchmarks._idle_instances` (fresh subprocess per side).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

from benchmarks._fixtures import CALC_INPUT, REPO, naive_caller, signed_skill
from benchmarks._harness import Context, Figure, Sample, guarded, interleaved_rates, progress
from benchmarks.bench_kernel import TOOL, kernel

THREADS = (1, 2, 4)
IDLE = 1000


def figures(ctx: Context) -> list[Figure]:
    rows = [guarded(f"throughput, {n} thread(s)", partial(_throughput, ctx, n), target="info",
                    baseline_name=f"naive x{n}") for n in THREADS]
    rows.append(guarded(f"RSS of {IDLE:,} idle instances", partial(_idle, ctx), target="info",
                        baseline_name="default alloc"))
    return rows


def _burst(fn: Callable[[], Any], threads: int, per_thread: int) -> Callable[[], int]:
    def run() -> int:
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(per_thread):
                    fn()
            except BaseException as exc:  # surfaced below: a failed burst is not a rate
                errors.append(exc)

        pool = [threading.Thread(target=work) for _ in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        if errors:
            raise errors[0]
        return threads * per_thread

    return run


def _throughput(ctx: Context, threads: int) -> Figure:
    k = kernel(ctx)
    wasm = (signed_skill(ctx, "calculator") / "calculator.wasm").read_bytes()
    total = 300 if ctx.quick else 1200
    per_thread = max(1, total // threads)
    subject, baseline = interleaved_rates(
        _burst(lambda: k.invoke(TOOL, CALC_INPUT), threads, per_thread),
        _burst(naive_caller(wasm, "execute", CALC_INPUT), threads, per_thread),
        rounds=3 if ctx.quick else 5)
    one = ctx.cache.setdefault("throughput-1", subject.median_ns)
    return Figure(f"throughput, {threads} thread(s)", subject, baseline, f"naive x{threads}",
                  "info", None, unit="invokes/s",
                  note=f"kernel scaling vs 1 thread: {subject.median_ns / one:.2f}x; "
                       f"audit fsync {k.config.audit_fsync}, compact_invocations; "
                       f"{os.cpu_count()} CPUs")


def _idle(ctx: Context) -> Figure:
    pooled: list[float] = []
    default: list[float] = []
    for i in range(1 if ctx.quick else 3):
        for kind, out in (("pooled", pooled), ("default", default))[:: 1 if i % 2 == 0 else -1]:
            progress(f"  {kind}: {IDLE} instances in a fresh process")
            res = subprocess.run(
                [sys.executable, "-m", "benchmarks._idle_instances", kind, str(IDLE)],
                cwd=REPO, capture_output=True, text=True, timeout=300, check=True)
            out.append(float(res.stdout.strip()) / (1 << 20))
    return Figure(f"RSS of {IDLE:,} idle instances", Sample.of(pooled), Sample.of(default),
                  "default alloc", "info", None, unit="MiB",
                  note="no idle-instance API in the engine: measured as 1,000 Stores each "
                       "holding one InstancePre instance of the calculator, kept alive; "
                       "RSS growth in a fresh process per side")
