"""Authoring components: `vak skill new --lang python|js` and `vak skill build`'s toolchains."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from vak import componentbuild, skillbuild
from vak.errors import ConfigError
from vak.identity.manifest import load_manifest
from vak.scaffold import new_skill


@pytest.mark.parametrize(("lang", "entry"), [("python", "app.py"), ("js", "app.js")])
def test_new_component_skill_is_a_valid_component_manifest(tmp_path: Path, lang: str,
                                                           entry: str) -> None:
    skill = new_skill(tmp_path, "hello", lang)
    manifest = load_manifest(skill)
    assert manifest.module.kind == "component"
    assert manifest.limits.max_memory_pages >= 256  # a Python component needs > 12 MiB
    assert manifest.limits.max_host_calls > 0
    assert (skill / entry).is_file()
    assert componentbuild.language_of(skill) == lang


def test_a_missing_componentize_py_is_named_with_the_fix(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    skill = new_skill(tmp_path, "hello", "python")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "componentize_py" else real(name, *a))
    with pytest.raises(ConfigError) as info:
        skillbuild.build_all(skill)
    assert "componentize-py" in info.value.message
    assert "vak[python]" in info.value.details["fix"]


def test_a_missing_componentize_js_is_named_with_the_fix(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    skill = new_skill(tmp_path, "hello", "js")
    monkeypatch.setenv("PATH", os.defpath)
    with pytest.raises(ConfigError) as info:
        skillbuild.build_all(skill)
    assert "componentize-js" in info.value.message
    assert "npm install @bytecodealliance/componentize-js" in info.value.details["fix"]
    skipped: list[str] = []
    assert skillbuild.build_all(skill, skipped=skipped) == []
    assert skipped and "componentize-js" in skipped[0]


def test_component_manifest_without_an_entry_file_is_refused(tmp_path: Path) -> None:
    skill = new_skill(tmp_path, "hello", "python")
    (skill / "app.py").unlink()
    with pytest.raises(ConfigError, match=r"app\.py or app\.js"):
        skillbuild.build_all(skill)


def test_signing_keeps_module_kind(tmp_path: Path) -> None:
    from vak.identity.keys import generate_key_file, load_signing_key
    from vak.identity.signing import sign_skill

    skill = new_skill(tmp_path, "hello", "python")
    (skill / "hello.wasm").write_bytes(b"\0asm\x0d\0\x01\0")
    generate_key_file(tmp_path / "k.key")
    signed = sign_skill(skill, load_signing_key(tmp_path / "k.key"))
    assert signed.module.kind == "component"
    assert load_manifest(skill).module.kind == "component"


def test_a_kept_component_build_is_reused_by_source_digest(tmp_path: Path) -> None:
    import shutil

    from vak._resources import example_dir

    pytest.importorskip("componentize_py")
    first, second = tmp_path / "a" / "pynotes", tmp_path / "b" / "pynotes"
    for dest in (first, second):
        shutil.copytree(example_dir("pynotes"), dest,
                        ignore=shutil.ignore_patterns("*.wasm", ".*", "__pycache__"))
    said: list[str] = []
    kept = tmp_path / "kept"
    assert skillbuild.build_all(first, reuse=kept, progress=said.append) == [
        first / "pynotes.wasm"]
    assert [m.split(" ")[0] for m in said] == ["building", "built"]
    said.clear()
    assert skillbuild.build_all(second, reuse=kept, progress=said.append) == [
        second / "pynotes.wasm"]
    assert said == []  # copied from the kept build, not rebuilt
    assert (second / "pynotes.wasm").read_bytes() == (first / "pynotes.wasm").read_bytes()
    assert skillbuild.stale(second) == []  # its stamp says it is up to date
    (second / "app.py").write_text((second / "app.py").read_text() + "\n# changed\n")
    assert skillbuild.stale(second)  # another source digest: not the kept build
