"""KernelConfig: TOML loading, relative paths, unknown keys refused with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from vak.config import SHIPPED_POLICY_DIR, KernelConfig
from vak.errors import ConfigError


def test_defaults_resolve_under_state_dir(tmp_path: Path) -> None:
    cfg = KernelConfig(state_dir=tmp_path)
    assert cfg.resolved("audit_log") == tmp_path / "audit" / "vak.log"
    assert cfg.resolved("kv_path") == tmp_path / "kv.sqlite3"
    assert cfg.all_policy_dirs[0] == SHIPPED_POLICY_DIR


def test_toml_paths_resolve_against_file(tmp_path: Path) -> None:
    (tmp_path / "vak.toml").write_text(
        'state_dir = "state"\ntrust_store = "trust.yaml"\npolicy_dirs = ["pol"]\n'
        '[audit]\nlog = "a/log.jsonl"\nfsync = "batched:5"\n'
        '[host.fs_mounts]\n"/workspace" = "ws"\n'
        "[worker]\nforce = true\n"
    )
    cfg = KernelConfig.from_toml(tmp_path / "vak.toml")
    assert cfg.state_dir == tmp_path / "state"
    assert cfg.trust_store == tmp_path / "trust.yaml"
    assert cfg.policy_dirs == (tmp_path / "pol",)
    assert cfg.resolved("audit_log") == tmp_path / "a" / "log.jsonl"
    assert cfg.audit_fsync == "batched:5"
    assert cfg.fs_mounts == {"/workspace": tmp_path / "ws"}
    assert cfg.force_worker is True


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("bogus = 1\n", "bogus"),
        ("[audit]\nlogg = 'x'\n", "audit.logg"),
        ("trust_store = 3\n", "trust_store"),
        ("policy_dirs = 'x'\n", "policy_dirs"),
        ("not toml [", "cannot read"),
    ],
    ids=["unknown-top", "unknown-section-key", "path-type", "list-type", "syntax"],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, fragment: str) -> None:
    (tmp_path / "vak.toml").write_text(text)
    with pytest.raises(ConfigError, match=fragment):
        KernelConfig.from_toml(tmp_path / "vak.toml")


def test_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        KernelConfig.from_toml(tmp_path / "nope.toml")
    assert "vak demo" in info.value.diagnostics()
