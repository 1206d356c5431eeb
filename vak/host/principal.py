"""The Cedar principal of a calling skill, built from its verified manifest.

The principal carries the manifest's declared capabilities so that policies can
test them (``resource in principal.fs_read``); fs grants are normalised here,
by the same :func:`~vak.host.normalize.normalize_path` as the guest's paths, so
a grant and a path are compared in one canonical form.
"""

from __future__ import annotations

from typing import Any

from vak.host.normalize import normalize_grants
from vak.identity.manifest import Manifest
from vak.identity.trust import Tier
from vak.policy.entities import Entity, Principal

__all__ = ["principal_for"]


def _dir_ref(path: str) -> dict[str, Any]:
    return {"__entity": {"type": "Vak::Dir", "id": path}}


def principal_for(
    manifest: Manifest, *, manifest_digest: str, module_sha256: str, signer: str,
    trust_tier: Tier | str,
) -> Principal:
    """The ``Vak::Skill`` entity for a verified manifest."""
    caps = manifest.capabilities
    attrs = {
        "name": manifest.name,
        "version": manifest.version,
        "signer": signer,
        "trust_tier": str(trust_tier),
        "manifest_digest": manifest_digest,
        "module_sha256": module_sha256,
        "fs_read": [_dir_ref(p) for p in sorted(normalize_grants(caps.fs_read))],
        "fs_write": [_dir_ref(p) for p in sorted(normalize_grants(caps.fs_write))],
        "http_hosts": sorted(caps.http),
        "kv": bool(caps.kv),
        "secrets": sorted(caps.secrets),
        "log": bool(caps.log),
        "clock": bool(caps.clock),
        "random": bool(caps.random),
    }
    return Principal.of(Entity("Vak::Skill", manifest.name, attrs))
