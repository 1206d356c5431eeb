"""Warm ``Kernel.invoke`` of ``calculator__execute`` end to end, against raw paths.

Subjects:

* ``Kernel.invoke`` end to end: input schema, two audit entries under
  ``batched`` fsync (durable within the batch window by the group commit), a
  fresh pooled instance, output schema;
* ``Engine.call`` alone (fresh pooled instance, no schemas, no audit), the
  issue-3 figure.

Baselines, measured interleaved in the same run:

* the naive wasmtime-py path (:func:`benchmarks._fixtures.naive_caller`);
* the Extism Python SDK's ``Plugin.call`` on an equivalent plugin: it reads
  the same input JSON through Extism's kernel and writes it back as output,
  and the host decodes that JSON, as the kernel does with the calculator's.
  Extism reuses one instance for every call and does no validation, policy or
  audit. The guest work differs only in the calculator's own JSON parsing,
  which is on VAK's side of the ratio; both hosts encode the input and decode
  the output with orjson.

The kernel rows run with ``compact_invocations`` on (one combined audit entry
for a call that makes no host call, docs/AUDIT-FORMAT.md); "two entries" is
the default shape, for comparison.
"""

from __future__ import annotations

from typing import Any

import orjson
import wasmtime

from benchmarks._fixtures import CALC_INPUT, kernel_config, naive_caller, signed_skill
from benchmarks._harness import Context, Figure, guarded, interleaved

#: an Extism plugin that copies its input to its output, byte by byte, via extism:host/env
EXTISM_ECHO_WAT = r"""
(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (func (export "execute") (result i32)
    (local $n i64) (local $off i64) (local $i i64)
    (local.set $n (call $input_length))
    (local.set $off (call $alloc (local.get $n)))
    (block $done (loop $next
      (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
      (call $store_u8 (i64.add (local.get $off) (local.get $i))
                      (call $input_load_u8 (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $next)))
    (call $output_set (local.get $off) (local.get $n))
    (i32.const 0)))
"""

TOOL = "calculator__execute"


def kernel(ctx: Context) -> Any:
    """The run's kernel with the signed calculator loaded (shared with concurrency)."""
    if "kernel" not in ctx.cache:
        from vak.kernel import Kernel

        cfg = kernel_config(ctx, "kernel", audit_fsync="batched:5", compact_invocations=True,
                            skill_dirs=(signed_skill(ctx, "calculator"),))
        k = Kernel(cfg)
        ctx.cache.setdefault("closers", []).append(k.close)
        ctx.cache["kernel"] = k
    return ctx.cache["kernel"]


def extism_caller() -> Any:
    """``Plugin.call`` on the echo plugin, decoding the JSON it returns."""
    import extism

    plugin = extism.Plugin(bytes(wasmtime.wat2wasm(EXTISM_ECHO_WAT)), wasi=False)

    def call() -> Any:
        return orjson.loads(plugin.call("execute", orjson.dumps(CALC_INPUT)))

    if call() != CALC_INPUT:
        raise AssertionError("the Extism echo plugin did not echo its input")
    return call


def _calc_wasm(ctx: Context) -> bytes:
    return (signed_skill(ctx, "calculator") / "calculator.wasm").read_bytes()


def _invoke(ctx: Context) -> Any:
    k = kernel(ctx)

    def call() -> Any:
        return k.invoke(TOOL, CALC_INPUT).output

    if call() != {"result": 3}:
        raise AssertionError("calculator__execute did not return {'result': 3}")
    return call


def figures(ctx: Context) -> list[Figure]:
    n = 300 if ctx.quick else 2000
    return [
        guarded("engine call (no audit) vs naive", lambda: _engine_vs_naive(ctx, n),
                target="<= 0.5x naive", baseline_name="naive wasmtime-py"),
        guarded("kernel invoke vs naive", lambda: _pair(
            ctx, "kernel invoke vs naive", _invoke(ctx), "naive wasmtime-py",
            naive_caller(_calc_wasm(ctx), "execute", CALC_INPUT), "< 1x", 1.0, n),
            target="< 1x", baseline_name="naive wasmtime-py"),
        guarded("kernel invoke vs Extism", lambda: _pair(
            ctx, "kernel invoke vs Extism", _invoke(ctx), "extism Plugin.call",
            extism_caller(), "<= 1.5x", 1.5, n),
            target="<= 1.5x", baseline_name="extism Plugin.call"),
        guarded("kernel invoke, session reuse vs Extism", lambda: _session_reuse(ctx, n),
                target="<= 1.0x", baseline_name="extism Plugin.call"),
        guarded("kernel invoke, two entries vs Extism", lambda: _two_entries(ctx, n),
                target="info", baseline_name="extism Plugin.call"),
    ]


