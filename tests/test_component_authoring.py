"""Authoring components: `vak skill new --lang python|js` and `vak skill build`'s toolchains."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from vak import componentbuild, skillbuild
from vak.errors import ConfigError, SkillLoadError
from vak.identity.manifest import load_manifest
from vak.scaffold import new_skill


@pytest.mark.parametrize(("lang", "entry"), [("python", "app.py"), ("js", "app.js"),
                                             ("ts", "app.ts")])
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


# ---------------------------------------------------------------- TypeScript
def _require_ts_toolchain(skill: Path) -> None:
    """Skip without node, tsc and componentize-js (fail under CI, which installs them)."""
    try:
        componentbuild.toolchain_version("ts", skill)
    except ConfigError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the TypeScript toolchain is missing in CI: {exc.message}")
        pytest.skip(exc.message)


def test_a_missing_typescript_compiler_is_named_with_the_fix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    skill = new_skill(tmp_path, "hello", "ts")
    fake = tmp_path / "node_modules" / ".bin" / "componentize-js"  # found; tsc is not
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\nexit 1\n")
    node = Path(shutil.which("node") or "").parent
    monkeypatch.setenv("PATH", f"{node}{os.pathsep}{os.defpath}")
    if shutil.which("tsc") is not None:
        pytest.skip("tsc is installed next to node")
    with pytest.raises(ConfigError) as info:
        skillbuild.build_all(skill)
    assert "TypeScript compiler (tsc)" in info.value.message
    assert "npm install typescript" in info.value.details["fix"]
    assert not (skill / "hello.wasm").exists()


def test_a_type_error_fails_the_build_naming_file_and_line(tmp_path: Path) -> None:
    skill = new_skill(tmp_path, "hello", "ts")
    _require_ts_toolchain(skill)
    source = skill / "app.ts"
    # a log level the WIT world does not have: skill.d.ts makes it a type error
    source.write_text(source.read_text().replace('write("info",', 'write("loud",'))
    with pytest.raises(SkillLoadError) as info:
        skillbuild.build_all(skill)
    assert "app.ts(" in info.value.message and "TS2345" in info.value.message
    assert not (skill / "hello.wasm").exists()


def test_a_typescript_skill_builds_and_answers(tmp_path: Path, component_cache: Path) -> None:
    import orjson
    from component_helpers import Files
    from sandbox_helpers import HOST_NAMES

    from vak.identity.manifest import load_manifest as manifest_of
    from vak.sandbox.engine import Engine, module_digest
    from vak.sandbox.settings import EngineSettings

    skill = new_skill(tmp_path, "hello", "ts")
    _require_ts_toolchain(skill)
    assert skillbuild.build_all(skill) == [skill / "hello.wasm"]
    data = (skill / "hello.wasm").read_bytes()
    host = Files()
    with Engine(EngineSettings(module_cache_dir=component_cache), HOST_NAMES) as engine:
        engine.compile_component(data, module_digest(data))
        out = engine.call(module_digest(data), "execute", b'{"name": "Ada"}',
                          manifest_of(skill).limits, host)
    assert orjson.loads(out.output) == {"greeting": "Hello, Ada!"}
    assert [fn for fn, _ in host.calls] == ["log"]  # the typed host call reached the handler


def test_the_typescript_declarations_cover_every_wit_function() -> None:
    import re

    from vak._resources import wit_dir

    wit = (wit_dir() / "skill.wit").read_text(encoding="utf-8")
    dts = (wit_dir() / componentbuild.TS_DECLARATIONS).read_text(encoding="utf-8")
    declared = {m: body for m, body in re.findall(
        r'^declare module "vak:skill/([a-z-]+)@0\.1\.0" \{(.*?)^\}', dts, re.M | re.S)}
    for iface, body in re.findall(r"^interface ([a-z-]+) \{(.*?)^\}", wit, re.M | re.S):
        if iface == "tool":  # the export: the skill defines it
            continue
        assert iface in declared, iface
        for fn in re.findall(r"^\s*%?([a-z-]+): func\(", body, re.M):
            camel = re.sub(r"-([a-z])", lambda m: m.group(1).upper(), fn)
            names = re.findall(r"function (\w+)\(|as (\w+) \}", declared[iface])
            assert camel in {a or b for a, b in names}, f"{iface}.{fn}"


def test_the_typescript_walk_through_type_checks(tmp_path: Path) -> None:
    import re
    import subprocess

    from vak._resources import wit_dir

    doc = (Path(__file__).resolve().parent.parent / "docs" / "COMPONENTS.md").read_text()
    skill = new_skill(tmp_path, "fetcher", "ts")
    _require_ts_toolchain(skill)
    (block,) = re.findall(r"```ts\n(.*?)```", doc, re.S)
    (skill / "app.ts").write_text(block)
    tsc = componentbuild._node_tool(skill, "tsc")
    assert tsc is not None
    proc = subprocess.run([tsc, *componentbuild.TSC_FLAGS, "--noEmit", str(skill / "app.ts"),
                           str(wit_dir() / componentbuild.TS_DECLARATIONS)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
