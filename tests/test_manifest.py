"""skill.yaml loading: schema, field paths in messages, YAML strictness."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from signing_helpers import TEMPLATE, make_skill

from vak.errors import ManifestError
from vak.identity.manifest import (
    Capabilities,
    Limits,
    dump_manifest_yaml,
    load_manifest,
    load_yaml_mapping,
    manifest_schema,
    parse_manifest,
    resolve_module_path,
)

REPO = Path(__file__).resolve().parent.parent


def doc(**changes: Any) -> dict[str, Any]:
    d = copy.deepcopy(TEMPLATE)
    d.update(changes)
    return d


def test_valid_manifest_builds_dataclasses() -> None:
    m = parse_manifest(doc(), "skill.yaml")
    assert m.name == "adder" and m.version == "1.2.3"
    assert m.capabilities == Capabilities(fs_read=("/workspace",), log=True)
    assert m.limits == Limits(max_fuel=100000, max_host_calls=2)
    assert m.exports[0].name == "execute" and m.export("execute") is m.exports[0]
    assert m.export("nope") is None
    assert m.module.sha256 is None and m.signature is None
    assert m.raw == doc()


def test_defaults_when_optional_sections_absent() -> None:
    d = doc()
    del d["capabilities"], d["limits"]
    m = parse_manifest(d, "x")
    assert m.capabilities == Capabilities() and m.limits == Limits()


def test_shipped_example_skills_parse() -> None:
    found = list((REPO / "skills").glob("*/skill.yaml"))
    for path in found:
        load_manifest(path.parent)


def _set(d: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    keys = path.split(".")
    target: Any = d
    for k in keys[:-1]:
        target = target[int(k)] if k.isdigit() else target[k]
    last = keys[-1]
    if value is _DELETE:
        del target[last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return d


_DELETE = object()

INVALID = [
    ("unknown-top", "bogus", 1, "bogus", "unknown field"),
    ("unknown-cap", "capabilities.network", True, "capabilities.network", "unknown field"),
    ("unknown-export-field", "exports.0.extra", 1, "exports[0].extra", "unknown field"),
    ("missing-name", "name", _DELETE, "name", "required"),
    ("missing-exports", "exports", _DELETE, "exports", "required"),
    ("name-upper", "name", "Adder", "name", "valid"),
    ("name-too-long", "name", "a" * 32, "name", "valid"),
    ("version-not-semver", "version", "1.0", "version", "semantic version"),
    ("version-float", "version", 1, "version", "expected string"),
    ("version-too-long", "version", "1.0.0-" + "a" * 300, "version", "at most 256"),
    ("limit-string", "limits.max_fuel", "100", "limits.max_fuel", "expected integer"),
    ("limit-zero", "limits.max_memory_pages", 0, "limits.max_memory_pages", "65536"),
    ("limit-float", "limits.max_fuel", 1.5, "limits.max_fuel", "integer"),
    ("limit-bool", "limits.max_fuel", True, "limits.max_fuel", "integer"),
    ("kv-string", "capabilities.kv", "yes", "capabilities.kv", "boolean"),
    ("fs-relative", "capabilities.fs.read", ["workspace"], "capabilities.fs.read[0]", "guest"),
    ("fs-dotdot", "capabilities.fs.read", ["/a/../etc"], "capabilities.fs.read[0]", "guest"),
    ("http-url", "capabilities.http", {"hosts": ["http://x.org/"]}, "capabilities.http.hosts[0]",
     "host"),
    ("secret-bad", "capabilities.secrets", ["A-B"], "capabilities.secrets[0]", "secret name"),
    ("dup-secret", "capabilities.secrets", ["A", "A"], "capabilities.secrets", "distinct"),
    ("exports-empty", "exports", [], "exports", "non-empty"),
    ("export-name-bad", "exports.0.name", "Run!", "exports[0].name", "lowercase"),
    ("schema-not-map", "exports.0.input_schema", "object", "exports[0].input_schema",
     "JSON Schema"),
    ("schema-invalid", "exports.0.input_schema", {"type": "integerish"},
     "exports[0].input_schema", "not a valid JSON Schema"),
    ("schema-float", "exports.0.input_schema", {"type": "number", "maximum": 1.5},
     "exports[0].input_schema.maximum", "floats"),
    ("module-abs", "module.path", "/etc/passwd", "module.path", "absolute"),
    ("module-escape", "module.path", "../x.wasm", "module.path", "'..'"),
    ("module-inner-escape", "module.path", "a/../../x.wasm", "module.path", "'..'"),
    ("module-backslash", "module.path", "a\\x.wasm", "module.path", "backslash"),
    ("module-drive", "module.path", "C:x.wasm", "module.path", "absolute"),
    ("module-sha-upper", "module.sha256", "A" * 64, "module.sha256", "lowercase hex"),
    ("module-extra", "module.url", "http://x", "module.url", "unknown field"),
    ("sig-alg", "signature", {"algorithm": "rsa", "key_id": "ed25519:" + "0" * 32,
                              "value": "A" * 86 + "=="}, "signature.algorithm", "ed25519"),
    ("sig-missing-value", "signature", {"algorithm": "ed25519", "key_id": "ed25519:" + "0" * 32},
     "signature.value", "required"),
    ("date-value", "description", __import__("datetime").date(2024, 1, 1), "description",
     "expected string"),
]


@pytest.mark.parametrize(
    ("path", "value", "field", "hint"), [row[1:] for row in INVALID], ids=[r[0] for r in INVALID]
)
def test_invalid_manifest_names_file_field_and_fix(
    path: str, value: Any, field: str, hint: str
) -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(_set(doc(), path, value), "dir/skill.yaml")
    err = info.value
    assert err.details["file"] == "dir/skill.yaml"
    assert err.message.startswith("dir/skill.yaml: ")
    assert err.details["field"] == field, err.message
    assert hint in err.diagnostics(), err.diagnostics()


def test_duplicate_export_names() -> None:
    d = doc()
    d["exports"].append(copy.deepcopy(d["exports"][0]))
    with pytest.raises(ManifestError, match=r"exports\[1\]\.name: duplicate export 'execute'"):
        parse_manifest(d, "s")


def test_second_export_schema_path_is_named() -> None:
    d = doc()
    d["exports"].append({**d["exports"][0], "name": "other", "output_schema": {"minimum": "x"}})
    with pytest.raises(ManifestError) as info:
        parse_manifest(d, "s")
    assert info.value.details["field"] == "exports[1].output_schema"


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("name: a\nname: b\n", "duplicate key 'name'"),
        ("- a\n- b\n", "must be a mapping"),
        ("just a string\n", "must be a mapping"),
        ("", "must be a mapping"),
        ("a: &x [1]\nb: *x\n", "aliases"),
        ("a: [\n", "invalid YAML at line"),
        ("1: x\n", "not a string"),
        ("a: !!python/object:os.system x\n", "invalid YAML"),
    ],
    ids=["dup-key", "list", "scalar", "empty", "alias", "syntax", "int-key", "python-tag"],
)
def test_yaml_strictness(text: str, hint: str) -> None:
    with pytest.raises(ManifestError, match=hint):
        load_yaml_mapping(text, "s.yaml")


def test_yaml_keeps_dates_and_yes_as_strings() -> None:
    assert load_yaml_mapping("a: 2024-01-01\nb: yes\nc: on\nd: true\n", "s") == {
        "a": "2024-01-01", "b": "yes", "c": "on", "d": True,
    }


def test_non_utf8_rejected() -> None:
    with pytest.raises(ManifestError, match="not UTF-8"):
        load_yaml_mapping(b"name: \xff\n", "s")


def test_load_manifest_missing_dir(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no skill manifest") as info:
        load_manifest(tmp_path / "nope")
    assert "fix" in info.value.details


def test_load_manifest_from_dir(tmp_path: Path) -> None:
    skill = make_skill(tmp_path)
    assert load_manifest(skill).name == "adder"


def test_symlinked_module_outside_dir_refused(tmp_path: Path) -> None:
    skill = make_skill(tmp_path)
    outside = tmp_path / "outside.wasm"
    outside.write_bytes(b"\0asm")
    (skill / "adder.wasm").unlink()
    (skill / "adder.wasm").symlink_to(outside)
    with pytest.raises(ManifestError, match="outside the skill directory"):
        resolve_module_path(skill, load_manifest(skill))


def test_schema_is_valid_draft_2020_12() -> None:
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(manifest_schema())


_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1),
                     st.text(max_size=8))
_json = st.recursive(
    _scalars,
    lambda kids: st.one_of(st.lists(kids, max_size=3),
                           st.dictionaries(st.text(max_size=5), kids, max_size=3)),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=12), _json, max_size=6))
def test_arbitrary_mappings_never_crash(mapping: dict[str, Any]) -> None:
    try:
        parse_manifest(mapping, "fuzz.yaml")
    except ManifestError as exc:
        assert exc.message.startswith("fuzz.yaml: ")


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    try:
        parse_manifest(load_yaml_mapping(data, "fuzz.yaml"), "fuzz.yaml")
    except ManifestError as exc:
        assert exc.details["file"] == "fuzz.yaml"


def test_dump_round_trips_and_keeps_order() -> None:
    d = doc(description="2024-01-01", author="yes")
    text = dump_manifest_yaml(d)
    assert list(load_yaml_mapping(text, "s")) == list(d)
    assert load_yaml_mapping(text, "s") == d
    assert yaml.safe_load(text)["name"] == "adder"


@pytest.mark.parametrize("depth", [70, 5000], ids=["over-limit", "recursion-bomb"])
def test_deep_nesting_refused(depth: int) -> None:
    text = "name: x\nexports: " + "[" * depth + "]" * depth + "\n"
    with pytest.raises(ManifestError, match="nested too deeply"):
        parse_manifest(load_yaml_mapping(text, "s"), "s")


@pytest.mark.parametrize(("path", "value"), [
    ("description", "x" * 5000),
    ("name", "\x1b[31m" + "A" * 3000),
    ("module.path", "/" + "\n" * 3000),
    ("license", "\u2028" * 2000),
], ids=["long", "ansi-name", "newline-path", "line-separator"])
def test_error_messages_are_bounded_and_escaped(path: str, value: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(_set(doc(), path, value), "s.yaml")
    message = info.value.message
    assert len(message) < 400 and message.isprintable(), message


def test_unknown_field_names_are_escaped() -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest({**doc(), "evil\nfield\x1b[2J" * 50: 1}, "s.yaml")
    assert info.value.message.isprintable() and len(info.value.message) < 400
