"""Known answers from PyNaCl/libsodium: old signatures, key files and skills still work.

``tests/vectors/identity/pynacl.json`` was written by ``tools/identity_vectors.py``
with PyNaCl, before VAK moved to one Ed25519 library (``cryptography``). Each
test here reads what libsodium produced and checks that the current code
derives, verifies, decrypts and signs exactly the same bytes. Where PyNaCl
happens to be installed, Hypothesis also compares the two on random inputs.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from vak.audit.keys import parse_verifier_key, verifier_key
from vak.errors import ConfigError, KeyFileError
from vak.identity import _secretbox
from vak.identity.keys import (
    SigningKey,
    VerifyKey,
    load_public_key,
    load_signing_key,
    parse_public_key,
    public_key_id,
)
from vak.identity.signing import sign_skill, verify_skill
from vak.identity.trust import TrustStore

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "vectors" / "identity" / "pynacl.json").read_text("utf-8")
)


def _b(text: str) -> bytes:
    return base64.b64decode(text)


@pytest.mark.parametrize("vector", VECTORS["ed25519"], ids=lambda v: v["key_id"][8:16])
def test_ed25519_signatures_match_libsodium(vector: dict[str, str]) -> None:
    key = SigningKey(_b(vector["seed"]))
    assert bytes(key.verify_key) == _b(vector["public"])
    assert public_key_id(key.verify_key) == vector["key_id"]
    assert key.sign(_b(vector["message"])) == _b(vector["signature"])
    VerifyKey(_b(vector["public"])).verify(_b(vector["message"]), _b(vector["signature"]))
    bad = bytearray(_b(vector["signature"]))
    bad[0] ^= 1
    with pytest.raises(InvalidSignature):
        key.verify_key.verify(_b(vector["message"]), bytes(bad))


@pytest.mark.parametrize("vector", VECTORS["argon2id"], ids=lambda v: str(v["memlimit"]))
def test_argon2id_matches_libsodium(vector: dict[str, Any]) -> None:
    derived = _secretbox.derive_key(_b(vector["password"]), _b(vector["salt"]),
                                    vector["opslimit"], vector["memlimit"])
    assert derived == _b(vector["key"])


@pytest.mark.parametrize("vector", VECTORS["secretbox"], ids=lambda v: str(len(_b(v["message"]))))
def test_secretbox_matches_libsodium(vector: dict[str, str]) -> None:
    key, box = _b(vector["key"]), _b(vector["box"])
    assert _secretbox.seal(key, _b(vector["nonce"]), _b(vector["message"])) == box
    assert _secretbox.open_box(key, box) == _b(vector["message"])
    for i in (0, 24, 39, len(box) - 1):  # nonce, tag, ciphertext: any flipped byte fails
        damaged = bytearray(box)
        damaged[i] ^= 0x40
        with pytest.raises(_secretbox.BoxError):
            _secretbox.open_box(key, bytes(damaged))


def test_secretbox_refuses_short_boxes_and_wrong_keys() -> None:
    vector = VECTORS["secretbox"][3]
    with pytest.raises(_secretbox.BoxError):
        _secretbox.open_box(_b(vector["key"]), _b(vector["box"])[:39])
    with pytest.raises(_secretbox.BoxError):
        _secretbox.open_box(bytes(32), _b(vector["box"]))
    with pytest.raises(ValueError):
        _secretbox.seal(bytes(31), bytes(24), b"x")


@pytest.mark.parametrize("vector", VECTORS["key_files"], ids=lambda v: v["name"])
def test_old_key_files_load(tmp_path: Path, vector: dict[str, Any]) -> None:
    private = tmp_path / "old.key"
    private.write_text(vector["private"])
    private.chmod(0o600)
    (tmp_path / "old.key.pub").write_text(vector["public"])
    passphrase = None if vector["passphrase"] is None else _b(vector["passphrase"])
    key = load_signing_key(private, passphrase)
    assert bytes(key) == _b(vector["seed"])
    assert load_public_key(tmp_path / "old.key.pub") == key.verify_key
    assert load_public_key(private) == key.verify_key
    if passphrase is not None:
        with pytest.raises(KeyFileError, match="wrong passphrase"):
            load_signing_key(private, passphrase + b"x")
        with pytest.raises(KeyFileError, match="passphrase-encrypted"):
            load_signing_key(private)


def test_old_signed_skill_verifies_and_re_signs_identically(tmp_path: Path) -> None:
    vector = VECTORS["signed_skill"]
    skill = tmp_path / "vector"
    skill.mkdir()
    (skill / "skill.yaml").write_text(vector["skill.yaml"])
    (skill / vector["module_path"]).write_bytes(_b(vector["module"]))
    trusted = parse_public_key(vector["trust_key"])
    verified = verify_skill(skill, TrustStore.from_keys(trusted))
    assert verified.manifest.version == "1.0.0-rc.1"
    again = tmp_path / "again"
    shutil.copytree(skill, again)
    key = _vector_signer(trusted)
    sign_skill(again, key)
    assert (again / "skill.yaml").read_text() == vector["skill.yaml"]


def _vector_signer(public: VerifyKey) -> SigningKey:
    """The generator's signer (seed 200 of tools/identity_vectors.py)."""
    import hashlib

    key = SigningKey(hashlib.sha256(b"vak identity vector seed 200").digest())
    assert key.verify_key == public
    return key


