"""Figures for WebAssembly components (the ``vak:skill`` WIT world).

* warm invoke of the Python example (``pynotes.last``: one kv host call) and,
  when built, the JavaScript example against the core-module calculator, all
  through ``Engine.call`` (fresh store per call, fuel, epochs);
* restart load of the Python component from the keyed disk cache against a
  bare ``wasmtime.component.Component`` compile (target: at most 10% of it);
* RSS of one idle Python-component instance (a store with the instance alive).

Not measured here: Extism's ``Plugin.call`` on an equivalent plugin (the
kernel group measures it against the core calculator).
"""

from __future__ import annotations

import time
from typing import Any

import wasmtime
from wasmtime import component as wc

from benchmarks._fixtures import SKILLS, engine_settings, host_names, rss_bytes
from benchmarks._harness import Context, Figure, Sample, guarded, interleaved

_CALC_INPUT = b'{"operation":"add","a":1,"b":2}'


def figures(ctx: Context) -> list[Figure]:
    return [
        guarded("component warm invoke (Python)", lambda: _warm(ctx, "pynotes"),
                target="info", baseline_name="core calculator"),
        guarded("component warm invoke (JavaScript)", lambda: _warm(ctx, "jsfetch"),
                target="info", baseline_name="core calculator"),
        guarded("component restart load (cache)", lambda: _restart(ctx),
                target="<= 10% of compile", baseline_name="bare Component()"),
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


def _warm(ctx: Context, name: str) -> Figure:
    from vak.identity.manifest import Limits
    from vak.sandbox.engine import module_digest

    engine, digest, limits = _component(ctx, name)
    export, payload = ("last", b"{}") if name == "pynotes" else (
        "fetch", b'{"url":"http://127.0.0.1:9/"}')
    calc = (SKILLS / "calculator" / "calculator.wasm").read_bytes()
    calc_digest = module_digest(calc)
    engine.compile(calc, calc_digest)
    host = _Host()

    def component() -> None:
        engine.call(digest, export, payload, limits, host)

    def core() -> None:
        engine.call(calc_digest, "execute", _CALC_INPUT, Limits(), host)

    n = 30 if ctx.quick else 300
    subject, baseline = interleaved(component, core, iterations=n, warmup=5)
    fuel = engine.call(digest, export, payload, limits, host).fuel_used
    return Figure(f"component warm invoke ({'Python' if name == 'pynotes' else 'JavaScript'})",
                  subject, baseline, "core calculator", "info", None,
                  note=f"Engine.call: fresh store + instance per call, one host call; "
                       f"{fuel} fuel per call")


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


def _timed(fn: Any) -> float:
    t0 = time.perf_counter_ns()
    fn()
    return float(time.perf_counter_ns() - t0)


def _rss(ctx: Context) -> Figure:
    engine, digest, limits = _component(ctx, "pynotes")
    compiled = engine.compiled_component(digest)
    linker = wc.Linker(engine.wasmtime_engine)
    linker.add_wasip2()
    linker.define_unknown_imports_as_traps(compiled.component)
    stores = []
    before = rss_bytes()
    n = 5 if ctx.quick else 20
    for _ in range(n):
        store = wasmtime.Store(engine.wasmtime_engine)
        store.set_wasi(wasmtime.WasiConfig())
        store.set_fuel(limits.max_fuel)
        store.set_epoch_deadline(1 << 40)
        linker.instantiate(store, compiled.component)
        stores.append(store)
    per = (rss_bytes() - before) / n
    for store in stores:
        store.close()
    return Figure("idle Python component instance RSS", Sample.of([per]), None, "", "info",
                  None, unit="bytes",
                  note=f"RSS growth per live instance, mean of {n} (copy-on-write images: "
                       "pages touched by instantiation only)")
