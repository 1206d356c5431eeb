"""Engine figures: cold load, cached load on restart, pooled instantiate, runaway deadline.

* cold load of a signed skill (signature + digest verification, validation,
  compile, link) vs a bare ``wasmtime.Module`` compile of the same bytes on an
  engine with the same settings;
* load on restart from the on-disk compiled-module cache vs the same bare compile;
* Store + ``InstancePre.instantiate``, pooling allocator (VAK's engine) vs
  wasmtime's default on-demand allocator with otherwise the same settings;
* runaway loop: how long after its ``max_execution_time_ms`` the call traps
  with the default ticker, vs the same loop on a plain wasmtime Store with an
  epoch deadline advanced by a naive ``sleep()`` ticker thread.

To time a *cold* compile again and again on one engine the benchmark forgets
the engine's in-memory module table between iterations (``Engine._modules``):
creating a pooling engine per iteration would measure engine start-up instead.
"""

from __future__ import annotations

import time
from typing import Any

import wasmtime

from benchmarks._fixtures import SKILLS, engine_settings, host_names, signed_skill
from benchmarks._harness import Context, Figure, Sample, guarded, interleaved, sample

LOOP_DEADLINE_MS = 20


def figures(ctx: Context) -> list[Figure]:
    return [
        guarded("cold load (verify+compile)", lambda: _cold_load(ctx, cached=False),
                target="info", baseline_name="bare Module()"),
        guarded("load on restart (cache)", lambda: _cold_load(ctx, cached=True),
                target="< bare compile", baseline_name="bare Module()"),
        guarded("store+instantiate pooled", lambda: _instantiate(ctx),
                target="< default alloc", baseline_name="default alloc"),
        guarded("runaway loop: deadline->trap", lambda: _runaway(ctx),
                target="<= 10 ms", baseline_name="bare epoch + ticker"),
    ]


def _engine(ctx: Context, name: str, **changes: Any) -> Any:
    from vak.sandbox.engine import Engine

    engine = Engine(engine_settings(ctx, name, **changes), host_names())
    ctx.cache.setdefault("closers", []).append(engine.close)
    return engine


def _cold_load(ctx: Context, *, cached: bool) -> Figure:
    from vak.identity.signing import verify_skill
    from vak.identity.trust import TrustStore

    skill = signed_skill(ctx, "calculator")
    trust = TrustStore.load(ctx.workdir / "trust.yaml")
    engine = _engine(ctx, f"load-{cached}", module_cache=cached)
    wasm = (skill / "calculator.wasm").read_bytes()
    raw = engine.wasmtime_engine

    def load() -> None:
        verified = verify_skill(skill, trust)
        engine._modules.pop(verified.module_sha256, None)  # forget: force a (re)load
        compiled = engine.compile(verified.module_bytes, verified.module_sha256)
        if compiled.from_cache != cached:
            raise AssertionError(f"expected from_cache={cached}, got {compiled.from_cache}")

    def bare() -> None:
        wasmtime.Module(raw, wasm)

    engine.compile(wasm, verify_skill(skill, trust).module_sha256)  # fills the disk cache
    n = 15 if ctx.quick else 60
    subject, baseline = interleaved(load, bare, iterations=n, warmup=3)
    ratio = subject.median_ns / baseline.median_ns
    verify = sample(lambda: verify_skill(skill, trust), iterations=n, warmup=3).median_ns
    note = (f"verify_skill ({verify / 1e6:.2f} ms of it) + Engine.compile (validate, "
            "import/export checks, InstancePre); disk cache off")
    if cached:
        note = (f"verify_skill ({verify / 1e6:.2f} ms of it) + Engine.compile served from "
                "the keyed on-disk cache")
    return Figure("load on restart (cache)" if cached else "cold load (verify+compile)",
                  subject, baseline, "bare Module()", "< bare compile" if cached else "info",
                  (ratio < 1) if cached else None, note=note)