# --------------------------------------------------------------------------- weak keys

_P = 2**255 - 19
WEAK = {
    "identity": bytes([1]) + bytes(31),
    "order-4": bytes(32),
    "order-2": (_P - 1).to_bytes(32, "little"),
    "non-canonical-y": (_P + 1).to_bytes(32, "little"),
    "not-a-point": b"\xff" * 32,
}


@pytest.mark.parametrize("raw", WEAK.values(), ids=WEAK.keys())
def test_weak_public_keys_are_refused_everywhere(tmp_path: Path, raw: bytes) -> None:
    line = "vak-ed25519 " + base64.b64encode(raw).decode()
    with pytest.raises(ValueError):
        VerifyKey(raw)
    with pytest.raises(KeyFileError, match=r"not usable|not an Ed25519"):
        parse_public_key(line)
    trust = tmp_path / "trust.yaml"
    trust.write_text(f'keys:\n  - key: "{line}"\n    tier: trusted\n')
    with pytest.raises(ConfigError, match=r"keys\[0\]\.key"):
        TrustStore.load(trust)
    with pytest.raises(KeyFileError):
        parse_verifier_key(verifier_key("vak.local/kernel", raw))


def test_the_identity_key_would_accept_a_forgery_without_the_check() -> None:
    """Why the check exists: OpenSSL accepts (R = identity, S = 0) for the identity key."""
    forged = WEAK["identity"] + bytes(32)
    raw_key = Ed25519PublicKey.from_public_bytes(WEAK["identity"])
    # a stricter backend would raise here: the check is then belt and braces
    with contextlib.suppress(InvalidSignature):
        raw_key.verify(forged, b"any message at all")
    with pytest.raises(ValueError):
        VerifyKey(WEAK["identity"])


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_real_keys_are_never_weak(seed: bytes) -> None:
    VerifyKey(bytes(SigningKey(seed).verify_key))


# --------------------------------------------------------------------------- differential

def _nacl(module: str) -> Any:
    return pytest.importorskip(module, reason="PyNaCl not installed (the vectors still run)")


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(min_size=24, max_size=24),
       st.binary(max_size=300))
def test_secretbox_equals_pynacl(key: bytes, nonce: bytes, message: bytes) -> None:
    secret = _nacl("nacl.secret")
    assert _secretbox.seal(key, nonce, message) == bytes(
        secret.SecretBox(key).encrypt(message, nonce))


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=300))
def test_signatures_equal_pynacl(seed: bytes, message: bytes) -> None:
    theirs = _nacl("nacl.signing").SigningKey(seed)
    assert SigningKey(seed).sign(message) == theirs.sign(message).signature
