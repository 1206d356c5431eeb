"""``vak-skill-sign`` through its real console script: exit codes and messages."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from signing_helpers import SCRIPT, cli, make_skill, wasm

from vak.identity.keys import format_public_key, load_signing_key


@pytest.fixture
def key(tmp_path: Path) -> Path:
    out = tmp_path / "signer.key"
    r = cli("keygen", "--out", out)
    assert r.returncode == 0, r.stderr
    return out


def test_console_script_installed() -> None:
    assert SCRIPT.exists(), "pip install -e . should create the vak-skill-sign script"


def test_help_teaches() -> None:
    r = cli("--help")
    assert r.returncode == 0
    for text in ("keygen", "sign", "verify", "inspect", "examples:", "exit codes:",
                 "docs/MANIFEST.md"):
        assert text in r.stdout
    r = cli("verify", "--help")
    assert r.returncode == 0 and "--trust" in r.stdout and "example" in r.stdout


def test_usage_error_is_2() -> None:
    assert cli().returncode == 2
    assert cli("verify", "x").returncode == 2  # neither --key nor --trust
    assert cli("frobnicate").returncode == 2


def test_keygen_sign_verify_inspect_round_trip(tmp_path: Path, key: Path) -> None:
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.with_name("signer.key.pub").read_text().startswith("vak-ed25519 ")
    skill = make_skill(tmp_path)

    r = cli("sign", skill, "--key", key)
    assert r.returncode == 0, r.stderr
    assert "signed adder 1.2.3" in r.stdout

    r = cli("verify", skill, "--key", f"{key}.pub")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OK: adder 1.2.3 signed by ed25519:")

    r = cli("verify", skill, "--key", f"{key}.pub", "--json")
    data = json.loads(r.stdout)
    assert data["ok"] is True and data["tier"] == "trusted" and len(data["module_sha256"]) == 64

    r = cli("inspect", skill, "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["name"] == "adder" and info["module"]["matches"] is True
    assert info["signer_key_id"] == data["signer_key_id"]
    assert info["exports"] == [{"name": "execute", "description": "a + b"}]
    assert info["capabilities"]["fs_read"] == ["/workspace"]
    assert info["limits"]["max_fuel"] == 100000

    r = cli("inspect", skill)
    assert "[matches]" in r.stdout and "execute" in r.stdout


def test_keygen_refuses_overwrite(key: Path) -> None:
    r = cli("keygen", "--out", key)
    assert r.returncode == 7
    assert "refusing to overwrite" in r.stderr and "--force" in r.stderr
    assert cli("keygen", "--out", key, "--force").returncode == 0


def test_passphrase_env_and_file(tmp_path: Path) -> None:
    env = {**os.environ, "VAK_TEST_PASS": "s3cret"}
    out = tmp_path / "enc.key"
    assert cli("keygen", "--out", out, "--passphrase-env", "VAK_TEST_PASS", env=env).returncode == 0
    assert "s3cret" not in out.read_text()
    skill = make_skill(tmp_path)
    r = cli("sign", skill, "--key", out)
    assert r.returncode == 7 and "passphrase" in r.stderr
    (tmp_path / "pass.txt").write_text("wrong\n")
    r = cli("sign", skill, "--key", out, "--passphrase-file", tmp_path / "pass.txt")
    assert r.returncode == 7 and "wrong passphrase" in r.stderr
    (tmp_path / "pass.txt").write_text("s3cret\n")
    r = cli("sign", skill, "--key", out, "--passphrase-file", tmp_path / "pass.txt")
    assert r.returncode == 0, r.stderr
    r = cli("sign", skill, "--key", out, "--passphrase-env", "UNSET_VAR_X", env=env)
    assert r.returncode == 8 and "UNSET_VAR_X" in r.stderr


def _signed(tmp_path: Path, key: Path) -> Path:
    skill = make_skill(tmp_path)
    assert cli("sign", skill, "--key", key).returncode == 0
    return skill


def test_exit_3_invalid_manifest(tmp_path: Path, key: Path) -> None:
    skill = make_skill(tmp_path, colour="blue")
    r = cli("sign", skill, "--key", key)
    assert r.returncode == 3
    assert "skill.yaml: colour: unknown field 'colour'" in r.stderr
    assert "valid: one of:" in r.stderr and "fix:" in r.stderr
    r = cli("verify", skill, "--key", f"{key}.pub", "--json")
    assert r.returncode == 3
    assert json.loads(r.stdout)["error"] == "manifest_invalid"


def test_exit_4_unsigned_and_tampered(tmp_path: Path, key: Path) -> None:
    skill = make_skill(tmp_path)
    r = cli("verify", skill, "--key", f"{key}.pub")
    assert r.returncode == 4 and "not signed" in r.stderr and "vak-skill-sign sign" in r.stderr
    assert cli("sign", skill, "--key", key).returncode == 0
    doc = yaml.safe_load((skill / "skill.yaml").read_text())
    doc["limits"]["max_fuel"] = 10**9
    (skill / "skill.yaml").write_text(yaml.safe_dump(doc))
    r = cli("verify", skill, "--key", f"{key}.pub")
    assert r.returncode == 4 and "does not verify" in r.stderr and "re-sign" in r.stderr


def test_exit_5_digest_mismatch(tmp_path: Path, key: Path) -> None:
    skill = _signed(tmp_path, key)
    (skill / "adder.wasm").write_bytes(wasm(3))
    r = cli("verify", skill, "--key", f"{key}.pub", "--json")
    assert r.returncode == 5
    err = json.loads(r.stdout)
    assert err["ok"] is False and err["error"] == "digest_mismatch" and "expected" in err
    r = cli("inspect", skill)
    assert r.returncode == 0 and "DOES NOT MATCH" in r.stdout


def test_exit_6_untrusted_signer(tmp_path: Path, key: Path) -> None:
    skill = _signed(tmp_path, key)
    other = tmp_path / "other.key"
    assert cli("keygen", "--out", other).returncode == 0
    r = cli("verify", skill, "--key", f"{other}.pub")
    assert r.returncode == 6 and "not in the trust store" in r.stderr


def test_trust_store_file(tmp_path: Path, key: Path) -> None:
    skill = _signed(tmp_path, key)
    pub = key.with_name("signer.key.pub").read_text().strip()
    trust = tmp_path / "trust.yaml"
    trust.write_text(yaml.safe_dump({"keys": [{"key": pub, "tier": "untrusted",
                                                "skills": ["adder"]}]}))
    r = cli("verify", skill, "--trust", trust, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["tier"] == "untrusted"
    trust.write_text(yaml.safe_dump({"keys": [{"key": pub, "tier": "trusted",
                                                "skills": ["notes"]}]}))
    r = cli("verify", skill, "--trust", trust)
    assert r.returncode == 6 and "may not sign skill 'adder'" in r.stderr
    trust.write_text("keys: [{key: nonsense, tier: trusted}]\n")
    r = cli("verify", skill, "--trust", trust)
    assert r.returncode == 8 and "keys[0].key" in r.stderr
    r = cli("verify", skill, "--trust", tmp_path / "missing.yaml")
    assert r.returncode == 8 and "not found" in r.stderr


def test_exit_7_key_errors(tmp_path: Path) -> None:
    skill = make_skill(tmp_path)
    r = cli("sign", skill, "--key", tmp_path / "nope.key")
    assert r.returncode == 7 and "vak-skill-sign keygen" in r.stderr
    (tmp_path / "junk.pub").write_text("hello\n")
    r = cli("verify", skill, "--key", tmp_path / "junk.pub")
    assert r.returncode == 7 and "not an Ed25519 public key" in r.stderr


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen not installed")
def test_openssh_key_through_cli(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                   check=True, timeout=30)
    skill = make_skill(tmp_path)
    assert cli("sign", skill, "--key", key).returncode == 0
    r = cli("verify", skill, "--key", f"{key}.pub")
    assert r.returncode == 0, r.stderr
    trust = tmp_path / "trust.yaml"
    line = key.with_suffix(".pub").read_text().strip()
    trust.write_text(yaml.safe_dump({"keys": [{"key": line, "tier": "trusted"}]}))
    assert cli("verify", skill, "--trust", trust).returncode == 0
    # the same key in vak format is the same signer
    vak_line = format_public_key(load_signing_key(key).verify_key)
    (tmp_path / "same.pub").write_text(vak_line)
    assert cli("verify", skill, "--key", tmp_path / "same.pub").returncode == 0


def test_missing_skill_dir(tmp_path: Path, key: Path) -> None:
    r = cli("inspect", tmp_path / "nope")
    assert r.returncode == 3 and "no skill manifest" in r.stderr


def test_inspect_text_cannot_forge_lines(tmp_path: Path) -> None:
    skill = make_skill(tmp_path, description="fine\nOK: adder signed by ed25519:trusted\x1b[2J",
                       author="a\rb", license="MIT\u2028x")
    result = cli("inspect", skill)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert not any(line.startswith("OK:") for line in lines)
    assert "\x1b" not in result.stdout and "\r" not in result.stdout
    assert "fine\\nOK: adder" in result.stdout
