"""Signed answers to approval requests: made with an operator key, checked against
the trust store.

The statement format is :mod:`vak.audit.approval` (shared with the verifier);
this module adds what needs the identity room: signing with a
:class:`~vak.identity.keys.SigningKey` and checking a signature, the key's
``approver`` role, revocation and expiry against a
:class:`~vak.identity.trust.TrustStore`.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature

from vak.audit.approval import parse_time, signature_bytes, signed_message, statement_problem
from vak.errors import ApprovalError, UntrustedSignerError
from vak.identity.keys import SigningKey
from vak.identity.trust import TrustStore

__all__ = ["APPROVER", "Answer", "sign_answer", "utc_text"]

APPROVER = "approver"


def utc_text(when: datetime) -> str:
    """``when`` as the RFC 3339 UTC form statements use (second precision)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Answer:
    """One signed statement (approve or deny) and its base64 Ed25519 signature."""

    statement: Mapping[str, Any]
    signature: str

    @property
    def approval_id(self) -> str:
        return str(self.statement["approval"])

    @property
    def approved(self) -> bool:
        return bool(self.statement["verdict"] == "approve")

    @property
    def key_id(self) -> str:
        return str(self.statement["key_id"])

    @property
    def not_after(self) -> datetime:
        return parse_time(self.statement["not_after"])

    def to_json(self) -> dict[str, Any]:
        return {"statement": dict(self.statement), "signature": self.signature}

    @classmethod
    def from_json(cls, doc: Any, source: str) -> Answer:
        """Parse an answer strictly.

        Raises:
            ApprovalError: wrong fields or shapes (the message names ``source``).
        """
        if type(doc) is not dict or set(doc) != {"statement", "signature"}:
            raise ApprovalError(f"{source}: answer must have exactly statement and signature",
                                file=source, field="answer")
        problem = statement_problem(doc["statement"], doc["signature"])
        if problem is not None:
            raise ApprovalError(f"{source}: {problem}", file=source, field="answer")
        return cls(dict(doc["statement"]), doc["signature"])

    def check(self, trust: TrustStore | None, approval_id: str, binding: str,
              now: datetime) -> None:
        """Check that a trusted approver signed exactly this answer for this call.

        Raises:
            ApprovalError: no trust store, an unknown, revoked or expired key, a
                key without the ``approver`` role, a bad signature, another
                approval id or binding, or an answer past ``not_after``.
        """
        if trust is None:
            raise ApprovalError("no trust store is configured: no key can approve",
                                fix="set trust_store in vak.toml and add an approver key "
                                "with `vak trust add KEY.pub --tier trusted --role approver`")
        try:
            key = trust.lookup(self.key_id)
            _authorize_any(key, now)
        except UntrustedSignerError as exc:
            raise ApprovalError(f"approval {approval_id}: {exc.message}",
                                key_id=self.key_id, fix=exc.details.get("fix")) from None
        if APPROVER not in key.roles:
            raise ApprovalError(
                f"approval {approval_id}: key {self.key_id} does not have the approver role",
                key_id=self.key_id,
                fix="sign with an approver key, or give this key the role in the trust store "
                "(roles: [approver])")
        raw = signature_bytes(self.signature)
        try:
            if raw is None:
                raise InvalidSignature
            key.verify(raw, signed_message(self.statement))
        except InvalidSignature:
            raise ApprovalError(f"approval {approval_id}: the signature does not verify "
                                f"with key {self.key_id}", key_id=self.key_id) from None
        if self.statement["approval"] != approval_id or self.statement["binding"] != binding:
            raise ApprovalError(f"approval {approval_id}: the signed statement is for "
                                "another approval or another call")
        if now > self.not_after:
            raise ApprovalError(f"approval {approval_id}: expired at "
                                f"{self.statement['not_after']}")


def _authorize_any(key: Any, now: datetime) -> None:
    """Revocation and expiry of a key whose ``skills`` list is irrelevant here."""
    if key.revoked or (key.expires is not None and now >= key.expires):
        raise UntrustedSignerError(f"key {key.key_id} is revoked or expired",
                                   key_id=key.key_id, fix="sign with a current approver key")


def sign_answer(approval_id: str, binding: str, approve: bool, key: SigningKey,
                ttl: timedelta, now: datetime | None = None) -> Answer:
    """An answer to approval ``approval_id`` signed with ``key``, valid for ``ttl``.

    Raises:
        ApprovalError: a non-positive ``ttl`` or a malformed id or binding.
    """
    if ttl <= timedelta(0):
        raise ApprovalError("the approval lifetime must be positive", field="ttl")
    now = now or datetime.now(UTC)
    statement = {"v": 1, "approval": approval_id, "binding": binding,
                 "verdict": "approve" if approve else "deny",
                 "key_id": key.verify_key.key_id, "issued": utc_text(now),
                 "not_after": utc_text(now + ttl)}
    signature = base64.b64encode(key.sign(signed_message(statement))).decode()
    problem = statement_problem(statement, signature)
    if problem is not None:
        raise ApprovalError(f"cannot sign approval {approval_id[:40]!r}: {problem}")
    return Answer(statement, signature)
