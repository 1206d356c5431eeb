"""vak.policy.engine: Cedar decisions, fail-closed errors, @id mapping, cache."""

from __future__ import annotations

from pathlib import Path

from host_helpers import engine, manifest

from vak.host.principal import principal_for
from vak.policy.engine import DEFAULT_DENY, EVAL_ERROR
from vak.policy.entities import CedarRequest, Entity, dir_entity, file_entity

#: ``context.caller`` of a request nobody identified (docs/POLICY.md)
CALLER = {"id": "anonymous", "kind": "agent"}


def _principal(**caps: object):  # type: ignore[no-untyped-def]
    return principal_for(
        manifest(**caps),
        manifest_digest="sha256:x",
        module_sha256="y",
        signer="ed25519:z",
        trust_tier="trusted",
    )


def _req(p, action: str, resource: Entity, **ctx: object) -> CedarRequest:  # type: ignore[no-untyped-def]
    return CedarRequest(p, action, resource, {"caller": CALLER, "session": {"labels": []}, **ctx})


def test_containment_is_by_entity_hierarchy_not_prefix(tmp_path: Path) -> None:
    e = engine(tmp_path)
    p = _principal(fs_read=("/workspace",))
    ok = e.decide(_req(p, "fs_read", file_entity("/workspace/a/b.txt"), max_bytes=1))
    assert ok.allowed and ok.policy_ids == ("vak.fs.permit-read-in-grant",)
    for path in ["/workspace-evil/x", "/etc/passwd", "/"]:
        d = e.decide(_req(p, "fs_read", file_entity(path), max_bytes=1))
        assert not d.allowed and d.policy_ids == (DEFAULT_DENY,)
    assert e.decide(_req(p, "fs_list", dir_entity("/workspace"))).allowed
    assert not e.decide(
        _req(p, "fs_write", file_entity("/workspace/a"), size=1, append=False)
    ).allowed


def test_single_file_grant(tmp_path: Path) -> None:
    e = engine(tmp_path)
    p = _principal(fs_read=("/data/notes.txt",))
    assert e.decide(_req(p, "fs_read", file_entity("/data/notes.txt"), max_bytes=1)).allowed
    assert not e.decide(_req(p, "fs_read", file_entity("/data/other.txt"), max_bytes=1)).allowed


def test_forbid_wins_and_ids_are_annotations(tmp_path: Path) -> None:
    e = engine(
        tmp_path, '@id("ops.no-logs")\nforbid(principal, action == Vak::Action::"log", resource);\n'
    )
    p = _principal(log=True)
    d = e.decide(_req(p, "log", Entity("Vak::Kernel", "local"), level="info", size=1))
    assert not d.allowed and d.policy_ids == ("ops.no-logs",)


def test_erroring_forbid_fails_closed(tmp_path: Path) -> None:
    # The forbid overflows (Cedar skips it and the permit would win): we deny.
    ops = (
        '@id("ops.overflow")\nforbid(principal, action == Vak::Action::"random_bytes", resource)\n'
        "when { context.n + 9223372036854775807 > 0 };\n"
    )
    e = engine(tmp_path, ops)
    d = e.decide(_req(_principal(random=True), "random_bytes", Entity("Vak::Kernel", "local"), n=5))
    assert not d.allowed
    assert d.policy_ids[0] == EVAL_ERROR and "ops.overflow" in d.policy_ids and d.errors


def test_schema_violating_request_is_a_deny_not_a_crash(tmp_path: Path) -> None:
    e = engine(tmp_path)
    d = e.decide(
        _req(_principal(random=True), "random_bytes", Entity("Vak::Kernel", "local"), n="x")
    )
    assert not d.allowed and d.policy_ids[0] == EVAL_ERROR


def test_cache_hit_same_decision_and_keyed_exactly(tmp_path: Path) -> None:
    e = engine(tmp_path)
    p = _principal(fs_read=("/w",))
    r = _req(p, "fs_read", file_entity("/w/a"), max_bytes=1)
    first, second = e.decide(r), e.decide(r)
    assert not first.cached and second.cached and first.allowed == second.allowed
    other = e.decide(_req(p, "fs_read", file_entity("/w/a"), max_bytes=2))
    assert not other.cached
    p2 = _principal(fs_read=("/x",))  # same name, different capabilities: different key
    assert not e.decide(_req(p2, "fs_read", file_entity("/w/a"), max_bytes=1)).allowed


def test_reload_invalidates_cache(tmp_path: Path) -> None:
    e = engine(tmp_path)
    p = _principal(log=True)
    r = _req(p, "log", Entity("Vak::Kernel", "local"), level="info", size=1)
    assert e.decide(r).allowed and e.decide(r).cached
    strict = engine(tmp_path, '@id("o")\nforbid(principal, action, resource);\n')
    e.reload(strict.loaded)
    assert not e.decide(r).allowed and e.digest == strict.digest


def test_session_fields_only_when_mentioned(tmp_path: Path) -> None:
    assert engine(tmp_path).session_fields_used == frozenset()
    ops = (
        '@id("o")\nforbid(principal, action, resource)\n'
        "when { context.session has host_calls && context.session.host_calls > 3 };\n"
    )
    assert engine(tmp_path, ops).session_fields_used == {"host_calls"}


def test_schema_validation_still_applies_after_a_valid_request_of_the_action(
    tmp_path: Path,
) -> None:
    # a validated request shape is not re-validated; every other shape still is
    e = engine(tmp_path)
    p = _principal(random=True)
    k = Entity("Vak::Kernel", "local")
    assert e.decide(_req(p, "random_bytes", k, n=5)).allowed
    assert e.decide(_req(p, "random_bytes", k, n=6)).allowed  # same shape, new request
    for bad in ({"n": "x"}, {"n": True}, {"n": 5, "extra": 1}, {}, {"n": [5]}):
        d = e.decide(CedarRequest(p, "random_bytes", k,
                                  {"caller": CALLER, "session": {"labels": []}, **bad}))
        assert not d.allowed and d.policy_ids[0] == EVAL_ERROR, bad
    d = e.decide(CedarRequest(p, "random_bytes", k,
                              {"caller": CALLER, "session": {"labels": [], "nope": 1}, "n": 5}))
    assert not d.allowed and d.policy_ids[0] == EVAL_ERROR
    # a wrong resource type for the action is refused too
    d = e.decide(_req(p, "random_bytes", file_entity("/w/a"), n=5))
    assert not d.allowed and d.policy_ids[0] == EVAL_ERROR
