"""Sign and verify skills: Ed25519 over the canonical manifest, which binds the module.

Example::

    >>> from vak.identity.keys import load_signing_key, load_public_key
    >>> sign_skill("skills/calc", load_signing_key("signer.key"))         # doctest: +SKIP
    >>> trust = TrustStore.from_keys(load_public_key("signer.key.pub"))    # doctest: +SKIP
    >>> skill = verify_skill("skills/calc", trust)                         # doctest: +SKIP
    >>> skill.tier, skill.module_sha256                                    # doctest: +SKIP
    (<Tier.TRUSTED: 'trusted'>, '9f86d0...')

What is signed: ``canonical_bytes(manifest mapping without "signature")``. The
mapping holds ``module.sha256``, so one signature covers both files, and YAML
layout (key order, quoting, comments) does not matter: re-serialising a
manifest keeps it valid, changing a value breaks it.

:func:`verify_skill` checks, in this order, and raises at the first failure:

1. manifest parses and is schema-valid               -> ManifestError
2. a signature block is present                      -> SignatureError
3. the signer's key id is in the trust store         -> UntrustedSignerError
4. the signature verifies over the canonical bytes   -> SignatureError
5. the key may sign this skill (not revoked/expired) -> UntrustedSignerError
6. the module's bytes match the signed sha256        -> DigestMismatchError

The module is read exactly once; :class:`VerifiedSkill` carries those bytes so
the kernel compiles what was verified (no check-then-reopen race).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature

from vak.canonical import canonical_bytes
from vak.errors import DigestMismatchError, ManifestError, SignatureError
from vak.identity.keyfile import write_file_atomic
from vak.identity.keys import SigningKey, public_key_id
from vak.identity.manifest import (
    MANIFEST_FILE,
    Manifest,
    dump_manifest_yaml,
    load_yaml_mapping,
    parse_manifest,
    read_manifest_bytes,
    resolve_module_path,
)
from vak.identity.ref import SkillRef
from vak.identity.trust import Tier, TrustStore

__all__ = [
    "MAX_MODULE_BYTES",
    "VerifiedSkill",
    "manifest_digest",
    "read_module",
    "sign_skill",
    "signed_bytes",
    "verify_skill",
]

#: modules larger than this are refused before hashing
MAX_MODULE_BYTES = 256 << 20

_HEADER = (
    "# Signed by vak-skill-sign. Any change to a value (or to the module) breaks the\n"
    "# signature: edit, then run `vak-skill-sign sign` again.\n"
)


@dataclass(frozen=True, slots=True)
class VerifiedSkill:
    """A skill whose manifest signature, signer and module digest all checked out."""

    manifest: Manifest
    #: the exact module bytes that were hashed; compile these, never re-read the file
    module_bytes: bytes
    module_sha256: str
    signer_key_id: str
    tier: Tier
    skill_dir: Path
    #: sha256 hex of the signed canonical manifest bytes (for the audit log)
    manifest_sha256: str = ""

    @property
    def ref(self) -> SkillRef:
        """How audit entries name this skill."""
        return SkillRef.of(self.manifest.name, self.manifest.version, self.manifest_sha256,
                           self.signer_key_id)


def signed_bytes(mapping: dict[str, Any]) -> bytes:
    """The bytes a signature covers: the canonical mapping without ``signature``."""
    return canonical_bytes({k: v for k, v in mapping.items() if k != "signature"})


def manifest_digest(manifest: Manifest) -> str:
    """sha256 hex of :func:`signed_bytes` of ``manifest`` (a stable manifest id)."""
    return hashlib.sha256(signed_bytes(manifest.raw)).hexdigest()


def read_module(skill_dir: str | Path, manifest: Manifest) -> bytes:
    """Read the module named by ``manifest`` once, bounded by :data:`MAX_MODULE_BYTES`.

    Raises:
        ManifestError: the module path escapes the skill directory, is missing,
            unreadable or too large.
    """
    path = resolve_module_path(skill_dir, manifest)
    src = str(Path(skill_dir) / MANIFEST_FILE)
    try:
        # the path is already resolved; O_NOFOLLOW stops a symlink swapped in since
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(MAX_MODULE_BYTES + 1)
    except FileNotFoundError:
        raise ManifestError(
            f"{src}: module.path: {manifest.module.path!r} does not exist", file=src,
            field="module.path", fix="build the module or fix module.path",
        ) from None
    except OSError as exc:
        raise ManifestError(
            f"{src}: module.path: cannot read {path}: {exc.strerror}", file=src,
            field="module.path",
        ) from None
    if len(data) > MAX_MODULE_BYTES:
        raise ManifestError(
            f"{src}: module.path: module is larger than {MAX_MODULE_BYTES} bytes", file=src,
            field="module.path",
        )
    return data


def _ordered(mapping: dict[str, Any], sha256: str) -> dict[str, Any]:
    """The mapping with ``module.sha256`` set, keeping the author's field order."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if key == "signature":
            continue
        if key == "module":
            # keep the author's other module fields (kind) in their order
            value = {**{k: v for k, v in value.items() if k != "sha256"}, "sha256": sha256}
        out[key] = value
    return out


