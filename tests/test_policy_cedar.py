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


def _batch_fixture() -> tuple[list[dict[str, Any]], Any, Any, Any]:
    import cedarpy

    schema = cedarpy.Schema.from_str(_cedar._SELFTEST_SCHEMA)
    policies = cedarpy.PolicySet.from_str(_cedar._SELFTEST_POLICIES)
    entities = cedarpy.Entities.from_json_str(orjson.dumps([
        {"uid": {"type": "T::U", "id": "u"}, "attrs": {"n": 1}, "parents": []},
        {"uid": {"type": "T::R", "id": "r"}, "attrs": {}, "parents": []},
    ]).decode(), schema)
    reqs = [{"principal": {"type": "T::U", "id": "u"}, "action": {"type": "T::Action", "id": "a"},
             "resource": {"type": "T::R", "id": "r"}, "context": {"k": k}}
            for k in (1, 0, 7, 5, "x", 1)]
    return reqs, policies, entities, schema


def test_a_fast_path_wrong_only_in_batches_falls_back(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = _cedar._RAW

    def lying(reqs: list[dict[str, Any]], *a: Any) -> list[str]:
        out = real(reqs, *a)  # type: ignore[misc]
        return out if len(reqs) == 1 else list(reversed(out))  # answers out of order

    monkeypatch.setattr(_cedar, "_RAW", lying)
    monkeypatch.setattr(_cedar, "_state", {})
    with caplog.at_level(logging.WARNING, logger="vak.policy"):
        assert _cedar.fast_path() is False
    assert "using the public is_authorized" in caplog.text


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "public-api"])
def test_batch_answers_are_the_single_answers(monkeypatch: pytest.MonkeyPatch,
                                              fast: bool) -> None:
    monkeypatch.setattr(_cedar, "_state", {"fast": fast})
    reqs, policies, entities, schema = _batch_fixture()
    batch = _cedar.authorize_batch(reqs, policies, entities, schema)
    single = [_cedar.authorize(r, policies, entities, schema) for r in reqs]
    assert [_cedar._comparable(b) for b in batch] == [_cedar._comparable(s) for s in single]
    # the erroring forbid is skipped, so Cedar says Allow *with an error* (the kernel
    # denies that); k="x" violates the schema: no decision, the reason as the error
    assert [b["decision"] for b in batch] == ["Allow", "Deny", "Deny", "Allow", "NoDecision",
                                              "Allow"]
    assert all(b["diagnostics"]["errors"] for b in batch)
    assert "failed to build request" in str(batch[4]["diagnostics"]["errors"])
