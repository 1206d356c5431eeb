"""``vak policy validate`` and ``vak policy test`` (through the real ``vak`` parser)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vak.cli._common import Exit
from vak.cli.main import main

REPO = Path(__file__).resolve().parent.parent


def test_validate_shipped(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no vak.toml here: shipped policies only
    assert main(["policy", "validate", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "vak.net.forbid-metadata" in out["policies"] and out["digest"].startswith("sha256:")


def test_validate_reports_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.cedar").write_text('\n\n@id("x")\npermit(principal, action, resource)\n'
                                        "when { resource.nope };\n")
    assert main(["policy", "validate", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert "bad.cedar:3:" in err and "nope" in err


def test_policy_test_allow_and_deny(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notes = str(REPO / "skills" / "notes")
    rc = main(["policy", "test", "--skill", notes, "--action", "fs_read",
               "--resource", "/workspace/a.txt", "--context", '{"max_bytes": 10}', "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["decision"] == "allow"
    assert out["policy_ids"] == ["vak.fs.permit-read-in-grant"]
    rc = main(["policy", "test", "--skill", notes, "--action", "fs_read",
               "--resource", "/workspace/../etc/passwd"])
    text = capsys.readouterr().out
    assert rc == Exit.POLICY_DENIED and "DENY" in text and "vak.capability-ceiling" in text


def test_policy_test_http_pinned_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["policy", "test", "--skill", "anon", "--action", "http_request",
               "--resource", "http://meta.test/", "--ip", "169.254.169.254", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == Exit.POLICY_DENIED and "vak.net.forbid-metadata" in out["policy_ids"]
    assert out["request"]["resource"]["attrs"]["ip_class"] == "metadata"


def test_policy_test_bad_context(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "test", "--skill", "x", "--action", "log", "--context", "[1"]) != 0


def test_policy_test_never_resolves_a_denied_host(capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    looked_up: list[object] = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: looked_up.append(a) or [])
    rc = main(["policy", "test", "--skill", "anon", "--action", "http_request",
               "--resource", "http://undeclared.test/", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 20 and out["ceiling"] and out["address_pending"] and looked_up == []


def test_policy_test_decides_as_the_caller_given(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "callers.cedar").write_text(
        '@id("ops.no-bob")\nforbid (principal, action, resource)\n'
        'when { context.caller.id == "bob" };\n')
    notes = str(REPO / "skills" / "notes")
    base = ["policy", "test", "--skill", notes, "--action", "fs_read", "--resource",
            "/workspace/a.txt", "--policies", str(tmp_path), "--json", "--context"]
    assert main([*base, '{"caller": {"id": "bob", "kind": "agent"}}']) == Exit.POLICY_DENIED
    out = json.loads(capsys.readouterr().out)
    assert out["policy_ids"] == ["ops.no-bob"]
    assert out["request"]["context"]["caller"] == {"id": "bob", "kind": "agent"}
    assert main([*base, '{"caller": {"id": "alice", "kind": "agent"}}']) == 0
    capsys.readouterr()
    assert main([*base, "{}"]) == 0  # nobody said: the caller is anonymous
    assert json.loads(capsys.readouterr().out)["request"]["context"]["caller"]["id"] == \
        "anonymous"
    assert main([*base, '{"caller": "bob"}']) != 0  # not a {id, kind} record
