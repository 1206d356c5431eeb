"""vak.policy._cedar: the one cedarpy adapter, its self-test and its fallback."""

from __future__ import annotations

import logging
import re
import tomllib
from pathlib import Path
from typing import Any

import orjson
import pytest
from host_helpers import engine, manifest

from vak.host.principal import principal_for
from vak.policy import _cedar
from vak.policy.entities import CedarRequest, file_entity

#: ``context.caller`` of a request nobody identified (docs/POLICY.md)
CALLER = {"id": "anonymous", "kind": "agent"}

ROOT = Path(__file__).resolve().parent.parent


def test_fast_path_passes_its_self_test_on_the_pinned_cedarpy() -> None:
    _cedar._state.clear()
    assert _cedar.fast_path() is True


def test_a_wrong_fast_path_falls_back_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    real = _cedar._RAW

    def lying(reqs: list[dict[str, Any]], *a: Any) -> list[str]:
        out = []
        for raw in real(reqs, *a):  # type: ignore[misc]
            resp = orjson.loads(raw)
            resp["decision"] = "Allow"  # a changed private API answering differently
            out.append(orjson.dumps(resp).decode())
        return out

    monkeypatch.setattr(_cedar, "_RAW", lying)
    monkeypatch.setattr(_cedar, "_state", {})
    with caplog.at_level(logging.WARNING, logger="vak.policy"):
        assert _cedar.fast_path() is False
    assert "using the public is_authorized" in caplog.text
    # decisions now come from the public API, and are right
    e = engine(tmp_path)
    p = principal_for(manifest(fs_read=("/w",)), manifest_digest="sha256:x", module_sha256="y",
                      signer="", trust_tier="trusted")
    ctx = {"caller": CALLER, "session": {"labels": []}, "max_bytes": 1}
    assert e.decide(CedarRequest(p, "fs_read", file_entity("/w/a"), ctx)).allowed
    assert not e.decide(CedarRequest(p, "fs_read", file_entity("/etc/a"), ctx)).allowed


def test_a_raising_fast_path_falls_back(monkeypatch: pytest.MonkeyPatch,
                                        caplog: pytest.LogCaptureFixture) -> None:
    def broken(*a: Any) -> list[str]:
        raise TypeError("signature changed")

    monkeypatch.setattr(_cedar, "_RAW", broken)
    monkeypatch.setattr(_cedar, "_state", {})
    with caplog.at_level(logging.WARNING, logger="vak.policy"):
        assert _cedar.fast_path() is False
    assert "self-test" in caplog.text


def test_private_cedarpy_apis_live_in_one_module_with_an_upper_bound_pin() -> None:
    users = [p for p in (ROOT / "vak").rglob("*.py")
             if re.search(r"_internal|\._inner\b|_authz_resp", p.read_text(encoding="utf-8"))
             and "cedarpy" in p.read_text(encoding="utf-8")]
    assert [p.relative_to(ROOT).as_posix() for p in users] == ["vak/policy/_cedar.py"]
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = next(d for d in deps if d.startswith("cedarpy"))
    assert "<" in pin


def test_the_self_test_runs_when_an_engine_is_built(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.setattr(_cedar, "_state", {})
    e = engine(tmp_path)
    assert _cedar._state == {"fast": True} and e.cedar_fast_path is True
