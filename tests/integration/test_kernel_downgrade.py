"""``Kernel.load_skill`` refuses a rollback to a lower version from the same signer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import wasmtime
from kernel_helpers import COUNTER_WAT
from sandbox_helpers import small_config
from signing_helpers import make_skill

from vak.errors import ConfigError, SkillDowngradeError
from vak.identity.floor import VERSION_FLOOR_FILE
from vak.identity.keys import SigningKey, format_public_key
from vak.identity.signing import sign_skill
from vak.kernel import Kernel


def _setup(tmp_path: Path) -> tuple[Path, SigningKey, Path]:
    key = SigningKey.generate()
    trust = tmp_path / "trust.yaml"
    trust.write_text(f'keys:\n  - key: "{format_public_key(key.verify_key)}"\n'
                     "    tier: trusted\n")
    return tmp_path / "state", key, trust


def _skill(root: Path, key: SigningKey, version: str) -> Path:
    skill = make_skill(root / version, "adder", version=version)
    (skill / "adder.wasm").write_bytes(wasmtime.wat2wasm(COUNTER_WAT))  # a kernel-ABI module
    sign_skill(skill, key)
    return skill


def test_rollback_is_refused_unless_allowed(tmp_path: Path) -> None:
    state, key, trust = _setup(tmp_path)
    config = small_config(state, trust_store=trust)
    with Kernel(config) as kernel:
        kernel.load_skill(_skill(tmp_path, key, "1.2.0"))
    old = _skill(tmp_path, key, "1.2.0-rc.1")
    with Kernel(config) as kernel, pytest.raises(SkillDowngradeError) as info:
        kernel.load_skill(old)
    assert info.value.details["recorded_version"] == "1.2.0"
    assert info.value.details["version"] == "1.2.0-rc.1"
    assert "adder" in info.value.message and "allow_downgrade" in info.value.details["fix"]
    with Kernel(config.with_(allow_downgrade=True)) as kernel:
        assert [t.name for t in kernel.load_skill(old)] == ["adder__execute"]
    # the permitted rollback did not lower the floor
    floors = json.loads((state / VERSION_FLOOR_FILE).read_text())["skills"]
    assert floors["adder"] == {key.verify_key.key_id: "1.2.0"}
    with Kernel(config) as kernel, pytest.raises(SkillDowngradeError):
        kernel.load_skill(old)
    with Kernel(config) as kernel:
        kernel.load_skill(_skill(tmp_path, key, "1.10.0"))


def test_a_damaged_floor_stops_the_kernel_at_start(tmp_path: Path) -> None:
    state, _key, trust = _setup(tmp_path)
    state.mkdir()
    (state / VERSION_FLOOR_FILE).write_text('{"format": "vak-version-floor/1", "skills": []}')
    with pytest.raises(ConfigError, match="version floor is damaged"):
        Kernel(small_config(state, trust_store=trust))
