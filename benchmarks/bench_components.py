"""Figures for WebAssembly components (the ``vak:skill`` WIT world).

* warm invoke of the Python example (``pynotes.last``: one kv host call) and
  the JavaScript example (``jsfetch.fetch``: one http host call) through
  ``Engine.call`` (fresh store + instance per call, fuel, epochs), each
  against the core-module calculator and against the Extism Python SDK's
  ``Plugin.call`` on its echo plugin (:func:`benchmarks.bench_kernel.extism_caller`:
  one instance reused for every call, no policy, no audit);
* the Python example on a session's kept instance (``session_reuse``:
  ``Engine.call_resident``) against the same ``Plugin.call``: like Extism, no
  instantiation per call;
* restart load of the Python component from the keyed disk cache against a
  bare ``wasmtime.component.Component`` compile (target: at most 10% of it),
  and an OS-sandboxed worker's start (``WorkerPool.register`` to ready,
  served the compiled component from that cache) against the same compile;
* RSS of one idle Python-component instance (instantiated by
  ``Engine.open_resident``, the session path, and after one call).

The host handler answers like the mediation would but without Cedar or
audit: these are the engine's costs (the kernel group adds the rest).
"""

from __future__ import annotations

import time
from typing import Any

from wasmtime import component as wc

from benchmarks._fixtures import SKILLS, engine_settings, host_names, rss_bytes
from benchmarks._harness import Context, Figure, Sample, guarded, interleaved

_CALC_INPUT = b'{"operation":"add","a":1,"b":2}'


_LANG = {"pynotes": "Python", "jsfetch": "JavaScript"}
_EXTISM = "extism Plugin.call"


def figures(ctx: Context) -> list[Figure]:
    rows = []
    for name, lang in _LANG.items():
        rows += [
            guarded(f"component warm invoke ({lang})", lambda n=name: _warm(ctx, n),
                    target="info", baseline_name="core calculator"),
            guarded(f"component warm invoke ({lang}) vs Extism",
                    lambda n=name: _vs_extism(ctx, n), target="info", baseline_name=_EXTISM),
        ]
    return [
        *rows,
        guarded("component session reuse (Python) vs Extism", lambda: _reuse(ctx),
                target="info", baseline_name=_EXTISM),
        guarded("component restart load (cache)", lambda: _restart(ctx),
                target="<= 10% of compile", baseline_name="bare Component()"),
        guarded("component worker start (cache)", lambda: _worker_start(ctx),
                target="info", baseline_name="bare Component()"),
        guarded("idle Python component instance RSS", lambda: _rss(ctx),
                target="info", baseline_name=""),
    ]


def _engine(ctx: Context) -> Any:
    """One engine for the group (components compile once; the cache keeps them)."""
    engine = ctx.cache.get("component-engine")
    if engine is None:
        from vak.sandbox.engine import Engine

        engine = Engine(engine_settings(ctx, "components"), host_names())
        ctx.cache["component-engine"] = engine
        ctx.cache.setdefault("closers", []).append(engine.close)
    return engine


def _component(ctx: Context, name: str) -> tuple[Any, str, Any]:
    import yaml

    from vak._resources import example_dir
    from vak.identity.manifest import Limits
    from vak.sandbox.engine import module_digest

    skill = example_dir(name)
    raw = yaml.safe_load((skill / "skill.yaml").read_text())
    data = (skill / raw["module"]["path"]).read_bytes()
    engine = _engine(ctx)
    digest = module_digest(data)
    engine.compile_component(data, digest)
    return engine, digest, Limits(**raw["limits"])


class _Host:
    """Answers like the mediation would, without Cedar or audit (engine cost only)."""

    def __call__(self, function: str, args: bytes) -> bytes:
        if function == "kv_get":
            return b'{"found":false}'
        if function == "http_request":
            return b'{"status":200,"headers":{},"body":"ok","truncated":false}'
        return b'{"ok":true}'

    def refuse(self, function: str, policy_id: str, reason: str) -> BaseException:
        return RuntimeError(reason)


def _calls(ctx: Context, name: str) -> tuple[Any, Any]:
    """``(one warm component call, its fuel)`` for example ``name``."""
    engine, digest, limits = _component(ctx, name)
    export, payload = ("last", b"{}") if name == "pynotes" else (
        "fetch", b'{"url":"http://127.0.0.1:9/"}')
    host = _Host()

    def component() -> None:
        engine.call(digest, export, payload, limits, host)

    return component, engine.call(digest, export, payload, limits, host).fuel_used


def _iterations(ctx: Context) -> int:
    return 30 if ctx.quick else 300


def _warm(ctx: Context, name: str) -> Figure:
    from vak.identity.manifest import Limits
    from vak.sandbox.engine import module_digest

    component, fuel = _calls(ctx, name)
    engine = _engine(ctx)
    calc = (SKILLS / "calculator" / "calculator.wasm").read_bytes()
    calc_digest = module_digest(calc)
    engine.compile(calc, calc_digest)
    host = _Host()

    def core() -> None:
        engine.call(calc_digest, "execute", _CALC_INPUT, Limits(), host)

    subject, baseline = interleaved(component, core, iterations=_iterations(ctx), warmup=5)
    return Figure(f"component warm invoke ({_LANG[name]})", subject, baseline,
                  "core calculator", "info", None,
                  note=f"Engine.call: fresh store + instance per call, one host call; "
                       f"{fuel} fuel per call")


