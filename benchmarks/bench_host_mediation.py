"""Mediated host-call overhead vs bare cedarpy and a bare audit append (one run).

Prints a table of microseconds per call:

* ``cedar_bare``    -- ``cedarpy.is_authorized`` with pre-parsed PolicySet,
  Schema and Entities handles (the issue's baseline);
* ``audit_append``  -- one ``AuditLog.append`` (durable=False: no fsync);
* ``mediate_hit``   -- the whole handler on a decision-cache hit: JSON parse,
  normalise, ceiling, cache lookup, decision + result appends (real AuditLog,
  durable requests downgraded so the fsync is excluded); the effect is stubbed;
* ``mediate_miss``  -- the same with the cache cleared before every call.

Run: ``python benchmarks/bench_host_mediation.py [N]``.
"""

from __future__ import annotations

import hashlib
import hmac
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cedarpy
import orjson

from vak.audit.log import AuditLog
from vak.audit.sink import AuditRef
from vak.config import SHIPPED_POLICY_DIR
from vak.host.context import CallContext
from vak.host.fs import FsFamily
from vak.host.mediation import Mediator
from vak.host.principal import principal_for
from vak.host.settings import HostSettings
from vak.identity.manifest import Capabilities, Limits, Manifest, ModuleRef
from vak.identity.trust import Tier
from vak.policy.engine import PolicyEngine
from vak.policy.entities import CedarRequest, file_entity

#: ``context.caller`` of a request nobody identified (docs/POLICY.md)
CALLER = {"id": "anonymous", "kind": "agent"}


class NoFsync:
    """Forward to the real log but never wait for the fsync (the target excludes it)."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log

    def append(self, kind: str, fields: Mapping[str, Any], *, durable: bool = False) -> AuditRef:
        return self.log.append(kind, fields, durable=False)


class NullSink:
    def append(self, kind: str, fields: Mapping[str, Any], *, durable: bool = False) -> AuditRef:
        return AuditRef(0, "")


def per_call(fn: Callable[[], object], n: int) -> float:
    for _ in range(min(n, 200)):
        fn()
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n * 1e6)
    return best


def main(n: int = 2000) -> None:
    tmp = Path(tempfile.mkdtemp())
    fsync = sys.argv[2] if len(sys.argv) > 2 else "strict"
    engine = PolicyEngine.load([SHIPPED_POLICY_DIR])
    manifest = Manifest(
        "bench",
        "1.0.0",
        "",
        "",
        "",
        ModuleRef("m.wasm", "00" * 32),
        Capabilities(fs_read=("/workspace",)),
        Limits(max_host_calls=10**9),
        (),
    )
    ctx = CallContext(manifest, "sha256:" + "11" * 32, "00" * 32, "ed25519:x", Tier.TRUSTED, "inv")
    FsFamily._read = lambda self, path, max_bytes, ctx: {"content": ""}  # type: ignore[method-assign]
    args = orjson.dumps({"path": "/workspace/notes/today.txt"})
    key = b"k" * 32

    def digest(data: bytes) -> str:
        return hmac.new(key, data, hashlib.sha256).hexdigest()

    # bare cedarpy with pre-parsed handles for exactly the same request
    p = principal_for(
        manifest,
        manifest_digest=ctx.manifest_digest,
        module_sha256=ctx.module_sha256,
        signer="ed25519:x",
        trust_tier="trusted",
    )
    req = CedarRequest(
        p,
        "fs_read",
        file_entity("/workspace/notes/today.txt"),
        {"caller": CALLER, "session": {"labels": []}, "max_bytes": 1 << 20},
    )
    schema = cedarpy.Schema.from_str(engine.loaded.schema_text)
    policies = cedarpy.PolicySet.from_str(engine.loaded.policy_text)
    ents = cedarpy.Entities.from_json_str(
        orjson.dumps([p.entity.to_json(), req.resource.to_json()]).decode(), schema
    )
    cedar_req = req.to_cedar()
    assert cedarpy.is_authorized(cedar_req, policies, ents, schema).allowed

    def run(h: Callable[[str, bytes], bytes]) -> tuple[float, float]:
        hit = per_call(lambda: h("fs_read", args), n)

        def miss() -> None:
            engine._cache.clear()
            h("fs_read", args)

        return hit, per_call(miss, n)

    # phase 1: no audit log open (its commit thread competes for the GIL)
    rows: dict[str, float] = {}
    rows["cedar_bare"] = per_call(
        lambda: cedarpy.is_authorized(cedar_req, policies, ents, schema), n
    )
    host = HostSettings(fs_mounts={"/workspace": tmp})
    m0 = Mediator(host, engine, NullSink(), args_digest=digest)
    rows["hit_null_sink"], rows["miss_null_sink"] = run(m0.handler(ctx))
    # phase 2: the real AuditLog
    log = AuditLog.open(
        tmp / "a" / "vak.log", key_path=tmp / "a" / "log.key", origin="bench.vak/k", fsync=fsync
    )
    rows["audit_append"] = per_call(lambda: log.append("heartbeat", {}), n)
    m = Mediator(host, engine, NoFsync(log), args_digest=log.args_digest)
    rows["hit_real_log"], rows["miss_real_log"] = run(m.handler(ctx))
    log.close()

    print(f"audit fsync policy: {fsync}; effect stubbed; fsync excluded")
    print(f"{'measure':<18}{'us/call':>10}")
    for k, v in rows.items():
        print(f"{k:<18}{v:>10.1f}")
    print(
        f"hit overhead (null sink + 1 append): {rows['hit_null_sink'] + rows['audit_append']:.1f}"
        f" us; with both decision+result appends: "
        f"{rows['hit_null_sink'] + 2 * rows['audit_append']:.1f} us"
    )
    print(
        f"miss / cedar_bare: {rows['miss_null_sink'] / rows['cedar_bare']:.2f}x (null sink), "
        f"{rows['miss_real_log'] / rows['cedar_bare']:.2f}x (real log)"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)  # argv[2]: fsync policy