def sign_skill(skill_dir: str | Path, signing_key: SigningKey) -> Manifest:
    """Fill in ``module.sha256``, sign, and rewrite ``skill.yaml`` atomically.

    An existing signature is replaced. YAML comments of the template are not
    kept (the file is re-serialised in the author's field order).

    Raises:
        ManifestError: the manifest is invalid or the module cannot be read.
    """
    path, data = read_manifest_bytes(skill_dir)
    source = str(path)
    manifest = parse_manifest(load_yaml_mapping(data, source), source)
    module = read_module(skill_dir, manifest)
    mapping = _ordered(manifest.raw, hashlib.sha256(module).hexdigest())
    signature = signing_key.sign(signed_bytes(mapping))
    mapping["signature"] = {
        "algorithm": "ed25519",
        "key_id": public_key_id(signing_key.verify_key),
        "value": base64.b64encode(signature).decode("ascii"),
    }
    signed = parse_manifest(mapping, source)
    write_file_atomic(path, (_HEADER + dump_manifest_yaml(mapping)).encode("utf-8"))
    return signed


def _signature_bytes(manifest: Manifest, source: str) -> bytes:
    assert manifest.signature is not None
    try:
        raw = base64.b64decode(manifest.signature.value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 64:
        raise SignatureError(
            f"{source}: signature.value is not a base64 Ed25519 signature", file=source,
            field="signature.value", fix="re-sign with: vak-skill-sign sign",
        )
    return raw


def verify_skill(
    skill_dir: str | Path, trust: TrustStore, *, now: datetime | None = None
) -> VerifiedSkill:
    """Verify a skill directory against ``trust`` (see the module docstring).

    Args:
        skill_dir: directory holding ``skill.yaml`` and the module.
        trust: the operator's trust store (or ``TrustStore.from_keys(...)``).
        now: the time for key expiry checks (default: now, UTC).

    Raises:
        ManifestError: invalid manifest, or the module is missing/unreadable.
        SignatureError: unsigned, malformed or not matching signature, or no digest.
        UntrustedSignerError: signer unknown, revoked, expired, or not allowed
            to sign this skill name.
        DigestMismatchError: the module's sha256 differs from the signed digest.
    """
    skill_dir = Path(skill_dir)
    path, data = read_manifest_bytes(skill_dir)
    source = str(path)
    manifest = parse_manifest(load_yaml_mapping(data, source), source)
    if manifest.signature is None:
        raise SignatureError(
            f"{source}: skill is not signed (no signature block)", file=source,
            field="signature", fix=f"sign it: vak-skill-sign sign {skill_dir} --key KEY",
        )
    signature = _signature_bytes(manifest, source)
    trusted = trust.lookup(manifest.signature.key_id)
    message = signed_bytes(manifest.raw)
    try:
        trusted.verify(signature, message)
    except InvalidSignature:
        raise SignatureError(
            f"{source}: signature does not verify: the manifest or module digest was "
            f"changed after signing by {trusted.key_id}",
            file=source, key_id=trusted.key_id,
            fix="if the change is intended, re-sign: vak-skill-sign sign "
            f"{skill_dir} --key KEY",
        ) from None
    trusted.authorize(manifest.name, now)
    if manifest.module.sha256 is None:
        raise SignatureError(
            f"{source}: module.sha256 is missing, so the signature binds no module",
            file=source, field="module.sha256",
            fix=f"re-sign: vak-skill-sign sign {skill_dir} --key KEY",
        )
    module = read_module(skill_dir, manifest)
    actual = hashlib.sha256(module).hexdigest()
    if not hmac.compare_digest(actual, manifest.module.sha256):
        raise DigestMismatchError(
            f"{skill_dir / manifest.module.path}: module sha256 {actual} does not match "
            f"the signed digest {manifest.module.sha256}",
            file=str(skill_dir / manifest.module.path), expected=manifest.module.sha256,
            actual=actual,
            fix="restore the signed module, or rebuild and re-sign the skill",
        )
    return VerifiedSkill(
        manifest=manifest,
        module_bytes=module,
        module_sha256=actual,
        signer_key_id=trusted.key_id,
        tier=trusted.tier,
        skill_dir=skill_dir,
        manifest_sha256=hashlib.sha256(message).hexdigest(),
    )
