"""Kernel building blocks without wasm: registry, wire names, validators, values."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vak._registry import WIRE_NAME_RE, LoadedSkill, Registry, wire_name
from vak.errors import (
    InputValidationError,
    OutputValidationError,
    SkillLoadError,
    UnknownToolError,
)
from vak.identity.manifest import Capabilities, ExportSpec, Limits, Manifest, ModuleRef
from vak.identity.trust import Tier
from vak.identity.validation import compile_validator
from vak.invocation import Invocation, Principal, freeze_mapping, thaw

OBJ = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}


def skill(name: str, *exports: str, skill_dir: str = "/s") -> LoadedSkill:
    manifest = Manifest(
        name=name, version="1.0.0", description="d", author="a", license="MIT",
        module=ModuleRef("m.wasm", "0" * 64), capabilities=Capabilities(), limits=Limits(),
        exports=tuple(ExportSpec(e, f"{e} it", OBJ, OBJ) for e in exports),
    )
    return LoadedSkill(name, "1.0.0", manifest, "0" * 64, "ed25519:00", Tier.TRUSTED,
                       skill_dir, False)


def test_wire_name() -> None:
    assert wire_name("calc", "execute") == "calc__execute"
    with pytest.raises(SkillLoadError):
        wire_name("a" * 31, "b" * 32)
    with pytest.raises(SkillLoadError):
        wire_name("bad name", "x")


@settings(max_examples=100)
@given(st.from_regex(r"[a-z][a-z0-9_-]{0,30}", fullmatch=True),
       st.from_regex(r"[a-z][a-z0-9_-]{0,30}", fullmatch=True))
def test_manifest_names_always_make_valid_wire_names(skill_name: str, export: str) -> None:
    assert WIRE_NAME_RE.match(wire_name(skill_name, export))


def test_registry_add_get_specs() -> None:
    reg = Registry()
    reg.add(reg.build(skill("b", "run", "stop")))
    reg.add(reg.build(skill("a", "run")))
    assert [s.name for s in reg.specs()] == ["a__run", "b__run", "b__stop"]
    assert reg.get("b__stop").spec.export == "stop"
    assert [s.name for s in reg.skills()] == ["a", "b"]
    with pytest.raises(UnknownToolError):
        reg.get("c__run")


def test_registry_refuses_same_skill_twice() -> None:
    reg = Registry()
    reg.add(reg.build(skill("a", "run")))
    with pytest.raises(SkillLoadError, match="already loaded"):
        reg.add(reg.build(skill("a", "other", skill_dir="/elsewhere")))
    assert [s.name for s in reg.specs()] == ["a__run"]  # nothing half-added


def test_registry_refuses_wire_name_collision() -> None:
    # "a_" + "_b" and "a" + "__b"... produce the same wire name from different skills
    reg = Registry()
    reg.add(reg.build(skill("x__y", "z")))
    with pytest.raises(SkillLoadError, match="collision"):
        reg.add(reg.build(skill("x", "y__z")))
    assert [s.name for s in reg.specs()] == ["x__y__z"]


def test_spec_schemas_are_read_only() -> None:
    reg = Registry()
    reg.add(reg.build(skill("a", "run")))
    spec = reg.get("a__run").spec
    with pytest.raises(TypeError):
        spec.input_schema["type"] = "string"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"  # type: ignore[misc]


def test_validators() -> None:
    v_in = compile_validator("t__x", "input", OBJ)
    v_in.check({"x": 1})
    with pytest.raises(InputValidationError) as info:
        v_in.check({"x": "one"})
    assert info.value.details["path"] == "/x"
    with pytest.raises(OutputValidationError):
        compile_validator("t__x", "output", OBJ).check({})


def test_invalid_schema_is_a_load_error() -> None:
    with pytest.raises(SkillLoadError):
        compile_validator("t__x", "input", {"type": 12})


def test_principal_to_audit() -> None:
    assert Principal().to_audit() == {"id": "anonymous", "kind": "agent"}
    p = Principal("alice", "user", {"team": "ops"})
    assert p.to_audit() == {"id": "alice", "kind": "user", "attributes": {"team": "ops"}}


def test_freeze_thaw_round_trip() -> None:
    doc = {"a": [1, {"b": None}], "c": "d"}
    assert thaw(freeze_mapping(doc)) == doc


def test_invocation_is_frozen() -> None:
    inv = Invocation("t", {"r": 1}, 1, 2_000_000, 0, "id", None, None, 1, 2, "ab")
    assert inv.duration_ms == 2.0 and inv.audit_seqs == (1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        inv.output = None  # type: ignore[misc]
