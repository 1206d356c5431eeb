"""vak.policy.batch: many recorded requests, each decided exactly as the kernel decides it alone.

The reference is the kernel's own engine (``PolicyEngine``, cache off, whole
set), which evaluates every request with exactly ``[principal, resource]``.
The evaluator shares one entity set between resources when that cannot change
an answer; Hypothesis draws resources whose parents name each other and
policies that name entities literally, where a naive shared set would differ.
"""

from __future__ import annotations

from typing import Any

import cedarpy
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vak.config import SHIPPED_POLICY_DIR
from vak.errors import PolicyError
from vak.policy.batch import ANY_UID, BatchEvaluator, entity_refs
from vak.policy.engine import EVAL_ERROR, NO_SESSION, PolicyEngine
from vak.policy.entities import CedarRequest, Entity, Principal
from vak.policy.loader import LoadedPolicies, load_policies

#: ``context.caller`` of a request nobody identified (docs/POLICY.md)
CALLER = {"id": "anonymous", "kind": "agent"}

#: a permit that reads an attribute of a literal entity (an error unless that entity
#: is present) and a forbid on containment in a literal directory
OPERATOR = """
@id("t.literal-attr")
permit (principal, action == Vak::Action::"fs_list", resource)
when { Vak::Dir::"/a".path == "/a" };

@id("t.forbid-b")
forbid (principal, action == Vak::Action::"fs_read", resource in Vak::Dir::"/b");
"""
PATHS = ("/", "/a", "/b", "/c", "/a/x", "/b/y", "/c/z")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> LoadedPolicies:
    ops = tmp_path_factory.mktemp("ops")
    (ops / "ops.cedar").write_text(OPERATOR)
    return load_policies([SHIPPED_POLICY_DIR, ops])


def _principal() -> Principal:
    def dirs(*paths: str) -> list[dict[str, Any]]:
        return [{"__entity": {"type": "Vak::Dir", "id": p}} for p in paths]

    attrs = {"name": "t", "version": "1.0.0", "signer": "ed25519:00", "trust_tier": "trusted",
             "manifest_digest": "sha256:00", "module_sha256": "00", "fs_read": dirs("/c"),
             "fs_write": dirs("/b"), "http_hosts": [], "kv": False, "secrets": [],
             "log": True, "clock": False, "random": False}
    return Principal.of(Entity("Vak::Skill", "t", attrs))


def _resource(kind: str, path: str, parents: list[str]) -> Entity:
    return Entity(f"Vak::{kind}", path, {"path": path},
                  tuple(("Vak::Dir", p) for p in parents))


_RESOURCES = st.builds(_resource, st.sampled_from(("File", "Dir")), st.sampled_from(PATHS),
                       st.lists(st.sampled_from(PATHS), max_size=3, unique=True))


def _calls(resource: Entity, sizes: list[int]) -> list[tuple[str, dict[str, Any]]]:
    if resource.type == "Vak::Dir":
        return [("fs_list", {"caller": CALLER, "session": NO_SESSION})]
    return [("fs_read", {"caller": CALLER, "session": NO_SESSION, "max_bytes": n}) for n in sizes]


def _reference(engine: PolicyEngine, p: Principal, resource: Entity,
               calls: list[tuple[str, dict[str, Any]]]) -> list[tuple[bool, tuple[str, ...]]]:
    return [(d.allowed, d.policy_ids) for d in
            (engine.decide(CedarRequest(p, a, resource, c)) for a, c in calls)]


@settings(max_examples=80, deadline=None)
@given(resources=st.lists(_RESOURCES, min_size=1, max_size=8),
       sizes=st.lists(st.integers(0, 3), min_size=1, max_size=2))
def test_shared_entity_sets_decide_as_the_kernel_alone(
    loaded: LoadedPolicies, resources: list[Entity], sizes: list[int]
) -> None:
    engine = PolicyEngine(loaded, cache_size=0, partition=False)
    ev = BatchEvaluator(loaded)
    p = _principal()
    unique = list({r.uid["type"] + r.uid["id"]: r for r in resources}.values())
    pairs = [(r.to_json(), _calls(r, sizes)) for r in unique]
    got = ev.decide_many("p", p.entity.to_json(), pairs)
    for r, (_, calls), answer in zip(unique, pairs, got, strict=True):
        expected = _reference(engine, p, r, calls)
        if isinstance(answer, PolicyError):  # Cedar refused the entities: the kernel denies
            assert all(e == (False, (EVAL_ERROR,)) for e in expected)
            continue
        assert [(d.allowed, d.policy_ids) for d in answer] == expected
        one = ev.decide("p", p.entity.to_json(), r.to_json(), calls)
        assert [(d.allowed, d.policy_ids) for d in one] == expected


