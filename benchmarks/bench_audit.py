"""Audit log throughput, as ratios against raw baselines measured in the same run.

* ``AuditLog.append`` under ``batched`` fsync (no wait) vs a bare buffered
  write of the same canonical line (orjson with sorted keys: the encoding is in
  the baseline too); target within 2x;
* ``AuditLog.append(durable=True)`` under ``strict`` fsync vs a bare write +
  ``fsync`` of the same line;
* ``verify_log`` (hash chain, Merkle root, signed checkpoints) in entries per
  second vs bare SHA-256 over the same lines; target at least 150,000/s.

Run alone with ``python -m benchmarks --only audit`` (formerly a standalone
script by the audit room; its measurements are kept, now interleaved).
"""

from __future__ import annotations

import os
from hashlib import sha256
from itertools import count
from pathlib import Path
from typing import Any

import orjson

from benchmarks._harness import Context, Figure, guarded, interleaved, interleaved_rates

SKILL = {"id": "calc", "version": "1.0.0", "manifest_digest": "sha256:" + "ab" * 32,
         "signer": "a1b2c3d4"}
VERIFY_TARGET = 150_000
_ORJSON = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE


def fields(i: int) -> dict[str, Any]:
    """A realistic host-decision entry body (the same for VAK and the baseline)."""
    return {
        "invocation": f"inv-{i // 4}", "session": "s-1", "skill": SKILL,
        "host_function": "fs_read", "resource": "/workspace/data/file.txt",
        "args_hmac": "ab" * 32,
        "decision": {"effect": "allow", "policy_ids": ["base-fs-read"],
                     "policy_set": "sha256:" + "cd" * 32},
    }


def _line(i: int) -> bytes:
    e = fields(i)
    e.update(v=1, origin="bench/k", seq=i, time="2026-01-01T00:00:00.000000Z",
             kind="host_decision", prev="00" * 32)
    return orjson.dumps(e, option=_ORJSON)


def _open(ctx: Context, name: str, fsync: str) -> Any:
    from vak.audit.log import AuditLog

    root = ctx.workdir / "audit" / name
    log = AuditLog.open(root / "vak.log", key_path=root / "log.key", origin="bench.vak/audit",
                        fsync=fsync)
    ctx.cache.setdefault("closers", []).append(log.close)
    return log


def figures(ctx: Context) -> list[Figure]:
    return [
        guarded("audit append, batched", lambda: _append_batched(ctx), target="<= 2x",
                baseline_name="bare buffered write"),
        guarded("audit append, strict", lambda: _append_strict(ctx), target="info",
                baseline_name="bare write+fsync"),
        guarded("audit verify", lambda: _verify(ctx), target=">= 150,000/s",
                baseline_name="bare sha256"),
    ]


def _append_batched(ctx: Context) -> Figure:
    log = _open(ctx, "batched", "batched:5")
    out = (ctx.workdir / "audit" / "bare-buffered.log").open("ab", buffering=1 << 16)
    ctx.cache.setdefault("closers", []).append(out.close)
    a, b = count(), count()
    subject, baseline = interleaved(
        lambda: log.append("host_decision", fields(next(a))),
        lambda: out.write(_line(next(b))),
        iterations=3000 if ctx.quick else 30_000, warmup=200)
    ratio = subject.median_ns / baseline.median_ns
    return Figure("audit append, batched", subject, baseline, "bare buffered write",
                  "<= 2x", ratio <= 2.0,
                  note="AuditLog.append(durable=False) under batched:5; the baseline also "
                       "encodes the line with orjson sorted keys")


def _append_strict(ctx: Context) -> Figure:
    log = _open(ctx, "strict", "strict")
    fd = os.open(ctx.workdir / "audit" / "bare-fsync.log",
                 os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    ctx.cache.setdefault("closers", []).append(lambda: os.close(fd))
    a, b = count(), count()

    def bare() -> None:
        os.write(fd, _line(next(b)))
        os.fsync(fd)

    subject, baseline = interleaved(
        lambda: log.append("host_decision", fields(next(a)), durable=True), bare,
        iterations=60 if ctx.quick else 400, warmup=10)
    return Figure("audit append, strict", subject, baseline, "bare write+fsync", "info", None,
                  note="durable append: returns after fsync (and a signed checkpoint when "
                       "the interval has passed)")


def _verify(ctx: Context) -> Figure:
    from vak.audit.keys import load_trusted_keys
    from vak.audit.verify import verify_log

    n = 10_000 if ctx.quick else 100_000
    log = _open(ctx, "verify", "batched:5")
    for i in range(n):
        log.append("host_decision", fields(i))
    log.close()
    path: Path = log.path
    keys = load_trusted_keys(log.public_key_path)
    lines = path.read_bytes().split(b"\n")[:-1]
    report: list[Any] = []

    def verify() -> int:
        # as `vak-audit verify` runs it: a single-threaded process forks os.cpu_count()
        # scanners (this process has log threads, so the default would be 1)
        r = verify_log(path, keys, workers=os.cpu_count())
        report.append(r)
        return len(lines)

    def bare() -> int:
        for line in lines:
            sha256(b"\x00" + line).digest()
        return len(lines)

    subject, baseline = interleaved_rates(verify, bare, rounds=2 if ctx.quick else 4)
    last = report[-1]
    if int(last.result) != 0:
        raise AssertionError(f"the benchmark log did not verify: {last.result!r}")
    return Figure("audit verify", subject, baseline, "bare sha256", ">= 150,000/s",
                  subject.median_ns >= VERIFY_TARGET, unit="entries/s",
                  note=f"verify_log over {len(lines):,} entries with "
                       f"{last.checkpoints_verified} signed checkpoints, {os.cpu_count()} scanner "
                       "processes as in vak-audit verify (no CLI start-up); bare sha256 is "
                       "one thread; ratio = bare rate / VAK rate")
