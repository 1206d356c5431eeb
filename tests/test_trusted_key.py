"""One ``TrustedKey`` for skill signers and audit log keys; one key-file module for both."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature

import vak.audit.keys as audit_keys
import vak.identity.keyfile as keyfile
from vak.errors import KeyFileError
from vak.identity.keys import SigningKey, note_key_id, verifier_key
from vak.identity.trust import Tier, TrustedKey

ORIGIN = "vak.local/kernel"


def test_the_audit_log_uses_the_identity_classes_and_key_files() -> None:
    assert audit_keys.TrustedKey is TrustedKey
    assert audit_keys.write_private_file is keyfile.write_private_file
    assert audit_keys.load_or_create_secret is keyfile.load_or_create_secret


def test_verifier_keys_parse_into_the_one_trusted_key() -> None:
    key = SigningKey(bytes(range(32)))
    raw = bytes(key.verify_key)
    vkey = verifier_key(ORIGIN, raw)
    # the C2SP key hash, computed here from its definition
    expected = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + raw).digest()[:4]
    assert note_key_id(ORIGIN, raw) == expected == audit_keys.key_id(ORIGIN, raw)
    encoded = base64.b64encode(b"\x01" + raw).decode()
    assert vkey == f"{ORIGIN}+{expected.hex()}+{encoded}"
    parsed = audit_keys.parse_verifier_key(vkey + " revoked not-after=2030-01-02")
    assert parsed == TrustedKey(key.verify_key, revoked=True,
                                expires=datetime(2030, 1, 2, tzinfo=UTC), name=ORIGIN)
    assert parsed.vkey == vkey and parsed.note_key_id == expected and parsed.public == raw
    assert parsed.key_id == key.verify_key.key_id and parsed.tier is Tier.TRUSTED
    assert parsed.not_after == "2030-01-02T00:00:00Z"
    parsed.verify(key.sign(b"note"), b"note")
    with pytest.raises(InvalidSignature):
        parsed.verify(key.sign(b"note"), b"other")


@pytest.mark.parametrize(("text", "hint"), [
    (None, "must be a string"),
    ("", "empty"),
    ("a+b", "not a verifier key"),
    (f"{ORIGIN}+00000000+" + base64.b64encode(b"\x01" + bytes(range(32))).decode(),
     "does not match"),
    (verifier_key(ORIGIN, bytes(SigningKey(bytes(32)).verify_key)) + " not-after=soon",
     "not a time"),
    (verifier_key(ORIGIN, bytes(SigningKey(bytes(32)).verify_key)) + " trusted", "unknown flag"),
], ids=["not-str", "empty", "no-parts", "bad-id", "bad-time", "bad-flag"])
def test_bad_verifier_keys(text: object, hint: str) -> None:
    with pytest.raises(KeyFileError, match=hint):
        audit_keys.parse_verifier_key(text)  # type: ignore[arg-type]


def test_a_long_rotation_history_loads(tmp_path: Path) -> None:
    lines = [verifier_key(ORIGIN, bytes(SigningKey(i.to_bytes(32, "big")).verify_key))
             for i in range(1, 1001)]
    pub = tmp_path / "log.key.pub"
    pub.write_text("\n".join(lines) + "\n")
    assert [k.vkey for k in audit_keys.load_trusted_keys(pub)] == lines
