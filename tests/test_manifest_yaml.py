"""The libyaml fast path of ``load_yaml_mapping`` keeps every strictness check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import vak.identity._yaml as y
import vak.identity.manifest as m
from vak.errors import ManifestError

REPO = Path(__file__).resolve().parent.parent


def _python_only(text: str) -> Any:
    return yaml.load(text, Loader=y._StrictLoader)


@pytest.mark.skipif(y._CStrictLoader is None, reason="PyYAML without libyaml")
@pytest.mark.parametrize("path", sorted([*REPO.glob("skills/**/skill.yaml"),
                                         *REPO.glob("vak/examples/*/skill.yaml")]),
                         ids=lambda p: str(p.parent.relative_to(REPO)))
def test_shipped_manifests_take_the_c_path_with_the_same_result(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert y._simple_events(text)
    assert m.load_yaml_mapping(text, str(path)) == _python_only(text)


@pytest.mark.parametrize(("text", "hint"), [
    ("a: &x [1]\nb: *x\n", "aliases"),
    ("a: &x {k: v}\nb: *x\n", "aliases"),
    ("name: a\nname: b\n", "duplicate key 'name'"),
    ("a: {k: 1, k: 2}\n", "duplicate key 'k'"),
    ("1: x\n", "not a string"),
    ("a: !!python/object/apply:os.system [ls]\n", "invalid YAML"),
    ("a: !custom x\n", "invalid YAML"),
    ("a: [\n", "invalid YAML at line"),
], ids=["alias-seq", "alias-map", "dup-key", "dup-flow-key", "int-key", "python-tag",
        "custom-tag", "syntax"])
def test_strictness_on_either_path(text: str, hint: str) -> None:
    with pytest.raises(ManifestError, match=hint):
        m.load_yaml_mapping(text, "s.yaml")


@pytest.mark.parametrize("text", [
    "a: " + "[" * 100 + "]" * 100 + "\n",
    "a:\n" + "".join("  " * i + "- \n" for i in range(1, 80)),
    "a:\n" + "- " * 3000 + "x\n",
], ids=["flow", "block", "compact-block-bomb"])
def test_deep_documents_never_reach_the_c_composer(text: str) -> None:
    assert not y._simple_events(text)
    with pytest.raises(ManifestError):
        m.parse_manifest(m.load_yaml_mapping(text, "s"), "s")


scalars = st.sampled_from([
    "yes", "no", "on", "off", "true", "False", "null", "~", "2024-01-01", "1.5", "0x1F",
    "012", "1_000", ".inf", "'quoted'", '"dq"', "plain text", "-3", "+4", "1e3", "",
])
docs = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]")
    | st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3).map(
        lambda d: "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["name", "x", "y"]), docs, min_size=1, max_size=3))
def test_c_and_python_loaders_agree(fields: dict[str, str]) -> None:
    text = "".join(f"{k}: {v}\n" for k, v in fields.items())
    try:
        expected = _python_only(text)
    except yaml.YAMLError:
        with pytest.raises(ManifestError):
            m.load_yaml_mapping(text, "s")
        return
    assert m.load_yaml_mapping(text, "s") == expected
