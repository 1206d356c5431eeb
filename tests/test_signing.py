"""Keys, trust store, and sign -> verify round trips (vak.identity: keys, trust, signing)."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from signing_helpers import key_id, make_skill, signed_skill, trust_of, wasm

from vak.canonical import canonical_bytes
from vak.errors import (
    ConfigError,
    KeyFileError,
    ManifestError,
    SignatureError,
    UntrustedSignerError,
)
from vak.identity.keys import (
    SigningKey,
    format_public_key,
    generate_key_file,
    load_public_key,
    load_signing_key,
    parse_public_key,
    public_key_id,
)
from vak.identity.manifest import load_manifest
from vak.identity.signing import (
    VerifiedSkill,
    manifest_digest,
    sign_skill,
    signed_bytes,
    verify_skill,
)
from vak.identity.trust import Tier, TrustedKey, TrustStore

# --------------------------------------------------------------------------- key ids


def test_key_id_known_answer() -> None:
    vk = SigningKey(bytes(32)).verify_key
    expected = "ed25519:" + hashlib.sha256(bytes(vk)).hexdigest()[:32]
    assert public_key_id(vk) == expected
    assert public_key_id(vk) == "ed25519:" + hashlib.sha256(
        bytes.fromhex("3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29")
    ).hexdigest()[:32]


# --------------------------------------------------------------------------- key files


def test_keygen_writes_private_0600_and_pub(tmp_path: Path) -> None:
    out = tmp_path / "k.key"
    kid = generate_key_file(out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    sk = load_signing_key(out)
    assert public_key_id(sk.verify_key) == kid
    assert public_key_id(load_public_key(tmp_path / "k.key.pub")) == kid
    assert public_key_id(load_public_key(out)) == kid  # private file gives its public half
    doc = json.loads(out.read_text())
    assert doc["format"] == "vak-ed25519-private-key/1" and "seed" in doc


def test_keygen_refuses_overwrite_unless_force(tmp_path: Path) -> None:
    out = tmp_path / "k.key"
    first = generate_key_file(out)
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        generate_key_file(out)
    assert public_key_id(load_signing_key(out).verify_key) == first
    assert generate_key_file(out, force=True) != first


def test_passphrase_encrypted_key(tmp_path: Path) -> None:
    out = tmp_path / "k.key"
    kid = generate_key_file(out, passphrase=b"correct horse")
    text = out.read_text()
    doc = json.loads(text)
    assert "seed" not in doc and doc["encrypted"]["kdf"] == "argon2id"
    assert public_key_id(load_signing_key(out, b"correct horse").verify_key) == kid
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        load_signing_key(out, b"wrong")
    with pytest.raises(KeyFileError, match="passphrase-encrypted"):
        load_signing_key(out)
    assert public_key_id(load_public_key(out)) == kid


@pytest.mark.parametrize(
    ("content", "hint"),
    [
        (b"", "not a VAK private key"),
        (b"{}", "not a VAK private key"),
        (b'{"format": "vak-ed25519-private-key/1", "seed": "!!"}', "not valid base64"),
        (b'{"format": "vak-ed25519-private-key/1", "seed": "AAAA"}', "must be 32 bytes"),
        (json.dumps({"format": "vak-ed25519-private-key/1", "seed": "A" * 43 + "=",
                     "public_key": "B" * 43 + "="}).encode(), "does not match"),
        (b"-----BEGIN OPENSSH PRIVATE KEY-----\nnope\n-----END OPENSSH PRIVATE KEY-----\n",
         "cannot load OpenSSH"),
    ],
    ids=["empty", "no-format", "bad-b64", "short-seed", "pub-mismatch", "bad-openssh"],
)
def test_bad_private_key_files(tmp_path: Path, content: bytes, hint: str) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    with pytest.raises(KeyFileError, match=hint):
        load_signing_key(path)


def test_missing_key_file_says_how_to_create(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError) as info:
        load_signing_key(tmp_path / "none.key")
    assert "vak-skill-sign keygen" in info.value.details["fix"]


def _openssh_pair(tmp_path: Path) -> tuple[Path, str]:
    priv = Ed25519PrivateKey.generate()
    path = tmp_path / "id_ed25519"
    path.write_bytes(priv.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ))
    pub = priv.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode() + " alice@example"
    (tmp_path / "id_ed25519.pub").write_text(pub + "\n")
    return path, pub


def test_openssh_key_generated_by_cryptography(tmp_path: Path) -> None:
    path, pub = _openssh_pair(tmp_path)
    sk = load_signing_key(path)
    assert parse_public_key(pub) == sk.verify_key
    assert load_public_key(tmp_path / "id_ed25519.pub") == sk.verify_key
    skill = signed_skill(tmp_path, sk)
    trust = TrustStore.from_mapping({"keys": [{"key": pub, "tier": "trusted"}]})
    assert verify_skill(skill, trust).signer_key_id == public_key_id(sk.verify_key)


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen not installed")
def test_real_ssh_keygen_key(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bob@host",
                    "-f", str(key)], check=True, timeout=30)
    sk = load_signing_key(key)
    assert load_public_key(key.with_suffix(".pub")) == sk.verify_key
    skill = signed_skill(tmp_path, sk)
    trust = TrustStore.from_keys(load_public_key(key.with_suffix(".pub")))
    assert verify_skill(skill, trust).signer_key_id == key_id(sk)


def test_openssh_non_ed25519_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    path = tmp_path / "id_ecdsa"
    path.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ))
    with pytest.raises(KeyFileError, match="not ed25519"):
        load_signing_key(path)


@pytest.mark.parametrize(
    "line",
    ["", "ssh-rsa AAAAB3NzaC1yc2E", "vak-ed25519 !!!", "vak-ed25519 AAAA",
     "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA=="],
    ids=["empty", "rsa", "bad-b64", "short", "truncated-ssh"],
)
def test_bad_public_key_lines(line: str) -> None:
    with pytest.raises(KeyFileError):
        parse_public_key(line, "k.pub")


def test_public_key_line_round_trip() -> None:
    vk = SigningKey.generate().verify_key
    assert parse_public_key(format_public_key(vk, "ci key")) == vk


# --------------------------------------------------------------------------- trust store


def _store(tmp_path: Path, entries: list[dict[str, object]]) -> TrustStore:
    path = tmp_path / "trust.yaml"
    path.write_text(yaml.safe_dump({"keys": entries}))
    return TrustStore.load(path)


def test_trust_store_file(tmp_path: Path) -> None:
    a, b = SigningKey.generate(), SigningKey.generate()
    store = _store(tmp_path, [
        {"key": format_public_key(a.verify_key), "tier": "trusted", "comment": "ci"},
        {"key": format_public_key(b.verify_key), "tier": "untrusted", "skills": ["adder"],
         "expires": "2999-01-01T00:00:00Z"},
    ])
    assert len(store) == 2 and key_id(a) in store
    assert store.lookup(key_id(a)).tier is Tier.TRUSTED
    entry = store.lookup(key_id(b))
    assert entry.tier is Tier.UNTRUSTED and entry.skills == frozenset({"adder"})
    assert entry.expires == datetime(2999, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("doc", "hint"),
    [
        ({"keys": "x"}, "expected a list"),
        ({"keyz": []}, "unknown field"),
        ({"keys": [{"tier": "trusted"}]}, r"keys\[0\]\.key"),
        ({"keys": [{"key": "ssh-rsa AAAA", "tier": "trusted"}]}, "not an Ed25519"),
        ({"keys": [{"key": "K", "tier": "super"}]}, r"keys\[0\]\.tier.*trusted or untrusted"),
        ({"keys": [{"key": "K", "tier": "trusted", "skills": "adder"}]}, "list of skill names"),
        ({"keys": [{"key": "K", "tier": "trusted", "expires": "2027-01-01"}]}, "time zone"),
        ({"keys": [{"key": "K", "tier": "trusted", "expires": "soon"}]}, "not a time"),
        ({"keys": [{"key": "K", "tier": "trusted", "revoked": "no"}]}, "true or false"),
        ({"keys": [{"key": "K", "tier": "trusted", "colour": 1}]}, "unknown field"),
        ({"keys": [{"key": "K", "tier": "trusted"}, {"key": "K", "tier": "untrusted"}]},
         "listed twice"),
    ],
    ids=["not-list", "unknown-top", "no-key", "rsa", "bad-tier", "skills-str",
         "expires-date", "expires-junk", "revoked-str", "unknown-entry", "duplicate"],
)
def test_bad_trust_store(tmp_path: Path, doc: dict[str, object], hint: str) -> None:
    pub = format_public_key(SigningKey.generate().verify_key)
    text = yaml.safe_dump(doc).replace("key: K", f"key: {pub}")
    path = tmp_path / "trust.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=hint):
        TrustStore.load(path)


def test_trust_store_missing_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        TrustStore.load(tmp_path / "none.yaml")
    (tmp_path / "t.yaml").write_text("keys: []\nkeys: []\n")
    with pytest.raises(ConfigError, match="duplicate key"):
        TrustStore.load(tmp_path / "t.yaml")


def test_lookup_unknown_raises() -> None:
    with pytest.raises(UntrustedSignerError, match="not in the trust store"):
        TrustStore.from_keys().lookup("ed25519:" + "0" * 32)


# --------------------------------------------------------------------------- sign/verify


def test_sign_then_verify_round_trip(tmp_path: Path) -> None:
    sk = SigningKey.generate()
    skill = make_skill(tmp_path)
    signed = sign_skill(skill, sk)
    assert signed.module.sha256 == hashlib.sha256(wasm()).hexdigest()
    assert signed.signature is not None and signed.signature.key_id == key_id(sk)
    result = verify_skill(skill, trust_of(sk))
    assert isinstance(result, VerifiedSkill)
    assert result.module_bytes == wasm()
    assert result.module_sha256 == signed.module.sha256
    assert result.signer_key_id == key_id(sk) and result.tier is Tier.TRUSTED
    assert result.skill_dir == skill and result.manifest == load_manifest(skill)
    assert result.manifest_sha256 == manifest_digest(result.manifest)
    assert result.manifest_sha256 == hashlib.sha256(signed_bytes(signed.raw)).hexdigest()


def test_signature_is_over_canonical_bytes(tmp_path: Path) -> None:
    sk = SigningKey.generate()
    skill = signed_skill(tmp_path, sk)
    raw = load_manifest(skill).raw
    message = canonical_bytes({k: v for k, v in raw.items() if k != "signature"})
    import base64

    sk.verify_key.verify(message, base64.b64decode(raw["signature"]["value"]))


def test_signed_file_keeps_field_order_and_mode(tmp_path: Path) -> None:
    skill = make_skill(tmp_path)
    (skill / "skill.yaml").chmod(0o640)
    order = list(yaml.safe_load((skill / "skill.yaml").read_text()))
    sign_skill(skill, SigningKey.generate())
    after = yaml.safe_load((skill / "skill.yaml").read_text())
    assert list(after) == [*order, "signature"]
    assert list(after["module"]) == ["path", "sha256"]
    assert stat.S_IMODE((skill / "skill.yaml").stat().st_mode) == 0o640
    assert [p.name for p in skill.iterdir() if p.name.startswith(".")] == []


def test_resign_with_other_key_replaces_signature(tmp_path: Path) -> None:
    a, b = SigningKey.generate(), SigningKey.generate()
    skill = signed_skill(tmp_path, a)
    sign_skill(skill, b)
    assert verify_skill(skill, trust_of(b)).signer_key_id == key_id(b)
    with pytest.raises(UntrustedSignerError):
        verify_skill(skill, trust_of(a))


def test_sign_invalid_manifest_leaves_file_untouched(tmp_path: Path) -> None:
    skill = make_skill(tmp_path, bogus=1)
    before = (skill / "skill.yaml").read_bytes()
    with pytest.raises(ManifestError, match="unknown field 'bogus'"):
        sign_skill(skill, SigningKey.generate())
    assert (skill / "skill.yaml").read_bytes() == before


def test_sign_missing_module(tmp_path: Path) -> None:
    skill = make_skill(tmp_path)
    (skill / "adder.wasm").unlink()
    with pytest.raises(ManifestError, match="does not exist"):
        sign_skill(skill, SigningKey.generate())


def test_unsigned_skill_refused(tmp_path: Path) -> None:
    with pytest.raises(SignatureError, match="not signed"):
        verify_skill(make_skill(tmp_path), trust_of(SigningKey.generate()))


def test_untrusted_tier_is_returned(tmp_path: Path) -> None:
    sk = SigningKey.generate()
    skill = signed_skill(tmp_path, sk)
    trust = TrustStore.from_keys(sk.verify_key, tier=Tier.UNTRUSTED)
    assert verify_skill(skill, trust).tier is Tier.UNTRUSTED


@pytest.mark.parametrize(
    ("entry", "hint"),
    [
        ({"revoked": True}, "revoked"),
        ({"expires": datetime(2020, 1, 1, tzinfo=UTC)}, "expired"),
        ({"skills": frozenset({"other"})}, "may not sign skill 'adder'"),
        ({"skills": frozenset()}, "allowed: none"),
    ],
    ids=["revoked", "expired", "skill-not-allowed", "no-skills"],
)
def test_trust_entry_restrictions(tmp_path: Path, entry: dict[str, object], hint: str) -> None:
    sk = SigningKey.generate()
    skill = signed_skill(tmp_path, sk)
    trusted = TrustedKey(sk.verify_key, **entry)  # type: ignore[arg-type]
    with pytest.raises(UntrustedSignerError, match=hint):
        verify_skill(skill, TrustStore.from_keys(trusted))


def test_expiry_uses_given_now(tmp_path: Path) -> None:
    sk = SigningKey.generate()
    skill = signed_skill(tmp_path, sk)
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    trust = TrustStore.from_keys(TrustedKey(sk.verify_key, expires=expires))
    verify_skill(skill, trust, now=expires - timedelta(seconds=1))
    with pytest.raises(UntrustedSignerError, match="expired"):
        verify_skill(skill, trust, now=expires)


def test_skills_allow_list_passes_for_named_skill(tmp_path: Path) -> None:
    sk = SigningKey.generate()
    skill = signed_skill(tmp_path, sk)
    verify_skill(skill, TrustStore.from_keys(sk.verify_key, skills=["adder"]))