def _vs_extism(ctx: Context, name: str) -> Figure:
    from benchmarks.bench_kernel import extism_caller

    component, _ = _calls(ctx, name)
    subject, baseline = interleaved(component, extism_caller(), iterations=_iterations(ctx),
                                    warmup=5)
    return Figure(f"component warm invoke ({_LANG[name]}) vs Extism", subject, baseline,
                  _EXTISM, "info", None,
                  note="Engine.call (fresh store + instance, one host call) against Extism's "
                       "echo plugin on one reused instance: an interpreter's call against "
                       "a minimal core-module plugin")


def _reuse(ctx: Context) -> Figure:
    from benchmarks.bench_kernel import extism_caller

    engine, digest, limits = _component(ctx, "pynotes")
    host = _Host()
    resident = engine.open_resident(digest, limits)
    ctx.cache.setdefault("closers", []).append(resident.close)

    def kept() -> None:
        engine.call_resident(resident, "last", b"{}", limits, host)

    subject, baseline = interleaved(kept, extism_caller(), iterations=_iterations(ctx),
                                    warmup=5)
    return Figure("component session reuse (Python) vs Extism", subject, baseline, _EXTISM,
                  "info", None,
                  note="Engine.call_resident on one kept instance (session_reuse), one "
                       "host call; Extism also reuses one instance")


def _restart(ctx: Context) -> Figure:
    from vak.sandbox.engine import Engine

    engine, digest, _ = _component(ctx, "pynotes")  # fills the disk cache
    from vak._resources import example_dir

    data = (example_dir("pynotes") / "pynotes.wasm").read_bytes()
    settings = engine_settings(ctx, "components")
    raw = engine.wasmtime_engine

    def restart() -> None:
        again = Engine(settings, host_names())
        try:
            if not again.compile_component(data, digest).from_cache:
                raise AssertionError("expected a cache hit")
        finally:
            again.close()

    def bare() -> None:
        wc.Component(raw, data)

    loads = [_timed(restart) for _ in range(3 if ctx.quick else 10)]
    compiles = [_timed(bare) for _ in range(1 if ctx.quick else 3)]
    subject, baseline = Sample.of(loads), Sample.of(compiles)
    ratio = subject.median_ns / baseline.median_ns
    return Figure("component restart load (cache)", subject, baseline, "bare Component()",
                  "<= 10% of compile", ratio <= 0.10,
                  note=f"{ratio:.1%} of a compile; a new Engine (self-test, linker) + "
                       "keyed cache read + deserialize of the 18 MB Python component")


def _worker_start(ctx: Context) -> Figure:
    from vak._resources import example_dir
    from vak.sandbox.pool import WorkerPool
    from vak.sandbox.settings import WorkerSettings

    _, digest, _ = _component(ctx, "pynotes")  # fills the disk cache
    data = (example_dir("pynotes") / "pynotes.wasm").read_bytes()
    settings = engine_settings(ctx, "components")
    workers = WorkerSettings(pool_size=1, start_timeout_ms=180_000, allow_unsandboxed=True)

    def start() -> None:
        with WorkerPool(workers, settings, host_names()) as pool:
            pool.register(digest, data)
            pool.wait_ready(digest, 1, timeout=180)

    def bare() -> None:
        wc.Component(_engine(ctx).wasmtime_engine, data)

    starts = [_timed(start) for _ in range(2 if ctx.quick else 5)]
    compiles = [_timed(bare) for _ in range(1 if ctx.quick else 3)]
    subject, baseline = Sample.of(starts), Sample.of(compiles)
    return Figure("component worker start (cache)", subject, baseline, "bare Component()",
                  "info", None,
                  note=f"{subject.median_ns / baseline.median_ns:.1%} of a compile: a "
                       "Landlock+seccomp worker process started and handed the compiled "
                       "component from the parent's keyed cache (before: it compiled it)")


def _timed(fn: Any) -> float:
    t0 = time.perf_counter_ns()
    fn()
    return float(time.perf_counter_ns() - t0)


def _rss(ctx: Context) -> Figure:
    engine, digest, limits = _component(ctx, "pynotes")
    host = _Host()
    n = 5 if ctx.quick else 20
    before = rss_bytes()
    residents = [engine.open_resident(digest, limits) for _ in range(n)]
    idle = (rss_bytes() - before) / n
    for resident in residents:
        engine.call_resident(resident, "last", b"{}", limits, host)
    called = (rss_bytes() - before) / n
    for resident in residents:
        resident.close()
    return Figure("idle Python component instance RSS", Sample.of([idle]), None, "", "info",
                  None, unit="bytes",
                  note=f"RSS growth per live instance (Engine.open_resident, the session "
                       f"path), mean of {n}: {idle / 1024:.0f} KiB instantiated, "
                       f"{called / 1024:.0f} KiB after one call (copy-on-write images: "
                       "only pages touched count)")
