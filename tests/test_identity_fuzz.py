"""Hostile bytes into every identity parser: a typed error or a value, never a crash."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vak.errors import ConfigError, KeyFileError
from vak.identity.keys import (
    PRIVATE_KEY_FORMAT,
    SigningKey,
    format_public_key,
    load_public_key,
    load_signing_key,
    parse_public_key,
)
from vak.identity.trust import TrustStore

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=12,
)
_KEY = format_public_key(SigningKey(b"\x07" * 32).verify_key)
_fields = st.fixed_dictionaries({}, optional={
    "key": st.just(_KEY) | _json, "tier": st.sampled_from(["trusted", "untrusted"]) | _json,
    "skills": _json, "comment": _json, "expires": _json, "revoked": _json, "extra": _json,
})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.lists(_fields, max_size=3).map(lambda e: yaml.safe_dump({"keys": e}).encode()),
    _json.map(lambda v: yaml.safe_dump(v).encode()),
))
def test_trust_store_text_is_a_store_or_a_config_error(data: bytes) -> None:
    try:
        store = TrustStore.from_text(data, "fuzz.yaml")
    except ConfigError as exc:
        assert exc.details.get("file") == "fuzz.yaml" or exc.message.startswith("fuzz.yaml")
        return
    for entry in store.keys:
        assert entry.key_id.startswith("ed25519:")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120) | st.binary(max_size=40).map(
    lambda b: "vak-ed25519 " + base64.b64encode(b).decode()) | st.binary(max_size=60).map(
    lambda b: "ssh-ed25519 " + base64.b64encode(b).decode()))
def test_public_key_lines_parse_or_raise_key_file_error(line: str) -> None:
    try:
        key = parse_public_key(line)
    except KeyFileError:
        return
    assert len(bytes(key)) == 32


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300) | _json.map(lambda v: json.dumps(v).encode()) | st.dictionaries(
    st.sampled_from(["format", "seed", "public_key", "encrypted", "key_id"]), _json).map(
    lambda d: json.dumps({**d, "format": PRIVATE_KEY_FORMAT}).encode()))
def test_private_key_files_load_or_raise_key_file_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.key"
    path.write_bytes(data)
    for load in (load_signing_key, load_public_key):
        try:
            load(path)
        except KeyFileError:
            continue


@pytest.mark.parametrize("encrypted", [
    {"kdf": "argon2id", "cipher": "xsalsa20poly1305", "opslimit": 1, "memlimit": 8192,
     "salt": base64.b64encode(bytes(16)).decode(), "ciphertext": "AAAA"},
    {"kdf": "argon2id", "cipher": "xsalsa20poly1305", "opslimit": True, "memlimit": 8192},
    {"kdf": "argon2id", "cipher": "xsalsa20poly1305", "opslimit": 1, "memlimit": 1 << 40},
    {"kdf": "scrypt", "cipher": "xsalsa20poly1305"},
    "not a mapping",
], ids=["short-box", "bool-ops", "huge-mem", "other-kdf", "not-mapping"])
def test_hostile_encryption_blocks(tmp_path: Path, encrypted: object) -> None:
    path = tmp_path / "k.key"
    path.write_text(json.dumps({"format": PRIVATE_KEY_FORMAT, "encrypted": encrypted}))
    with pytest.raises(KeyFileError):
        load_signing_key(path, b"passphrase")
