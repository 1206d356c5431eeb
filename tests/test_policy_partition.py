"""vak.policy._partition: per-(action, skill) slices decide exactly like the whole set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from host_helpers import manifest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vak.config import SHIPPED_POLICY_DIR
from vak.host.principal import principal_for
from vak.policy._partition import Scope, leaf_actions, scope_of
from vak.policy.engine import PolicyEngine
from vak.policy.entities import CedarRequest, Entity, dir_entity, file_entity

#: ``context.caller`` of a request nobody identified (docs/POLICY.md)
CALLER = {"id": "anonymous", "kind": "agent"}

#: operator policies with every scope shape the partitioner distinguishes, plus
#: one that errors (an erroring forbid is skipped by Cedar; we must still deny)
OPS = """
@id("ops.forbid-big-fs")
forbid (principal, action in Vak::Action::"fs", resource)
when { context has size && context.size > 100 };

@id("ops.permit-alice-loopback")
permit (principal == Vak::Skill::"alice", action == Vak::Action::"http_request", resource)
when { resource.ip_class == "loopback" };

@id("ops.forbid-bob-busy")
forbid (principal == Vak::Skill::"bob", action, resource)
when { context.session has host_calls && context.session.host_calls > 3 };

@id("ops.permit-kv-read-trusted")
permit (principal, action in [Vak::Action::"kv_get", Vak::Action::"kv_list"], resource)
when { principal.trust_tier == "trusted" };

@id("ops.overflow")
forbid (principal, action == Vak::Action::"random_bytes", resource)
when { context.n + 9223372036854700000 > 0 };

@id("ops.permit-obs-alice")
permit (principal is Vak::Skill, action in Vak::Action::"obs", resource)
when { principal.name == "alice" };

@id("ops.forbid-carol")
forbid (
  principal in Vak::Skill::"carol",
  action in [Vak::Action::"fs_read", Vak::Action::"secret_get"],
  resource
);

