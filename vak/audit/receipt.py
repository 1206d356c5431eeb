"""Receipts: a signed checkpoint plus an inclusion proof for one entry, checked offline.

Part of the format (no writer state): ``vak-audit verify-receipt`` and any
holder of a receipt and a trusted key use :func:`verify_receipt`.

Example::

    >>> r = Receipt.from_json(receipt_json)                   # doctest: +SKIP
    >>> verify_receipt(r, "audit/log.key.pub")                # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

from vak.audit.checkpoint import (
    CheckpointSignatureError,
    SignedCheckpoint,
    parse_note,
    verify_checkpoint,
)
from vak.audit.keys import TrustedKey, load_trusted_keys, parse_verifier_key
from vak.audit.merkle import verify_inclusion
from vak.errors import AuditVerificationError

__all__ = ["MAX_PROOF_LENGTH", "Receipt", "verify_receipt"]

#: an inclusion proof in a tree of at most 2**63 leaves has at most 63 hashes
MAX_PROOF_LENGTH = 64


def _hash32(value: Any, name: str) -> bytes:
    if type(value) is not str or len(value) != 64:
        raise AuditVerificationError(f"not a receipt: {name} is not a 64-character hex hash")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise AuditVerificationError(f"not a receipt: {name} is not hex") from None
    return raw


@dataclass(frozen=True, slots=True)
class Receipt:
    """Evidence for one entry: a signed checkpoint and an inclusion proof into it."""

    seq: int
    leaf_hash: bytes
    proof: tuple[bytes, ...]
    checkpoint: SignedCheckpoint

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "leaf_hash": self.leaf_hash.hex(),
            "proof": [p.hex() for p in self.proof],
            "checkpoint": self.checkpoint.note,
        }

    @classmethod
    def from_json(cls, data: Any) -> Receipt:
        """Raises: AuditVerificationError when the JSON is not a receipt (any wrong type)."""
        if not isinstance(data, Mapping):
            raise AuditVerificationError("not a receipt: not a JSON object")
        seq, proof, note = data.get("seq"), data.get("proof"), data.get("checkpoint")
        if type(seq) is not int or seq < 0:
            raise AuditVerificationError("not a receipt: seq is not a non-negative integer")
        if type(proof) is not list or len(proof) > MAX_PROOF_LENGTH:
            raise AuditVerificationError("not a receipt: proof is not a list of hashes")
        if type(note) is not str:
            raise AuditVerificationError("not a receipt: checkpoint is not a note string")
        try:
            cp = parse_note(note)
        except CheckpointSignatureError as exc:
            raise AuditVerificationError(f"not a receipt: {exc.message}") from None
        return cls(seq, _hash32(data.get("leaf_hash"), "leaf_hash"),
                   tuple(_hash32(p, "proof element") for p in proof), cp)


def _as_keys(public_key: Any) -> list[TrustedKey]:
    if isinstance(public_key, TrustedKey):
        return [public_key]
    if isinstance(public_key, str) and "+" in public_key and not Path(public_key).exists():
        return [parse_verifier_key(public_key)]
    if isinstance(public_key, str | Path):
        return load_trusted_keys(public_key)
    return list(public_key)


def verify_receipt(
    receipt: Receipt, public_key: TrustedKey | str | Path | Iterable[TrustedKey],
    *, line: bytes | None = None,
) -> None:
    """Check a receipt offline: signature by a trusted key, then the inclusion proof.

    ``public_key`` is a :class:`TrustedKey`, a verifier-key string, a ``.pub`` /
    trust file path, or several keys. With ``line`` the entry itself is checked too.

    Raises:
        AuditVerificationError: (or its subclasses) anything does not verify.
    """
    verify_checkpoint(receipt.checkpoint, _as_keys(public_key))
    if line is not None and sha256(b"\x00" + line.rstrip(b"\n")).digest() != receipt.leaf_hash:
        raise AuditVerificationError(f"entry line does not hash to the receipt's leaf "
                                     f"(seq {receipt.seq})")
    cp = receipt.checkpoint.checkpoint
    verify_inclusion(receipt.leaf_hash, receipt.seq, cp.size, receipt.proof, cp.root)
