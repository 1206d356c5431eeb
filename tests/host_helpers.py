"""Helpers for tests that drive the host mediation directly (no sandbox, no kernel)."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from vak.audit.log import AuditLog
from vak.audit.sink import AuditRef
from vak.config import SHIPPED_POLICY_DIR
from vak.host.context import CallContext
from vak.host.mediation import Mediator
from vak.host.settings import HostSettings
from vak.identity.manifest import Capabilities, Limits, Manifest, ModuleRef
from vak.identity.trust import Tier
from vak.policy.engine import PolicyEngine

LOOPBACK_POLICY = """
@id("test.net.allow-loopback")
permit (principal, action == Vak::Action::"http_request", resource)
when { resource.ip_class == "loopback" };
"""


class LogSink:
    """The real AuditLog in a temp dir, plus readers for assertions.

    ``entries`` flushes (a durable heartbeat) and parses the log file itself, so
    assertions are about what is on disk; heartbeats and ``log_opened`` are
    left out of ``entries``.
    """

    def __init__(self, tmp: Path) -> None:
        d = tmp / f"audit-{uuid.uuid4().hex[:8]}"
        self.log = AuditLog.open(d / "vak.log", key_path=d / "log.key", origin="test.vak/kernel")
        self.path = d / "vak.log"
        self.durable: dict[int, bool] = {}

    def append(self, kind: str, fields: Mapping[str, Any], *, durable: bool = False) -> AuditRef:
        ref = self.log.append(kind, fields, durable=durable)
        self.durable[ref.seq] = durable
        return ref

    def args_digest(self, data: bytes) -> str:
        return self.log.args_digest(data)

    def all(self) -> list[dict[str, Any]]:
        self.log.heartbeat()
        return [orjson.loads(line) for line in self.path.read_bytes().splitlines()]

    @property
    def entries(self) -> list[tuple[str, dict[str, Any], bool]]:
        return [
            (e["kind"], e, self.durable.get(e["seq"], False))
            for e in self.all()
            if e["kind"] not in ("heartbeat", "log_opened")
        ]

    def by_seq(self, seq: int) -> dict[str, Any]:
        return self.all()[seq]

    def decisions(self) -> list[dict[str, Any]]:
        return [f for k, f, _ in self.entries if k == "host_decision"]

    def close(self) -> None:
        self.log.close()


class ListSink:
    """An in-memory AuditSink (until the real AuditLog is wired in)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, dict[str, Any], bool]] = []

    def append(self, kind: str, fields: Mapping[str, Any], *, durable: bool = False) -> AuditRef:
        orjson.dumps(fields)  # must be JSON-ready
        self.entries.append((kind, dict(fields), durable))
        return AuditRef(len(self.entries) - 1, "")

    def decisions(self) -> list[dict[str, Any]]:
        return [f for k, f, _ in self.entries if k == "host_decision"]


def args_digest(data: bytes) -> str:
    return "hmac-sha256:" + hmac.new(b"test-key", data, hashlib.sha256).hexdigest()


def manifest(name: str = "tester", limits: Limits | None = None, **caps: Any) -> Manifest:
    return Manifest(
        name=name,
        version="1.0.0",
        description="t",
        author="t",
        license="MIT",
        module=ModuleRef("m.wasm", "00" * 32),
        capabilities=Capabilities(**caps),
        limits=limits or Limits(max_host_calls=10_000),
        exports=(),
    )


def context(m: Manifest, tier: str = "trusted") -> CallContext:
    return CallContext(
        manifest=m,
        manifest_digest="sha256:" + "11" * 32,
        module_sha256="00" * 32,
        signer_key_id="ed25519:" + "22" * 16,
        trust_tier=Tier(tier),
        invocation_id=str(uuid.uuid4()),
        session_id="s1",
    )


def engine(tmp: Path, extra: str | None = None) -> PolicyEngine:
    dirs = [SHIPPED_POLICY_DIR]
    if extra is not None:
        d = tmp / "operator-policies"
        d.mkdir(exist_ok=True)
        (d / "operator.cedar").write_text(extra)
        dirs.append(d)
    return PolicyEngine.load(dirs)


def call(handler: Any, fn: str, **args: Any) -> dict[str, Any]:
    return orjson.loads(handler(fn, orjson.dumps(args)))


_SETTINGS = {f.name for f in dataclasses.fields(HostSettings)}


def mediator(tmp: Path, sink: Any, extra: str | None = None, **kw: Any) -> Mediator:
    """A Mediator on the real policies; ``kw`` mixes HostSettings fields and Mediator options."""
    digest = sink.args_digest if isinstance(sink, LogSink) else args_digest
    settings = HostSettings(**{"kv_path": tmp / "kv.sqlite3",
                               **{k: v for k, v in kw.items() if k in _SETTINGS}})
    options = {k: v for k, v in kw.items() if k not in _SETTINGS}
    return Mediator(settings, engine(tmp, extra), sink, args_digest=digest, **options)