@id("ops.permit-any")
permit (principal, action, resource) when { principal.version == "9.9.9" };
"""


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> tuple[PolicyEngine, PolicyEngine]:
    d = tmp_path_factory.mktemp("ops")
    (d / "ops.cedar").write_text(OPS)
    dirs = [SHIPPED_POLICY_DIR, d]
    return PolicyEngine.load(dirs, cache_size=0), PolicyEngine.load(
        dirs, cache_size=0, partition=False
    )


_PATHS = st.sampled_from(["/workspace", "/workspace/a.txt", "/data/x", "/etc/passwd", "/"])
_URL_CLASSES = st.sampled_from(["public", "loopback", "metadata", "mixed", "private"])


@st.composite
def _requests(draw: st.DrawFn) -> CedarRequest:
    name = draw(st.sampled_from(["alice", "bob", "carol", "dave"]))
    m = manifest(
        name=name,
        fs_read=tuple(draw(st.lists(st.sampled_from(["/workspace", "/data"]), max_size=2))),
        fs_write=tuple(draw(st.lists(st.sampled_from(["/workspace/out", "/data"]), max_size=1))),
        kv=draw(st.booleans()),
        log=draw(st.booleans()),
        random=draw(st.booleans()),
        secrets=tuple(draw(st.lists(st.sampled_from(["A", "B"]), max_size=2))),
    )
    p = principal_for(
        m,
        manifest_digest="sha256:x",
        module_sha256="y",
        signer="ed25519:z",
        trust_tier=draw(st.sampled_from(["trusted", "untrusted"])),
    )
    action = draw(
        st.sampled_from(
            ["fs_read", "fs_write", "fs_list", "http_request", "kv_get", "kv_list", "kv_put",
             "random_bytes", "log", "clock_now", "secret_get"]
        )
    )
    size = draw(st.sampled_from([0, 7, 100, 101, 300]))
    ctx: dict[str, Any]
    resource: Entity
    if action in ("fs_read", "fs_write"):
        resource = file_entity(draw(_PATHS))
        ctx = {"max_bytes": size} if action == "fs_read" else {"size": size, "append": False}
    elif action == "fs_list":
        resource, ctx = dir_entity(draw(_PATHS)), {}
    elif action == "http_request":
        cls = draw(_URL_CLASSES)
        resource = Entity(
            "Vak::Url",
            "http://h/x",
            {"scheme": "http", "host": "h", "port": 80, "path": "/x", "ip": "1.2.3.4",
             "ip_class": cls},
        )
        ctx = {"method": "GET", "header_names": [], "body_size": size, "timeout_ms": 10}
    elif action in ("kv_get", "kv_put"):
        ns = draw(st.sampled_from([name, "other"]))
        resource = Entity(
            "Vak::KvKey", f"{ns}/k", {"namespace": ns, "key": "k"}, (("Vak::KvNamespace", ns),)
        )
        ctx = {"size": size} if action == "kv_put" else {}
    elif action == "kv_list":
        ns = draw(st.sampled_from([name, "other"]))
        resource, ctx = Entity("Vak::KvNamespace", ns, {"name": ns}), {}
    elif action == "secret_get":
        s = draw(st.sampled_from(["A", "B"]))
        resource, ctx = Entity("Vak::Secret", s, {"name": s}), {}
    else:
        resource = Entity("Vak::Kernel", "local")
        ctx = {"n": draw(st.sampled_from([1, 5000, 80000]))} if action == "random_bytes" else {}
        if action == "log":
            ctx = {"level": "info", "size": size}
    session = {"host_calls": draw(st.integers(0, 6))} if draw(st.booleans()) else {}
    return CedarRequest(p, action, resource,
                        {"caller": CALLER, "session": {"labels": [], **session}, **ctx})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=_requests())
def test_sliced_evaluation_equals_the_whole_set(
    engines: tuple[PolicyEngine, PolicyEngine], req: CedarRequest
) -> None:
    sliced, whole = engines
    a, b = sliced.decide(req), whole.decide(req)
    assert (a.allowed, a.policy_ids, a.errors) == (b.allowed, b.policy_ids, b.errors)


def test_sliced_equals_whole_over_a_grid(engines: tuple[PolicyEngine, PolicyEngine]) -> None:
    # exhaustive over skills x actions x targets x sizes x sessions, with grants
    # that make most calls allowed by some permit, so a wrongly dropped forbid shows
    sliced, whole = engines
    outcomes: set[tuple[bool, tuple[str, ...]]] = set()
    for name in ("alice", "bob", "carol", "dave"):
        p = principal_for(
            manifest(name=name, fs_read=("/workspace", "/data"), fs_write=("/data",), kv=True,
                     log=True, random=True, clock=True, secrets=("A",)),
            manifest_digest="x", module_sha256="y", signer="z", trust_tier="trusted",
        )
        for req in _grid(p, name):
            a, b = sliced.decide(req), whole.decide(req)
            assert (a.allowed, a.policy_ids, a.errors) == (b.allowed, b.policy_ids, b.errors), req
            outcomes.add((a.allowed, a.policy_ids[:1]))
    assert len(outcomes) >= 8  # allows, forbids, default denies and errors all occurred


def _grid(p: Any, name: str) -> list[CedarRequest]:
    kernel = Entity("Vak::Kernel", "local")
    out: list[CedarRequest] = []
    for session in ({"labels": []}, {"labels": [], "host_calls": 5}):
        for size in (1, 200):
            def req(
                action: str, resource: Entity, _s: dict[str, int] = session, **ctx: Any
            ) -> CedarRequest:
                return CedarRequest(p, action, resource, {"caller": CALLER, "session": _s, **ctx})

            for path in ("/data/x", "/workspace/a.txt", "/etc/passwd"):
                out.append(req("fs_read", file_entity(path), max_bytes=size))
                out.append(req("fs_write", file_entity(path), size=size, append=False))
                out.append(req("fs_list", dir_entity(path)))
            for cls in ("public", "loopback", "metadata"):
                url = Entity("Vak::Url", "http://h/x", {"scheme": "http", "host": "h", "port": 80,
                                                      "path": "/x", "ip": "1.2.3.4",
                                                      "ip_class": cls})
                out.append(req("http_request", url, method="GET", header_names=[],
                               body_size=size, timeout_ms=10))
            key = Entity("Vak::KvKey", f"{name}/k", {"namespace": name, "key": "k"},
                         (("Vak::KvNamespace", name),))
            out.append(req("kv_get", key))
            out.append(req("kv_put", key, size=size))
            out.append(req("kv_list", Entity("Vak::KvNamespace", name, {"name": name})))
            out.append(req("secret_get", Entity("Vak::Secret", "A", {"name": "A"})))
            out.append(req("random_bytes", kernel, n=size * 400))
            out.append(req("log", kernel, level="info", size=size))
            out.append(req("clock_now", kernel))
    return out


def test_the_properties_exercise_every_outcome(
    engines: tuple[PolicyEngine, PolicyEngine], tmp_path: Path
) -> None:
    # guard against a vacuous property: allow, forbid-wins, default deny and errors all occur
    sliced, _ = engines
    alice = principal_for(manifest(name="alice", random=True, fs_read=("/workspace",)),
                          manifest_digest="x", module_sha256="y", signer="z",
                          trust_tier="trusted")
    carol = principal_for(manifest(name="carol", fs_read=("/workspace",)), manifest_digest="x",
                          module_sha256="y", signer="z", trust_tier="trusted")
    f = file_entity("/workspace/a.txt")
    none: dict[str, list[str]] = {"labels": []}
    req = CedarRequest(alice, "fs_read", f,
                       {"caller": CALLER, "session": none, "max_bytes": 1})
    assert sliced.decide(req).allowed
    d = sliced.decide(CedarRequest(carol, "fs_read", f,
                                   {"caller": CALLER, "session": none, "max_bytes": 1}))
    assert not d.allowed and d.policy_ids == ("ops.forbid-carol",)
    d = sliced.decide(CedarRequest(alice, "random_bytes", Entity("Vak::Kernel", "local"),
                                   {"caller": CALLER, "session": {"labels": []}, "n": 80000}))
    assert not d.allowed and "ops.overflow" in d.policy_ids and d.errors
    assert "ops.overflow" in d.errors[0] and "policy" not in d.errors[0].split("`")[1]


@pytest.mark.parametrize(
    ("text", "scope"),
    [
        ('permit (principal, action, resource);', Scope(None, None)),
        ('permit (principal, action == Vak::Action::"log", resource);',
         Scope(frozenset({"log"}), None)),
        ('permit (principal, action in [Vak::Action::"kv_get", Vak::Action::"fs_read"], resource);',
         Scope(frozenset({"kv_get", "fs_read"}), None)),
        ('permit (principal, action in Vak::Action::"fs", resource);', Scope(None, None)),
        ('permit (principal, action in [Vak::Action::"fs", Vak::Action::"log"], resource);',
         Scope(None, None)),
        ('permit (principal == Vak::Skill::"a", action, resource);', Scope(None, "a")),
        ('permit (principal in Vak::Skill::"a", action, resource);', Scope(None, "a")),
        ('permit (principal is Vak::Skill, action, resource);', Scope(None, None)),
        ('permit (principal is Vak::Skill in Vak::Skill::"a", action, resource);',
         Scope(None, None)),
    ],
    ids=["any", "eq", "in-leaves", "in-group", "in-mixed", "skill-eq", "skill-in", "is",
         "is-in"],
)
def test_scope_of(text: str, scope: Scope) -> None:
    leaves = leaf_actions((SHIPPED_POLICY_DIR / "vak.cedarschema").read_text())
    assert scope_of(text, leaves) == scope


def test_leaf_actions_are_the_catalog_functions() -> None:
    # policy reads the leaves from the schema (it imports nothing of host); the
    # schema declares exactly one leaf action per catalog row
    from vak.host.catalog import HOST_FUNCTIONS

    schema = (SHIPPED_POLICY_DIR / "vak.cedarschema").read_text()
    assert leaf_actions(schema) == {f.name for f in HOST_FUNCTIONS}
    # a declaration the reader does not understand yields no leaf (slices only grow)
    assert leaf_actions("namespace X { action weird; }") == frozenset()
    assert leaf_actions(
        'namespace X { action g; action a in [g] appliesTo { principal: [U], resource: [U] }; '
        'action b in ["a"] appliesTo { principal: [U], resource: [U] }; }'
    ) == {"b"}


def test_group_actions_are_never_leaves() -> None:
    # the partitioner treats host-function actions as leaves of the action tree:
    # the shipped schema must not declare anything inside one of them
    import re

    from vak.host.catalog import HOST_FUNCTIONS

    schema = (SHIPPED_POLICY_DIR / "vak.cedarschema").read_text()
    leaves = {f.name for f in HOST_FUNCTIONS}
    for parents in re.findall(r"\baction\s+\S+\s+in\s+\[([^\]]*)\]", schema):
        named = {p.strip().strip('"') for p in parents.split(",") if p.strip()}
        assert not named & leaves, named
