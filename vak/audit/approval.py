"""The approval statement format: what an operator signs, and the call it binds.

An approval (or refusal) of one host call that a ``@approval("required")``
permit allowed is an Ed25519 signature by an operator key over
``b"vak-approval-v1\\n" || canonical_json(statement)``, where the statement is::

    {"v": 1, "approval": ID, "binding": "sha256:...", "verdict": "approve"|"deny",
     "key_id": "ed25519:...", "issued": RFC3339, "not_after": RFC3339}

The ``binding`` is :func:`call_binding` over fields every ``host_decision``
entry records (skill id, manifest digest, host function, ``args_hmac`` -- the
log's keyed HMAC of the exact argument bytes -- and session), so the verifier
recomputes it from the log alone: an approval can be checked against the call
it precedes without the HMAC key, and it cannot be replayed for other
arguments, another skill, another function or another session. The invocation
is *not* bound (a retry is a new invocation); the ``approval`` entry records it.

This module is part of the audit *format*: the writer side (the mediation, the
``vak approvals`` CLI) and the verifier share it; it imports no policy, host or
sandbox code.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any

from vak.canonical import CanonicalError, canonical_bytes

__all__ = [
    "APPROVAL_ID",
    "DOMAIN",
    "STATEMENT_FIELDS",
    "VERDICTS",
    "call_binding",
    "entry_binding",
    "parse_time",
    "signature_bytes",
    "signed_message",
    "statement_problem",
]

DOMAIN = b"vak-approval-v1\n"
VERDICTS = ("approve", "deny")
STATEMENT_FIELDS = ("v", "approval", "binding", "verdict", "key_id", "issued", "not_after")
#: an approval id: 32 lowercase hex digits (128 random bits)
APPROVAL_ID = re.compile(r"[0-9a-f]{32}")
_BINDING = re.compile(r"sha256:[0-9a-f]{64}")
_KEY_ID = re.compile(r"ed25519:[0-9a-f]{1,128}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z")


def call_binding(skill_id: Any, manifest_digest: Any, function: Any, args_hmac: Any,
                 session: Any) -> str:
    """``sha256:<hex>`` over the canonical JSON of the call's identity.

    Every value is taken as logged; a non-string makes the binding of a call
    that no honest writer records (it then matches nothing).
    """
    doc = {"skill": _s(skill_id), "manifest_digest": _s(manifest_digest),
           "function": _s(function), "args_hmac": _s(args_hmac), "session": _s(session)}
    return "sha256:" + sha256(canonical_bytes(doc)).hexdigest()


def entry_binding(entry: Mapping[str, Any]) -> str:
    """:func:`call_binding` of a logged ``host_decision`` entry."""
    skill = entry.get("skill")
    skill = skill if isinstance(skill, dict) else {}
    return call_binding(skill.get("id"), skill.get("manifest_digest"),
                        entry.get("host_function"), entry.get("args_hmac"),
                        entry.get("session"))


def _s(value: Any) -> str:
    return value if type(value) is str else "\x00invalid"


def signed_message(statement: Mapping[str, Any]) -> bytes:
    """The bytes an operator key signs for ``statement``.

    Raises:
        CanonicalError: the statement is outside the canonical JSON profile.
    """
    return DOMAIN + canonical_bytes(dict(statement))


def parse_time(text: str) -> datetime:
    """An RFC 3339 UTC time of a statement (``...Z``).

    Raises:
        ValueError: not of that form.
    """
    if type(text) is not str or not _TIME.fullmatch(text):
        raise ValueError(f"not an RFC 3339 UTC time: {text!r:.40}")
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)


def statement_problem(statement: Any, signature: Any) -> str | None:
    """What is wrong with the *shape* of a statement and its signature, or None.

    Checks exact fields and types, the id, binding, verdict, key id and time
    forms, ``issued <= not_after`` and a base64 64-byte signature. The
    signature itself and the key's role are checked by whoever holds the
    trust store.
    """
    if type(statement) is not dict or set(statement) != set(STATEMENT_FIELDS):
        return f"statement fields must be exactly {', '.join(STATEMENT_FIELDS)}"
    if statement["v"] != 1 or type(statement["v"]) is not int:
        return "statement version must be 1"
    checks = (("approval", APPROVAL_ID), ("binding", _BINDING), ("key_id", _KEY_ID))
    for name, pattern in checks:
        value = statement[name]
        if type(value) is not str or not pattern.fullmatch(value):
            return f"statement field {name!r} is malformed"
    if statement["verdict"] not in VERDICTS:
        return "statement verdict must be approve or deny"
    try:
        issued, not_after = parse_time(statement["issued"]), parse_time(statement["not_after"])
    except ValueError as exc:
        return f"statement time: {exc}"
    if not_after < issued:
        return "statement not_after is before issued"
    try:
        signed_message(statement)
    except CanonicalError as exc:
        return f"statement outside the canonical profile: {exc}"
    if signature_bytes(signature) is None:
        return "signature must be base64 of 64 bytes"
    return None


def signature_bytes(signature: Any) -> bytes | None:
    """The 64 raw bytes of a base64 ``signature``, or None when it is not that."""
    if type(signature) is not str or len(signature) != 88:
        return None
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 64 else None
