"""One mediated host call (``fs_read``), decision-cache miss and hit, vs raw parts.

Subject: the kernel's :class:`vak.host.mediation.MediatedHandler` for a skill
allowed to read ``/workspace``, doing everything it does per call: parse and
bounds-check the arguments, normalise the path, check the manifest ceiling,
build the Cedar request, decide (cache or Cedar), append the decision and the
result to a real :class:`vak.audit.log.AuditLog`. The *effect* (the file read)
is replaced by a constant and the fsync is not waited for, because the issue's
targets exclude both; both are the same with or without mediation.

Baseline: a bare ``cedarpy.is_authorized`` on pre-parsed ``PolicySet``,
``Schema`` and ``Entities`` handles for exactly the same request, plus one bare
``AuditLog.append`` of a decision entry, interleaved call by call.

The miss figure uses a second policy engine built with ``cache_size=0`` (every
call goes to Cedar); the hit figure the default cache.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from benchmarks._harness import Context, Figure, guarded, interleaved

#: ``context.caller`` of a request nobody identified (docs/POLICY.md)
CALLER = {"id": "anonymous", "kind": "agent"}

PATH = "/workspace/notes/today.txt"
HIT_LIMIT = 0.3
MISS_LIMIT = 1.2


class _NoWait:
    """An AuditSink that appends to the real log but never waits for the fsync."""

    accepts_sealed = True  # it forwards to the real AuditLog, which does

    def __init__(self, log: Any) -> None:
        self.log = log

    def append(self, kind: str, fields: Mapping[str, Any], *, durable: bool = False) -> Any:
        return self.log.append(kind, fields, durable=False)


def _setup(ctx: Context) -> dict[str, Any]:
    if "mediation" in ctx.cache:
        return ctx.cache["mediation"]
    import cedarpy

    from vak.audit.log import AuditLog
    from vak.config import SHIPPED_POLICY_DIR
    from vak.host.context import CallContext
    from vak.host.mediation import Mediator
    from vak.host.principal import principal_for
    from vak.host.settings import HostSettings
    from vak.identity.manifest import Capabilities, Limits, Manifest, ModuleRef
    from vak.identity.trust import Tier
    from vak.policy.engine import PolicyEngine
    from vak.policy.entities import CedarRequest, file_entity

    root = ctx.workdir / "mediation"
    (root / "ws").mkdir(parents=True, exist_ok=True)
    log = AuditLog.open(root / "audit" / "vak.log", key_path=root / "audit" / "log.key",
                        origin="bench.vak/mediation", fsync="batched:5")
    ctx.cache.setdefault("closers", []).append(log.close)
    manifest = Manifest("bench", "1.0.0", "", "", "", ModuleRef("m.wasm", "00" * 32),
                        Capabilities(fs_read=("/workspace",)), Limits(max_host_calls=10**9), ())
    call_ctx = CallContext(manifest, "sha256:" + "11" * 32, "00" * 32, "ed25519:x", Tier.TRUSTED,
                           "inv")

    def handler(cache_size: int) -> Callable[[str, bytes], bytes]:
        policies = PolicyEngine.load([SHIPPED_POLICY_DIR], cache_size=cache_size)
        m = Mediator(HostSettings(fs_mounts={"/workspace": root / "ws"}), policies, _NoWait(log),
                     args_digest=log.args_digest)
        # the effect is excluded by the target: a constant instead of the read
        fs = m._families["fs_read"]
        fs._read = lambda path, max_bytes, c: {"content": ""}  # type: ignore[union-attr]
        return m.handler(call_ctx)

    hit, miss = handler(4096), handler(0)
    args = orjson.dumps({"path": PATH})
    for h in (hit, miss):
        if "content" not in orjson.loads(h("fs_read", args)):
            raise AssertionError("mediated fs_read inside the grant was not allowed")

    engine = PolicyEngine.load([SHIPPED_POLICY_DIR])
    principal = principal_for(manifest, manifest_digest=call_ctx.manifest_digest,
                              module_sha256=call_ctx.module_sha256, signer="ed25519:x",
                              trust_tier="trusted")
    req = CedarRequest(principal, "fs_read", file_entity(PATH),
                       {"caller": CALLER, "session": {"labels": []}, "max_bytes": 1 << 20})
    schema = cedarpy.Schema.from_str(engine.loaded.schema_text)
    policies = cedarpy.PolicySet.from_str(engine.loaded.policy_text)
    entities = cedarpy.Entities.from_json_str(
        orjson.dumps([principal.entity.to_json(), req.resource.to_json()]).decode(), schema)
    cedar_req = req.to_cedar()
    if not cedarpy.is_authorized(cedar_req, policies, entities, schema).allowed:
        raise AssertionError("the bare Cedar request is not allowed: baseline differs")
    decision = {"invocation": "inv", "host_function": "fs_read", "resource": PATH,
                "decision": {"effect": "allow", "policy_ids": ["base"], "policy_set": "x"}}

    def bare() -> None:
        cedarpy.is_authorized(cedar_req, policies, entities, schema)
        log.append("heartbeat", decision)

    ctx.cache["mediation"] = {"hit": lambda: hit("fs_read", args),
                              "miss": lambda: miss("fs_read", args), "bare": bare, "log": log}
    return ctx.cache["mediation"]


def figures(ctx: Context) -> list[Figure]:
    base = "bare cedarpy + append"
    return [
        guarded("host call, cache miss", lambda: _miss(ctx), target="<= 1.2x",
                baseline_name=base),
        guarded("host call, cache hit", lambda: _hit(ctx), target="<= 0.3x",
                baseline_name=base),
    ]


def _n(ctx: Context) -> int:
    return 300 if ctx.quick else 3000


def _miss(ctx: Context) -> Figure:
    s = _setup(ctx)
    subject, baseline = interleaved(s["miss"], s["bare"], iterations=_n(ctx), warmup=50)
    ratio = subject.median_ns / baseline.median_ns
    return Figure("host call, cache miss", subject, baseline, "bare cedarpy + append",
                  "<= 1.2x", ratio <= MISS_LIMIT,
                  note="decision cache off (cache_size=0); effect stubbed, fsync not awaited; "
                       "VAK appends two entries (decision + result), the baseline one")


def _hit(ctx: Context) -> Figure:
    s = _setup(ctx)
    subject, baseline = interleaved(s["hit"], s["bare"], iterations=_n(ctx), warmup=50)
    ratio = subject.median_ns / baseline.median_ns
    return Figure("host call, cache hit", subject, baseline, "bare cedarpy + append",
                  "<= 0.3x", ratio <= HIT_LIMIT,
                  note="whole mediation on a decision-cache hit incl. both audit appends "
                       "(decision + result) and their HMACs; effect stubbed, fsync not "
                       f"awaited; {subject.median_ns / 1000:.1f} us absolute")
