"""OS-sandboxed worker vs in-process, in one run (issue 6).

For a warm calculator invoke and a ``kvstore`` call that makes one host call
(``kv_get``, answered by a constant host handler in the parent), the same
``Runner.call`` is timed on the in-process :class:`vak.sandbox.engine.Engine`
and on a warm :class:`vak.sandbox.pool.WorkerPool`, interleaved call by call.
Target: the worker adds at most 0.5 ms per invoke (judged on the medians: on a
small shared VM a few cross-process wake-ups that land on a busy CPU dominate
the tail), and warm workers mean no process start on the hot path.

(Folded from the worker room's standalone script into the harness.)
"""

from __future__ import annotations

from functools import partial
from typing import Any

from benchmarks._fixtures import SKILLS, engine_settings, host_names
from benchmarks._harness import Context, Figure, guarded, interleaved

EXTRA_BUDGET_NS = 500_000
CASES = (
    ("worker invoke (calculator)", "calculator/calculator.wasm", "execute",
     b'{"operation":"add","a":1,"b":2}'),
    ("worker host call (kv_get)", "kvstore/kvstore.wasm", "get", b'{"key":"k"}'),
)


def _host(function: str, args: bytes) -> bytes:
    return b'{"value":"v"}'


def _parts(ctx: Context) -> tuple[Any, Any]:
    if "worker" not in ctx.cache:
        from vak.sandbox.engine import Engine
        from vak.sandbox.pool import WorkerPool
        from vak.sandbox.settings import WorkerSettings

        settings = engine_settings(ctx, "worker")
        engine = Engine(settings, host_names())
        pool = WorkerPool(WorkerSettings(pool_size=1), settings, host_names())
        ctx.cache.setdefault("closers", []).extend((pool.close, engine.close))
        ctx.cache["worker"] = (engine, pool)
    return ctx.cache["worker"]


def figures(ctx: Context) -> list[Figure]:
    return [guarded(case[0], partial(_case, ctx, *case), target="<= +0.5 ms",
                    baseline_name="in-process") for case in CASES]


def _case(ctx: Context, label: str, rel: str, export: str, data: bytes) -> Figure:
    from vak.identity.manifest import Limits
    from vak.sandbox.engine import module_digest

    engine, pool = _parts(ctx)
    wasm = (SKILLS / rel).read_bytes()
    digest = module_digest(wasm)
    engine.compile(wasm, digest)
    pool.register(digest, wasm)
    pool.wait_ready(digest)
    limits = Limits(max_host_calls=4)
    n = 200 if ctx.quick else 2000
    subject, baseline = interleaved(
        lambda: pool.call(digest, export, data, limits, _host),
        lambda: engine.call(digest, export, data, limits, _host),
        iterations=n, warmup=50)
    extra = subject.median_ns - baseline.median_ns
    b = pool.barriers() or {}
    ll, sc = b.get("landlock") or {}, b.get("seccomp") or {}
    active = (f"complete={b.get('complete')}, landlock abi {ll.get('abi')}, "
              f"seccomp={sc.get('available')}, missing={b.get('missing')}")
    return Figure(label, subject, baseline, "in-process", "<= +0.5 ms",
                  extra <= EXTRA_BUDGET_NS,
                  note=f"extra {extra / 1e3:.0f} us per call (medians); warm pool of 1 "
                       f"worker; barriers: {active}",
                  extra={"extra_ns": round(extra)})
