"""Tampered skills: every change is refused with its own typed error, never success.

The one thing that must still verify is a *semantically identical* manifest
(fields reordered, re-serialised, comments or whitespace changed): the
signature covers canonical JSON, not YAML text. That is tested too.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from signing_helpers import signed_skill, trust_of, wasm

from vak.errors import (
    DigestMismatchError,
    ManifestError,
    SignatureError,
    SigningError,
    UntrustedSignerError,
)
from vak.identity.keys import SigningKey
from vak.identity.manifest import load_yaml_mapping
from vak.identity.signing import verify_skill

KEY = SigningKey(b"\x01" * 32)
OTHER = SigningKey(b"\x02" * 32)
TYPED = (ManifestError, SigningError)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return signed_skill(tmp_path_factory.mktemp("pristine"), KEY)


def _copy(pristine: Path, dest: Path) -> Path:
    target = dest / "skill"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(pristine, target)
    return target


def _edit(skill: Path, change: Any) -> None:
    doc = yaml.safe_load((skill / "skill.yaml").read_text())
    change(doc)
    (skill / "skill.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


# --------------------------------------------------------------------------- hypothesis


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_byte_flip_in_manifest_is_refused_or_harmless(
    pristine: Path, tmp_path: Path, data: st.DataObject
) -> None:
    skill = _copy(pristine, tmp_path)
    original = (skill / "skill.yaml").read_bytes()
    pos = data.draw(st.integers(0, len(original) - 1), label="pos")
    mask = data.draw(st.integers(1, 255), label="mask")
    tampered = bytearray(original)
    tampered[pos] ^= mask
    (skill / "skill.yaml").write_bytes(bytes(tampered))
    try:
        result = verify_skill(skill, trust_of(KEY))
    except TYPED:
        return
    # success is only acceptable when the change did not change any value,
    # e.g. `kv: true` -> `kv: True` or a byte inside the YAML comment header
    assert result.manifest.raw == load_yaml_mapping(original, "orig")


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_byte_flip_in_module_is_digest_mismatch(
    pristine: Path, tmp_path: Path, data: st.DataObject
) -> None:
    skill = _copy(pristine, tmp_path)
    module = skill / "adder.wasm"
    original = module.read_bytes()
    pos = data.draw(st.integers(0, len(original) - 1), label="pos")
    mask = data.draw(st.integers(1, 255), label="mask")
    tampered = bytearray(original)
    tampered[pos] ^= mask
    module.write_bytes(bytes(tampered))
    with pytest.raises(DigestMismatchError):
        verify_skill(skill, trust_of(KEY))


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=st.binary(min_size=1, max_size=16), truncate=st.booleans())
def test_module_appended_or_truncated(
    pristine: Path, tmp_path: Path, extra: bytes, truncate: bool
) -> None:
    skill = _copy(pristine, tmp_path)
    module = skill / "adder.wasm"
    data = module.read_bytes()
    module.write_bytes(data[: -len(extra)] if truncate and len(extra) < len(data) else data + extra)
    with pytest.raises(DigestMismatchError):
        verify_skill(skill, trust_of(KEY))


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.randoms(use_true_random=False), flow=st.booleans(), width=st.integers(20, 200))
def test_reordered_and_reserialised_manifest_still_verifies(
    pristine: Path, tmp_path: Path, seed: Any, flow: bool, width: int
) -> None:
    skill = _copy(pristine, tmp_path)

    def shuffle(value: Any) -> Any:
        if isinstance(value, dict):
            items = list(value.items())
            seed.shuffle(items)
            return {k: shuffle(v) for k, v in items}
        if isinstance(value, list):
            return [shuffle(v) for v in value]
        return value

    doc = shuffle(yaml.safe_load((skill / "skill.yaml").read_text()))
    text = "# reformatted by a human\n" + yaml.safe_dump(
        doc, sort_keys=False, default_flow_style=flow, width=width
    )
    (skill / "skill.yaml").write_text(text)
    result = verify_skill(skill, trust_of(KEY))
    assert result.signer_key_id == trust_of(KEY).keys[0].key_id


# --------------------------------------------------------------------------- tables


def _set_description(doc: dict[str, Any]) -> None:
    doc["description"] = doc["description"] + " "


def _grant_http(doc: dict[str, Any]) -> None:
    doc["capabilities"]["http"] = {"hosts": ["evil.example"]}


def _raise_limit(doc: dict[str, Any]) -> None:
    doc["limits"]["max_fuel"] += 1


def _drop_capability(doc: dict[str, Any]) -> None:
    del doc["capabilities"]["log"]


def _reorder_list(doc: dict[str, Any]) -> None:
    doc["capabilities"]["fs"]["read"] = ["/workspace", "/tmp"]


def _change_digest(doc: dict[str, Any]) -> None:
    doc["module"]["sha256"] = "0" * 64


def _drop_digest(doc: dict[str, Any]) -> None:
    del doc["module"]["sha256"]


def _flip_sig(doc: dict[str, Any]) -> None:
    value = doc["signature"]["value"]
    doc["signature"]["value"] = ("B" if value[0] == "A" else "A") + value[1:]


def _drop_sig(doc: dict[str, Any]) -> None:
    del doc["signature"]


def _other_key_id(doc: dict[str, Any]) -> None:
    doc["signature"]["key_id"] = "ed25519:" + "f" * 32


def _bad_alg(doc: dict[str, Any]) -> None:
    doc["signature"]["algorithm"] = "rsa"


def _sig_garbage(doc: dict[str, Any]) -> None:
    doc["signature"]["value"] = "not base64"


def _add_field(doc: dict[str, Any]) -> None:
    doc["x-extra"] = True


MANIFEST_EDITS = [
    ("description", _set_description, SignatureError),
    ("grant-http", _grant_http, SignatureError),
    ("raise-limit", _raise_limit, SignatureError),
    ("drop-capability", _drop_capability, SignatureError),
    ("add-fs-path", _reorder_list, SignatureError),
    ("change-digest", _change_digest, SignatureError),
    ("drop-digest", _drop_digest, SignatureError),
    ("flip-signature", _flip_sig, SignatureError),
    ("remove-signature", _drop_sig, SignatureError),
    ("unknown-key-id", _other_key_id, UntrustedSignerError),
    ("algorithm", _bad_alg, ManifestError),
    ("garbage-signature", _sig_garbage, ManifestError),
    ("unknown-field", _add_field, ManifestError),
]


@pytest.mark.parametrize(
    ("change", "error"), [r[1:] for r in MANIFEST_EDITS], ids=[r[0] for r in MANIFEST_EDITS]
)
def test_manifest_edit_refused(
    pristine: Path, tmp_path: Path, change: Any, error: type[Exception]
) -> None:
    skill = _copy(pristine, tmp_path)
    _edit(skill, change)
    with pytest.raises(error) as info:
        verify_skill(skill, trust_of(KEY))
    assert type(info.value) is error
    assert str(skill / "skill.yaml") in info.value.message or "signer" in info.value.message


def test_signature_from_another_key_is_untrusted(tmp_path: Path) -> None:
    skill = signed_skill(tmp_path, OTHER)
    with pytest.raises(UntrustedSignerError, match="not in the trust store"):
        verify_skill(skill, trust_of(KEY))


def test_signature_by_other_key_under_trusted_key_id(pristine: Path, tmp_path: Path) -> None:
    """A valid signature by OTHER relabelled with KEY's id must not verify."""
    forged = signed_skill(tmp_path / "forged", OTHER)
    genuine = yaml.safe_load((pristine / "skill.yaml").read_text())
    _edit(forged, lambda d: d["signature"].update(key_id=genuine["signature"]["key_id"]))
    with pytest.raises(SignatureError, match="does not verify"):
        verify_skill(forged, trust_of(KEY))


