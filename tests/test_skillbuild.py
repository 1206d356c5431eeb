"""vak/skillbuild.py and vak/_resources.py: skills build from the packaged SDK, anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from vak import _resources
from vak.errors import ConfigError, ManifestError, SkillLoadError
from vak.scaffold import new_skill
from vak.skillbuild import build_all, sdk_for, stale

REPO = Path(__file__).resolve().parent.parent


def test_packaged_resources_live_inside_the_package() -> None:
    package = Path(_resources.__file__).resolve().parent
    for path in (_resources.policy_dir(), _resources.sdk_dir(), _resources.examples_dir()):
        assert path.resolve().is_relative_to(package), path
    assert (_resources.policy_dir() / "vak.cedarschema").is_file()
    assert {p.name for p in _resources.sdk_dir().iterdir()} >= {"vak.h", "vak.zig"}
    assert set(_resources.example_names()) >= {"calculator", "notes", "fetch", "loop",
                                               "uppercase", "wordstats", "kvstore"}
    with pytest.raises(KeyError):
        _resources.example_dir("nope")


def test_a_tree_without_sdk_uses_the_packaged_one(tmp_path: Path) -> None:
    assert sdk_for(tmp_path) == _resources.sdk_dir()
    (tmp_path / "sdk").mkdir()
    (tmp_path / "sdk" / "vak.h").write_text("")
    assert sdk_for(tmp_path) == tmp_path / "sdk"


@pytest.mark.parametrize("lang", ["c", "zig"])
def test_new_skill_builds_outside_the_repo(tmp_path: Path, lang: str) -> None:
    skill = new_skill(tmp_path, "greeter", lang)
    assert [p.name for p in build_all(skill, validate=True)] == ["greeter.wasm"]
    assert (skill / "greeter.wasm").read_bytes()[:4] == b"\0asm"
    assert stale(skill) == [] and build_all(tmp_path) == []


def test_no_skill_here_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no skill\.yaml") as info:
        build_all(tmp_path)
    assert "vak skill new" in str(info.value.details["fix"])


def test_compile_error_names_file_and_line(tmp_path: Path) -> None:
    skill = new_skill(tmp_path, "broken", "c")
    (skill / "broken.c").write_text('#include "vak.h"\nint x = ;\n')
    with pytest.raises(SkillLoadError) as info:
        build_all(skill)
    assert "broken.c:2" in info.value.message
    assert not (skill / "broken.wasm").exists()


@pytest.mark.parametrize(("path", "needle"), [
    ("../escape.wasm", "relative path inside"),
    ("/abs.wasm", "relative path inside"),
    ("module.bin", "must end in .wasm"),
], ids=["dotdot", "absolute", "suffix"])
def test_bad_module_path_is_refused_before_building(tmp_path: Path, path: str,
                                                    needle: str) -> None:
    skill = new_skill(tmp_path, "bad", "c")
    manifest = skill / "skill.yaml"
    manifest.write_text(manifest.read_text().replace("path: bad.wasm", f"path: {path}"))
    with pytest.raises(ManifestError, match=needle) as info:
        build_all(skill)
    assert info.value.details["field"] == "module.path"


def test_validate_checks_the_whole_manifest(tmp_path: Path) -> None:
    skill = new_skill(tmp_path, "strict", "c")
    manifest = skill / "skill.yaml"
    manifest.write_text(manifest.read_text().replace("version: 0.1.0", "version: one"))
    build_all(skill)  # building needs only module.path
    (skill / "strict.wasm").unlink(missing_ok=True)
    with pytest.raises(ManifestError, match="version"):
        build_all(skill, validate=True)


def test_skill_without_sources_is_an_error_unless_prebuilt(tmp_path: Path) -> None:
    skill = new_skill(tmp_path, "nosrc", "c")
    (skill / "nosrc.c").unlink()
    with pytest.raises(ConfigError, match="no sources"):
        build_all(skill)
    (skill / "nosrc.wasm").write_bytes(b"\0asm\1\0\0\0")
    assert build_all(skill) == []


def test_missing_compiler_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from vak import skillbuild

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ziglang" else real(name, *a))
    skillbuild.zig_version.cache_clear()
    try:
        with pytest.raises(ConfigError) as info:
            skillbuild.zig_version()
    finally:
        skillbuild.zig_version.cache_clear()
    assert "vak[build]" in str(info.value.details["fix"])


def test_no_code_path_reaches_into_the_repository_root() -> None:
    package = REPO / "vak"
    offenders = [str(p.relative_to(REPO)) for p in package.rglob("*.py")
                 if ".parent.parent" in p.read_text(encoding="utf-8")
                 or "parents[1]" in p.read_text(encoding="utf-8")]
    assert not offenders  # runtime files are package data (vak/_resources.py)