def _instantiate(ctx: Context) -> Figure:
    engine = _engine(ctx, "instantiate")
    wasm = (SKILLS / "calculator" / "calculator.wasm").read_bytes()
    pooled = engine.wasmtime_engine
    cfg = wasmtime.Config()
    cfg.epoch_interruption = True
    cfg.consume_fuel = bool(engine.settings.fuel)
    default = wasmtime.Engine(cfg)

    def maker(raw: wasmtime.Engine) -> Any:
        pre = wasmtime.Linker(raw).instantiate_pre(wasmtime.Module(raw, wasm))

        def instantiate() -> None:
            store = wasmtime.Store(raw)
            pre.instantiate(store)

        return instantiate

    n = 300 if ctx.quick else 3000
    subject, baseline = interleaved(maker(pooled), maker(default), iterations=n, warmup=100)
    return Figure("store+instantiate pooled", subject, baseline, "default alloc",
                  "< default alloc", subject.median_ns < baseline.median_ns,
                  note="Store + InstancePre.instantiate of the calculator, same engine "
                       "settings, only the allocator differs")


def _runaway(ctx: Context) -> Figure:
    from vak.errors import SkillTimeout
    from vak.identity.manifest import Limits
    from vak.sandbox.engine import module_digest

    engine = _engine(ctx, "runaway")
    wasm = (SKILLS / "hostile" / "loop" / "loop.wasm").read_bytes()
    digest = module_digest(wasm)
    engine.compile(wasm, digest)
    limits = Limits(max_execution_time_ms=LOOP_DEADLINE_MS, max_fuel=2**62)
    tick = engine.settings.epoch_tick_ms
    deadline_ns = LOOP_DEADLINE_MS * 1_000_000
    late: list[float] = []
    bare_late: list[float] = []

    def runaway() -> None:
        t0 = time.perf_counter_ns()
        try:
            engine.call(digest, "execute", b"{}", limits, lambda fn, args: b"{}")
        except SkillTimeout:
            late.append(time.perf_counter_ns() - t0 - deadline_ns)
            return
        raise AssertionError("the runaway loop returned")

    bare_run = _bare_epoch_loop(wasm, tick, bare_late, deadline_ns)
    n = 8 if ctx.quick else 40
    runaway()
    late.clear()
    try:
        for i in range(n):
            for fn in (runaway, bare_run) if i % 2 == 0 else (bare_run, runaway):
                fn()
    finally:
        bare_run.stop()  # type: ignore[attr-defined]
    subject, baseline = Sample.of(late), Sample.of(bare_late)
    return Figure("runaway loop: deadline->trap", subject, baseline, "bare epoch + ticker",
                  "<= 10 ms", subject.p99_ns <= 10_000_000,
                  note=f"max_execution_time_ms={LOOP_DEADLINE_MS}, epoch tick {tick} ms; VAK "
                       "sets ceil(ms/tick)+1 ticks, the bare store ms/tick ticks advanced by "
                       "a plain sleep() thread; met judged on p99")


def _bare_epoch_loop(wasm: bytes, tick_ms: int, out: list[float], deadline_ns: int) -> Any:
    """The same loop on plain wasmtime: epoch deadline + a naive ticker thread."""
    import threading

    cfg = wasmtime.Config()
    cfg.epoch_interruption = True
    raw = wasmtime.Engine(cfg)
    module = wasmtime.Module(raw, wasm)
    stop = threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            time.sleep(tick_ms / 1000)
            raw.increment_epoch()

    thread = threading.Thread(target=ticker, daemon=True)
    thread.start()

    def run() -> None:
        store = wasmtime.Store(raw)
        store.set_epoch_deadline(LOOP_DEADLINE_MS // tick_ms)
        instance = wasmtime.Instance(store, module, [])
        func = instance.exports(store)["execute"]
        t0 = time.perf_counter_ns()
        try:
            func(store, 0, 2)
        except wasmtime.Trap:
            out.append(time.perf_counter_ns() - t0 - deadline_ns)
            return
        raise AssertionError("the bare runaway loop returned")

    def halt() -> None:
        stop.set()
        thread.join()

    run.stop = halt  # type: ignore[attr-defined]
    return run