def test_module_swapped_for_another_signed_skills_module(pristine: Path, tmp_path: Path) -> None:
    other = signed_skill(tmp_path / "o", KEY, tag=7)
    verify_skill(other, trust_of(KEY))
    skill = _copy(pristine, tmp_path)
    shutil.copyfile(other / "adder.wasm", skill / "adder.wasm")
    assert (skill / "adder.wasm").read_bytes() == wasm(7)
    with pytest.raises(DigestMismatchError, match="does not match the signed digest"):
        verify_skill(skill, trust_of(KEY))


def test_manifest_swapped_between_signed_skills(pristine: Path, tmp_path: Path) -> None:
    other = signed_skill(tmp_path / "o", KEY, tag=7)
    skill = _copy(pristine, tmp_path)
    shutil.copyfile(other / "skill.yaml", skill / "skill.yaml")
    with pytest.raises(DigestMismatchError):
        verify_skill(skill, trust_of(KEY))


def test_module_replaced_by_symlink_outside(pristine: Path, tmp_path: Path) -> None:
    skill = _copy(pristine, tmp_path)
    outside = tmp_path / "outside.wasm"
    shutil.copyfile(skill / "adder.wasm", outside)
    (skill / "adder.wasm").unlink()
    (skill / "adder.wasm").symlink_to(outside)
    with pytest.raises(ManifestError, match="outside the skill directory"):
        verify_skill(skill, trust_of(KEY))


def test_module_removed(pristine: Path, tmp_path: Path) -> None:
    skill = _copy(pristine, tmp_path)
    (skill / "adder.wasm").unlink()
    with pytest.raises(ManifestError, match="does not exist"):
        verify_skill(skill, trust_of(KEY))


def test_verified_bytes_are_what_was_hashed(pristine: Path, tmp_path: Path) -> None:
    """Swapping the file after verification cannot change what the kernel compiles."""
    skill = _copy(pristine, tmp_path)
    result = verify_skill(skill, trust_of(KEY))
    (skill / "adder.wasm").write_bytes(wasm(99))
    assert result.module_bytes == wasm(0)
