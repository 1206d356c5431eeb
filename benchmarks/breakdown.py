"""``python -m benchmarks.breakdown [--quick]``: where the time of the hot paths goes.

The ratio table says *whether* a target is met; this says *why not*. Each hot
path (session-reuse invoke, fresh invoke, batched append, decision-cache hit)
is timed in this thread's CPU time (``time.thread_time_ns``: scheduling noise
of a shared machine and the log's background committer are left out), then
timed again with one part replaced by a no-op; the difference is that part's
cost. The parts are measured one at a time, so the rows of one path need not
add up exactly to its total. Nothing here is a benchmark figure or a target:
it is the profile behind the README's "targets missed" notes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import count
from pathlib import Path
from typing import Any

from benchmarks._harness import Context

__all__ = ["cpu_ns", "main"]


def cpu_ns(fn: Callable[[], object], n: int, rounds: int = 5) -> float:
    """Median over ``rounds`` of this thread's CPU nanoseconds per call of ``fn``."""
    for _ in range(min(n, 200)):
        fn()
    per: list[float] = []
    for _ in range(rounds):
        t0 = time.thread_time_ns()
        for _ in range(n):
            fn()
        per.append((time.thread_time_ns() - t0) / n)
    return sorted(per)[rounds // 2]


@contextmanager
def _replaced(obj: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


class _NoHash:
    """Stands in for the leaf-hash prefix: copy/update/digest that do nothing."""

    def copy(self) -> _NoHash:
        return self

    def update(self, data: object) -> None:
        return None

    def digest(self) -> bytes:
        return b"\x00" * 32


def _rows(title: str, total: float, parts: list[tuple[str, float]]) -> list[str]:
    out = [f"{title}: {total / 1000:.1f} us CPU per call"]
    for name, ns in parts:
        out.append(f"  {name:<62} {ns / 1000:6.1f} us  {100 * ns / total:4.0f}%")
    return out


def _invoke(ctx: Context, n: int) -> list[str]:
    from benchmarks._fixtures import kernel_config, signed_skill
    from benchmarks.bench_kernel import extism_caller
    from vak.kernel import Kernel

    calc = (signed_skill(ctx, "calculator"),)
    reuse_k = Kernel(kernel_config(ctx, "bd-reuse", audit_fsync="batched:5", session_reuse=True,
                                   compact_invocations=True, skill_dirs=calc))
    fresh_k = Kernel(kernel_config(ctx, "bd-fresh", audit_fsync="batched:5",
                                   compact_invocations=True, skill_dirs=calc))
    ctx.cache.setdefault("closers", []).extend([reuse_k.close, fresh_k.close])
    extism = cpu_ns(extism_caller(), n)
    out = [f"extism Plugin.call (echo plugin, one reused instance): {extism / 1000:.1f} us CPU",
           ""]
    for label, k, session in (("session-reuse invoke", reuse_k, "bd"),
                              ("fresh-instance invoke", fresh_k, None)):
        out += [*_invoke_rows(label, k, session, extism, n), ""]
    return out


def _invoke_rows(label: str, k: Any, session: str | None, extism: float, n: int) -> list[str]:
    import orjson

    import vak.audit.log as audit_log
    from benchmarks._fixtures import CALC_INPUT
    from benchmarks.bench_kernel import TOOL
    from vak.audit.sink import AuditRef
    from vak.kernel import _LazyHost

    tool = k._registry.get(TOOL)
    skill = tool.skill
    data = orjson.dumps(CALC_INPUT)
    host = _LazyHost(k._mediator, tool, "bd", session)
    sessions = k._sessions
    runner = k._engine

    def call() -> object:
        return k.invoke(TOOL, CALC_INPUT, session=session).output

    def engine() -> object:
        if session is not None and sessions is not None:
            return sessions.call(session, skill.name, skill.module_sha256, tool.spec.export,
                                 data, skill.manifest.limits, host)
        return runner.call(skill.module_sha256, tool.spec.export, data, skill.manifest.limits,
                           host)

    ref = AuditRef(0, "00" * 32)
    total = cpu_ns(call, n)
    with _replaced(audit_log, "_write", lambda fd, data: len(data)):
        no_write = cpu_ns(call, n)
    with _replaced(k.audit, "append", lambda *a, **kw: ref):
        no_append = cpu_ns(call, n)
        with _replaced(k.audit, "args_digest", lambda data: "hmac-sha256:"):
            no_audit = cpu_ns(call, n)
    wasm = cpu_ns(engine, n)
    return _rows(f"{label} ({total / extism:.2f}x Extism's CPU)", total, [
        ("engine: store/instance, fuel, deadline, guest call, ABI", wasm),
        ("kernel: validation, JSON, routing, result (no audit)", no_audit - wasm),
        ("audit: one combined entry (encode, check, hash, buffer)",
         (total - no_append) - (total - no_write)),
        ("audit: write(2) of the entry before returning", total - no_write),
        ("audit: input and output HMACs", no_append - no_audit),
    ])


def _append(ctx: Context, n: int) -> list[str]:
    import vak.audit.log as audit_log
    from benchmarks.bench_audit import _line, _open, fields

    log = _open(ctx, "bd-append", "batched:5")
    bare_file = (ctx.workdir / "audit" / "bd-bare.log").open("ab", buffering=1 << 16)
    ctx.cache.setdefault("closers", []).append(bare_file.close)
    a, b = count(), count()

    def append() -> object:
        return log.append("host_decision", fields(next(a)))

    bare = cpu_ns(lambda: bare_file.write(_line(next(b))), n)
    total = cpu_ns(append, n)
    with _replaced(audit_log, "needs_exact", lambda f: False):
        no_walk = cpu_ns(append, n)
    with _replaced(audit_log, "_LEAF_PREFIX", _NoHash()):
        no_hash = cpu_ns(append, n)
    with _replaced(audit_log, "_write", lambda fd, data: len(data)):
        no_write = cpu_ns(append, n)
    return [*_rows(f"batched append ({total / bare:.2f}x the bare buffered write's CPU, "
                   f"{bare / 1000:.1f} us)", total, [
        ("what the baseline does too: fields, orjson, buffered write", bare),
        ("canonical-profile walk (floats, exotic types, depth)", total - no_walk),
        ("RFC 9162 leaf hash (SHA-256)", total - no_hash),
        ("write(2) every 64 KiB, amortised", total - no_write),
        ("rest: lock, header, seq/prev/time, buffers, AuditRef",
         total - bare - (total - no_walk) - (total - no_hash) - (total - no_write)),
    ]), ""]


def _hit(ctx: Context, n: int) -> list[str]:
    from benchmarks.bench_mediation import _setup

    s = _setup(ctx)
    log = s["log"]
    total = cpu_ns(s["hit"], n)
    bare = cpu_ns(s["bare"], max(50, n // 4))
    from vak.audit.sink import AuditRef

    ref = AuditRef(0, "00" * 32)
    with _replaced(log, "append", lambda *a, **kw: ref):
        no_append = cpu_ns(s["hit"], n)
    return [*_rows(f"decision-cache hit ({total / bare:.2f}x bare cedarpy + one append's "
                   f"CPU, {bare / 1000:.1f} us)", total, [
        ("mediation: count, memo, cache lookup, labels, stubbed effect", no_append),
        ("audit: host_decision + host_result entries and result HMAC", total - no_append),
    ]), ""]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.breakdown", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer calls per measurement")
    args = ap.parse_args(argv)
    from benchmarks.__main__ import close_all

    n = 500 if args.quick else 5000
    with tempfile.TemporaryDirectory(prefix="vak-breakdown-") as tmp:
        ctx = Context(quick=args.quick, workdir=Path(tmp))
        try:
            lines = [*_invoke(ctx, n), *_append(ctx, n * 4), *_hit(ctx, n)]
        finally:
            close_all(ctx)
    print("\n".join(lines).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
