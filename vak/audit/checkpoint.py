"""Signed checkpoints in the C2SP tlog-checkpoint / signed-note format.

A checkpoint note is::

    <origin>\\n<tree size>\\n<base64 root hash>\\nvak-time <RFC 3339>\\n
    \\n
    \\u2014 <origin> <base64(4-byte key id || 64-byte Ed25519 signature)>\\n

The signature covers the note body (every line before the blank line, each
with its newline). Verification *raises*: :class:`CheckpointSignatureError`
for a signature that does not verify or a malformed note,
:class:`UntrustedKeyError` for a key that is unknown, revoked or expired.

Example::

    >>> cp = Checkpoint("o", 1, b"\\0" * 32, "2026-01-01T00:00:00Z")
    >>> cp.body().splitlines()[1]
    '1'
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vak.audit.keys import TrustedKey, key_id, public_bytes
from vak.errors import AuditVerificationError

__all__ = [
    "Checkpoint",
    "CheckpointSignatureError",
    "SignedCheckpoint",
    "UntrustedKeyError",
    "parse_note",
    "sign_checkpoint",
    "verify_checkpoint",
]

_DASH = "\u2014 "


class CheckpointSignatureError(AuditVerificationError):
    """A checkpoint is malformed or its signature does not verify."""

    code = "audit_bad_signature"


class UntrustedKeyError(AuditVerificationError):
    """A checkpoint is signed by a key that is unknown, revoked or expired."""

    code = "audit_untrusted_key"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The signed statement: this origin's log had ``size`` entries with ``root``."""

    origin: str
    size: int
    root: bytes
    time: str

    def body(self) -> str:
        root = base64.b64encode(self.root).decode()
        return f"{self.origin}\n{self.size}\n{root}\nvak-time {self.time}\n"


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint plus its signature lines ``(name, key id, signature)``."""

    checkpoint: Checkpoint
    signatures: tuple[tuple[str, bytes, bytes], ...]

    @property
    def note(self) -> str:
        lines = "".join(
            f"{_DASH}{name} {base64.b64encode(kid + sig).decode()}\n"
            for name, kid, sig in self.signatures
        )
        return f"{self.checkpoint.body()}\n{lines}"

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(kid.hex() for _, kid, _ in self.signatures)


def sign_checkpoint(cp: Checkpoint, key: Ed25519PrivateKey) -> SignedCheckpoint:
    """Sign ``cp`` as the log named by its origin."""
    sig = key.sign(cp.body().encode())
    return SignedCheckpoint(cp, ((cp.origin, key_id(cp.origin, public_bytes(key)), sig),))


def parse_note(text: str) -> SignedCheckpoint:
    """Parse a checkpoint note.

    Raises:
        CheckpointSignatureError: the note is not a well-formed checkpoint.
    """
    body, sep, sigs = text.partition("\n\n")
    lines = body.split("\n")
    if not sep or len(lines) < 3 or not sigs.endswith("\n"):
        raise CheckpointSignatureError("checkpoint note is malformed (missing lines or signature)")
    origin, size_text, root_text = lines[:3]
    try:
        if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
            raise ValueError(size_text)
        root = base64.b64decode(root_text, validate=True)
    except (ValueError, binascii.Error):
        raise CheckpointSignatureError(f"checkpoint of {origin!r}: bad size or root") from None
    stamp = ""
    for ext in lines[3:]:
        if ext.startswith("vak-time "):
            stamp = ext[9:]
        elif not ext:
            raise CheckpointSignatureError("checkpoint note has an empty extension line")
    if len(root) != 32 or not origin:
        raise CheckpointSignatureError(f"checkpoint of {origin!r}: root is not 32 bytes")
    signatures = []
    for line in sigs[:-1].split("\n"):
        if not line.startswith(_DASH):
            raise CheckpointSignatureError("checkpoint signature line lacks the em dash")
        try:
            name, b64 = line[len(_DASH):].split(" ")
            raw = base64.b64decode(b64, validate=True)
        except (ValueError, binascii.Error):
            raise CheckpointSignatureError("checkpoint signature line is malformed") from None
        if len(raw) != 68:
            raise CheckpointSignatureError("checkpoint signature is not 4+64 bytes")
        signatures.append((name, raw[:4], raw[4:]))
    cp = Checkpoint(origin, int(size_text), root, stamp)
    if cp.body() != body + "\n":
        raise CheckpointSignatureError("checkpoint note is not in canonical form")
    return SignedCheckpoint(cp, tuple(signatures))


def verify_checkpoint(signed: SignedCheckpoint, keys: Iterable[TrustedKey]) -> TrustedKey:
    """Return the trusted key that signed ``signed``.

    Raises:
        UntrustedKeyError: no signature is by a trusted key, or that key is revoked
            or was used after its ``not_after`` time.
        CheckpointSignatureError: a trusted key's signature does not verify.
    """
    by_id = {(k.name, k.note_key_id): k for k in keys}
    message = signed.checkpoint.body().encode()
    problem: AuditVerificationError | None = None
    for name, kid, sig in signed.signatures:
        key = by_id.get((name, kid))
        if key is None:
            continue
        if key.revoked:
            problem = UntrustedKeyError(f"checkpoint signed by revoked key {kid.hex()}")
            continue
        if key.not_after and signed.checkpoint.time > key.not_after:
            problem = UntrustedKeyError(
                f"checkpoint signed by key {kid.hex()} after it expired ({key.not_after})"
            )
            continue
        try:
            key.verify(sig, message)
        except InvalidSignature:
            raise CheckpointSignatureError(
                f"checkpoint at size {signed.checkpoint.size}: signature by key "
                f"{kid.hex()} does not verify"
            ) from None
        return key
    if problem is not None:
        raise problem
    raise UntrustedKeyError(
        f"checkpoint at size {signed.checkpoint.size} is signed by no trusted key "
        f"(key ids {', '.join(signed.key_ids) or 'none'})"
    )
