"""``vak trust add|list|revoke`` through the real argument parser and files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vak.cli.trust import main
from vak.identity.keys import SigningKey, format_public_key, generate_key_file
from vak.identity.trust import Tier, TrustStore


def _pub(tmp_path: Path, name: str) -> tuple[Path, str]:
    key_id = generate_key_file(tmp_path / name)
    return tmp_path / f"{name}.pub", key_id


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    capsys.readouterr()
    assert main(list(argv)) == 0
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


def test_add_list_revoke_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trust = tmp_path / "trust.yaml"
    ci, ci_id = _pub(tmp_path, "ci.key")
    alice, alice_id = _pub(tmp_path, "alice.key")
    out = _json(capsys, "trust", "add", str(ci), "--tier", "trusted", "--trust", str(trust),
                "--skills", "calculator, notes", "--json")
    assert out["created"] is True
    assert out["key"] == {"key_id": ci_id, "tier": "trusted", "skills": ["calculator", "notes"],
                          "comment": "", "expires": None, "revoked": False, "status": "active"}
    assert main(["trust", "add", str(alice), "--tier", "untrusted", "--trust", str(trust),
                 "--expires", "2999-01-01", "--comment", "Alice\n\x1b[31mforged"]) == 0
    text = capsys.readouterr().out
    assert f"added {alice_id} (untrusted; any skill; expires 2999-01-01T00:00:00Z)" in text
    store = TrustStore.load(trust)
    assert store.lookup(alice_id).tier is Tier.UNTRUSTED

    assert main(["trust", "list", "--trust", str(trust)]) == 0
    listing = capsys.readouterr().out
    assert listing.count("\n") == 3 and "\x1b" not in listing and "\\x1b" in listing
    assert "Alice\\n" in listing
    rows = _json(capsys, "trust", "list", "--trust", str(trust), "--json")["keys"]
    assert [r["key_id"] for r in rows] == [ci_id, alice_id]  # type: ignore[index]

    out = _json(capsys, "trust", "revoke", alice_id[8:20], "--trust", str(trust), "--json")
    assert out["already_revoked"] is False and out["key"]["status"] == "revoked"  # type: ignore[index]
    assert TrustStore.load(trust).lookup(alice_id).revoked
    out = _json(capsys, "trust", "revoke", alice_id, "--trust", str(trust), "--json")
    assert out["already_revoked"] is True


def test_trust_store_found_through_the_config(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "vak.toml").write_text('trust_store = "keys/trust.yaml"\n')
    pub, key_id = _pub(tmp_path, "k")
    assert main(["trust", "add", str(pub), "--tier", "trusted",
                 "--config", str(tmp_path / "vak.toml")]) == 0
    assert key_id in TrustStore.load(tmp_path / "keys" / "trust.yaml")


@pytest.mark.parametrize(("argv", "hint"), [
    (["add", "{pub}", "--tier", "trusted", "--skills", ","], "--skills names no skill"),
    (["add", "{pub}", "--tier", "trusted", "--skills", "Bad"], "not a skill name"),
    (["add", "{pub}", "--tier", "trusted", "--expires", "2001-01-01"], "not in the future"),
    (["add", "{pub}", "--tier", "trusted", "--expires", "soon"], "not a time"),
    (["add", "{tmp}/missing.pub", "--tier", "trusted"], "key file not found"),
    (["add", "{listed}", "--tier", "trusted"], "already in the trust store"),
    (["revoke", "ed25519:0123"], "not a key id"),
    (["list", "--config", "{tmp}/none.toml"], "config file not found"),
], ids=["empty-skills", "bad-skill", "past", "junk-time", "no-key", "duplicate", "short-id",
        "no-config"])
def test_errors_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 argv: list[str], hint: str) -> None:
    trust = tmp_path / "trust.yaml"
    pub, _ = _pub(tmp_path, "k")
    listed, _ = _pub(tmp_path, "listed")
    trust.write_text(f'keys:\n  - key: "{listed.read_text().strip()}"\n    tier: trusted\n')
    before = trust.read_text()
    args = [a.format(pub=pub, listed=listed, tmp=tmp_path) for a in argv]
    if "--config" not in argv:
        args += ["--trust", str(trust)]
    capsys.readouterr()
    assert main(["trust", *args]) == 1
    assert hint in capsys.readouterr().err
    assert trust.read_text() == before


def test_console_entry_point(tmp_path: Path) -> None:
    trust = tmp_path / "trust.yaml"
    key = SigningKey.generate()
    pub = tmp_path / "k.pub"
    pub.write_text(format_public_key(key.verify_key, "ci") + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "vak.cli.trust", "trust", "add", str(pub), "--tier", "untrusted",
         "--trust", str(trust)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert TrustStore.load(trust).lookup(key.verify_key.key_id).tier is Tier.UNTRUSTED
    result = subprocess.run([sys.executable, "-m", "vak.cli.trust", "trust", "--help"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and "vak trust add" in result.stdout