def test_a_naive_shared_set_would_differ(loaded: LoadedPolicies) -> None:
    """The case the rules exist for: a resource the policy names literally, present
    in a shared set, turns another request's evaluation error into an Allow."""
    p = _principal()
    lit = _resource("Dir", "/a", ["/"])
    other = _resource("Dir", "/c/z", ["/", "/c"])
    calls = [("fs_list", {"caller": CALLER, "session": NO_SESSION})]
    ev = BatchEvaluator(loaded)
    engine = PolicyEngine(loaded, cache_size=0, partition=False)
    got = ev.decide_many("p", p.entity.to_json(), [(lit.to_json(), calls),
                                                    (other.to_json(), calls)])
    expected = _reference(engine, p, other, calls)
    assert expected[0][1][0] == EVAL_ERROR
    assert not isinstance(got[1], PolicyError)
    assert [(d.allowed, d.policy_ids) for d in got[1]] == expected
    schema = cedarpy.Schema.from_str(loaded.schema_text)
    union = cedarpy.Entities.from_json_str(orjson.dumps(
        [p.entity.to_json(), lit.to_json(), other.to_json()]).decode(), schema)
    naive = cedarpy.is_authorized({"principal": p.entity.uid,
                                   "action": {"type": "Vak::Action", "id": "fs_list"},
                                   "resource": other.uid, "context": calls[0][1]},
                                  cedarpy.PolicySet.from_str(loaded.policy_text), union, schema)
    assert naive.allowed  # what sharing without the rules would have replayed


def test_requests_of_one_shape_are_validated_once_and_bad_ones_always(
    loaded: LoadedPolicies,
) -> None:
    p = _principal()
    r = _resource("File", "/c/f", ["/", "/c", "/c/f"])
    ev = BatchEvaluator(loaded)
    good = [("fs_read", {"caller": CALLER, "session": NO_SESSION, "max_bytes": n})
            for n in range(3)]
    bad = [("fs_read", {"caller": CALLER, "session": NO_SESSION, "max_bytes": "x"})] * 2
    decided = ev.decide("p", p.entity.to_json(), r.to_json(), good + bad)
    assert [d.allowed for d in decided] == [True, True, True, False, False]
    assert all(d.policy_ids[0] == EVAL_ERROR for d in decided[3:])
    again = ev.decide("p", p.entity.to_json(), r.to_json(), bad)
    assert all(d.policy_ids[0] == EVAL_ERROR for d in again)


def test_refused_entities_name_the_field(loaded: LoadedPolicies) -> None:
    p = _principal()
    ev = BatchEvaluator(loaded)
    bad = {"uid": {"type": "Vak::File", "id": "/c/f"}, "attrs": {"path": 7}, "parents": []}
    with pytest.raises(PolicyError, match="refused the recorded entities"):
        ev.decide("p", p.entity.to_json(), bad, [("fs_read", {
            "caller": CALLER, "session": NO_SESSION, "max_bytes": 1})])
    good = _resource("File", "/c/g", ["/", "/c"]).to_json()
    got = ev.decide_many("p", p.entity.to_json(), [
        (bad, [("fs_read", {"caller": CALLER, "session": NO_SESSION, "max_bytes": 1})]),
        (good, [("fs_read", {"caller": CALLER, "session": NO_SESSION, "max_bytes": 1})])])
    assert isinstance(got[0], PolicyError)
    assert not isinstance(got[1], PolicyError) and got[1][0].allowed


@given(st.recursive(st.none() | st.integers() | st.text(max_size=3),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.sampled_from(("type", "id", "x", "__expr")), inner,
                                      max_size=3), max_leaves=12))
def test_entity_refs_finds_every_uid_shaped_object(value: Any) -> None:
    refs = entity_refs(value)

    def walk(v: Any) -> set[tuple[str, str]]:
        out: set[tuple[str, str]] = set()
        if isinstance(v, dict):
            if isinstance(v.get("type"), str) and isinstance(v.get("id"), str):
                out.add((v["type"], v["id"]))
            if "__expr" in v:
                out.add(ANY_UID)
            for x in v.values():
                out |= walk(x)
        elif isinstance(v, list):
            for x in v:
                out |= walk(x)
        return out

    assert refs == walk(value)


def test_entity_refs_is_iterative() -> None:
    deep: Any = {"type": "T", "id": "x"}
    for _ in range(5000):
        deep = [deep]
    assert entity_refs(deep) == {("T", "x")}


def test_unparseable_policy_text_is_a_policy_error(loaded: LoadedPolicies) -> None:
    import dataclasses

    broken = dataclasses.replace(loaded, statements=(
        dataclasses.replace(loaded.statements[0], text="permit (principal"),))
    with pytest.raises(PolicyError, match="cannot parse"):
        BatchEvaluator(broken)

