"""vak/_configdoc.py: the commented vak.toml documents every option and still parses."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vak._configdoc import config_keys, field_docs, render_config, toml_value
from vak.config import KernelConfig
from vak.scaffold import CONFIG_HEADER, config_text


def test_every_field_appears_with_its_default() -> None:
    text = render_config({})
    keys = list(config_keys())
    assert len(keys) >= 30
    for key in keys:
        assert f"# {key.name} =" in text, key.dotted


def test_defaults_only_template_parses_to_the_default_config(tmp_path: Path) -> None:
    path = tmp_path / "vak.toml"
    path.write_text(config_text({}), encoding="utf-8")
    assert all(value == {} for value in tomllib.loads(path.read_text()).values())  # tables
    assert KernelConfig.from_toml(path) == KernelConfig.from_mapping({}, base=tmp_path)


def test_set_values_are_written_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "vak.toml"
    path.write_text(config_text({"trust_store": "trust.yaml", "policy_dirs": ["policies"],
                                 "require_signature": False}), encoding="utf-8")
    cfg = KernelConfig.from_toml(path)
    assert cfg.trust_store == tmp_path / "trust.yaml"
    assert cfg.all_policy_dirs[-1] == tmp_path / "policies"
    assert cfg.require_signature is False


def test_comments_come_from_the_dataclass_source() -> None:
    docs = field_docs(KernelConfig)
    assert "never turn off in prod" in docs["require_signature"]
    assert "never turn off in prod" in render_config({})


def test_header_documents_secrets_and_development_mode() -> None:
    for needle in ("secrets_file", "secrets_env", "require_signature = false", "dev_mode"):
        assert needle in CONFIG_HEADER


@pytest.mark.parametrize(("value", "toml"), [
    (True, "true"), (3, "3"), ("a\"b", '"a\\"b"'), (Path("x/y"), '"x/y"'),
    (["a", 1], '["a", 1]'), ({}, "{}"), ({"/w": "d"}, '{ "/w" = "d" }'),
])
def test_toml_value(value: object, toml: str) -> None:
    assert toml_value(value) == toml


def test_toml_value_refuses_what_toml_cannot_hold() -> None:
    with pytest.raises(TypeError):
        toml_value(None)


@given(st.text(max_size=40))
def test_any_string_round_trips(text: str) -> None:
    assert tomllib.loads(f"k = {toml_value(text)}")["k"] == text