def _two_entries(ctx: Context, n: int) -> Figure:
    """The default audit shape (invocation_started + invocation_finished), for comparison."""
    from vak.kernel import Kernel

    cfg = kernel_config(ctx, "kernel-two", audit_fsync="batched:5",
                        skill_dirs=(signed_skill(ctx, "calculator"),))
    k = Kernel(cfg)
    ctx.cache.setdefault("closers", []).append(k.close)
    s, b = interleaved(lambda: k.invoke(TOOL, CALC_INPUT).output, extism_caller(),
                       iterations=n, warmup=min(100, n // 3))
    return Figure("kernel invoke, two entries vs Extism", s, b, "extism Plugin.call", "info",
                  None, note="as 'kernel invoke vs Extism' with compact_invocations off (the "
                             "default): invocation_started and invocation_finished entries")


def _session_reuse(ctx: Context, n: int) -> Figure:
    """The opt-in per-session reuse mode: one live instance, like Extism's."""
    from vak.kernel import Kernel

    cfg = kernel_config(ctx, "kernel-reuse", audit_fsync="batched:5", session_reuse=True,
                        compact_invocations=True, skill_dirs=(signed_skill(ctx, "calculator"),))
    k = Kernel(cfg)
    ctx.cache.setdefault("closers", []).append(k.close)
    s, b = interleaved(lambda: k.invoke(TOOL, CALC_INPUT, session="bench").output,
                       extism_caller(), iterations=n, warmup=min(100, n // 3))
    return Figure("kernel invoke, session reuse vs Extism", s, b, "extism Plugin.call",
                  "<= 1.0x", s.median_ns / b.median_ns <= 1.0,
                  note="KernelConfig(session_reuse=True, compact_invocations=True), one "
                       "session: one reused instance on both sides; one combined audit entry "
                       "handed to the OS (write(2)) before the call returns, fsync batched:5")


def _pair(ctx: Context, name: str, subject: Any, baseline_name: str, baseline: Any,
          target: str, limit: float, n: int) -> Figure:
    s, b = interleaved(subject, baseline, iterations=n, warmup=min(100, n // 3))
    ratio = s.median_ns / b.median_ns
    fsync = kernel(ctx).config.audit_fsync
    met = ratio <= limit if target.startswith("<=") else ratio < limit
    return Figure(name, s, b, baseline_name, target, met,
                  note=f"Kernel.invoke: input+output schemas, one combined "
                       f"invocation_finished entry (compact_invocations; fsync {fsync}) "
                       "handed to the OS before returning, fresh pooled instance; Extism "
                       "reuses one instance")


def _engine_vs_naive(ctx: Context, n: int) -> Figure:
    from vak.sandbox.engine import module_digest

    k = kernel(ctx)
    engine = k._engine  # the kernel's own engine: same pool, ticker, limits
    wasm = _calc_wasm(ctx)
    digest = module_digest(wasm)
    tool_limits = k.skills()[0].manifest.limits
    data = orjson.dumps(CALC_INPUT)

    def call() -> Any:
        return orjson.loads(engine.call(digest, "execute", data, tool_limits,
                                        lambda fn, args: b"{}").output)

    s, b = interleaved(call, naive_caller(wasm, "execute", CALC_INPUT), iterations=n,
                       warmup=min(100, n // 3))
    ratio = s.median_ns / b.median_ns
    return Figure("engine call (no audit) vs naive", s, b, "naive wasmtime-py",
                  "<= 0.5x naive", ratio <= 0.5,
                  note="Engine.call on a fresh pooled instance with fuel and epoch "
                       "deadline; naive = default Engine, no fuel/deadline")
