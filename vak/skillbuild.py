"""Build skills' WebAssembly modules from C or Zig sources with Zig from PyPI.

For each ``skill.yaml`` under a root (the root itself may be one skill), the
module at ``module.path`` is built from the skill directory's sources:
``<module stem>.zig`` if present (with the SDK's ``vak.zig`` as module
``vak``), else every ``*.c`` file (with the SDK directory on the include
path). The SDK is ``ROOT/sdk`` when a tree carries its own, else the one
shipped in the package (:func:`vak._resources.sdk_dir`), so a skill written
anywhere builds from an installed wheel::

    >>> built = build_all(Path("my-skills"))                # doctest: +SKIP
    >>> [p.name for p in built]                             # doctest: +SKIP
    ['hello.wasm']

Builds are incremental: a stamp file next to the module records the SHA-256 of
the sources, the SDK files, the flags and the Zig version, and a module whose
stamp matches is left alone. The compiler is the ``ziglang`` package (the
``build`` extra: ``pip install 'vak[build]'``); it is run as
``python -m ziglang`` so no system toolchain is involved.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath

from vak import componentbuild
from vak._resources import sdk_dir
from vak.errors import ConfigError, ManifestError, SkillLoadError
from vak.identity.manifest import load_manifest, load_yaml_mapping, resolve_module_path
from vak.sandbox.cache import ModuleCache

__all__ = ["CFLAGS", "ZIGFLAGS", "BuildTarget", "build_all", "find_targets", "sdk_for", "stale"]

CFLAGS = (
    "--target=wasm32-freestanding", "-nostdlib", "-O2", "-Wall", "-Wno-unused-function",
    "-Wl,--no-entry", "-Wl,-z,stack-size=65536", "-Wl,--strip-all",
)
ZIGFLAGS = (
    "-target", "wasm32-freestanding", "-fno-entry", "-rdynamic", "-O", "ReleaseSmall",
    "--stack", "65536",
)
#: the ``field`` of the ConfigError naming a missing component toolchain
TOOLCHAINS = ("componentize-py", "componentize-js", "tsc")
#: the key space of kept component builds (``build_all(reuse=...)``); the digest binds
#: the sources, the WIT package and the toolchain version
_BUILD_FINGERPRINT = "vak-skill-build=1"
_LANGUAGES = {"python": "Python", "js": "JavaScript", "ts": "TypeScript"}
#: longest compiler output kept in an error message (the start names the first error)
_MAX_DIAGNOSTICS = 4000


@dataclass(frozen=True, slots=True)
class BuildTarget:
    """One skill to build: its directory, the module path and the source digest."""

    skill_dir: Path
    module: Path
    digest: str
    #: "zig" (C or Zig core module) or a component language ("python", "js")
    lang: str = "zig"

    @property
    def stamp(self) -> Path:
        """The file recording the digest the module was built from."""
        return self.module.with_name(f".{self.module.name}.src-sha256")

    @property
    def zig_root(self) -> Path:
        return self.skill_dir / f"{self.module.stem}.zig"

    def up_to_date(self) -> bool:
        return (self.module.exists() and self.stamp.exists()
                and self.stamp.read_text(encoding="utf-8").strip() == self.digest)


@cache
def zig_version() -> str:
    """The version of the ``ziglang`` package's compiler.

    Raises:
        ConfigError: ``ziglang`` is not installed or does not run.
    """
    if importlib.util.find_spec("ziglang") is None:
        raise ConfigError(
            "building skills needs the Zig compiler from PyPI (package 'ziglang'), "
            "which is not installed", field="ziglang",
            fix="pip install 'vak[build]' (or pip install ziglang)",
        )
    try:
        out = subprocess.run([sys.executable, "-m", "ziglang", "version"], check=True,
                             capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigError(f"the Zig compiler does not run: {exc}", field="ziglang",
                          fix="reinstall it: pip install --force-reinstall ziglang") from None
    return out.stdout.strip()


def sdk_for(root: Path) -> Path:
    """``ROOT/sdk`` when the tree carries its own SDK, else the packaged one."""
    own = Path(root) / "sdk"
    return own if (own / "vak.h").is_file() else sdk_dir()


def _source_hash(skill: Path, sdk: Path, zig: str) -> str:
    h = hashlib.sha256()
    h.update(zig.encode() + b"\0" + "\0".join(CFLAGS + ZIGFLAGS).encode() + b"\0")
    sources = [*sorted(skill.glob("*.c")), *sorted(skill.glob("*.h")),
               *sorted(skill.glob("*.zig"))]
    for path in sources + sorted(sdk.glob("*.h")) + sorted(sdk.glob("*.zig")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _manifests(root: Path) -> list[Path]:
    if not root.is_dir():
        raise ConfigError(f"{root}: not a directory", file=str(root),
                          fix="pass a skill directory (with skill.yaml) or a tree of them")
    found = sorted(root.rglob("skill.yaml"))
    if not found:
        raise ConfigError(f"{root}: no skill.yaml here or below", file=str(root),
                          fix="create a skill with `vak skill new NAME --lang c`")
    return found


def _kind_of(manifest_path: Path) -> str:
    """``module.kind`` of a manifest (``core`` unless it says ``component``)."""
    raw = load_yaml_mapping(manifest_path.read_bytes(), str(manifest_path))
    module = raw.get("module")
    return "component" if isinstance(module, dict) and module.get("kind") == "component" \
        else "core"


def _component_target(manifest_path: Path, module: Path) -> BuildTarget:
    skill = manifest_path.parent
    lang = componentbuild.language_of(skill)
    if lang is None:
        raise ConfigError(
            f"{skill}: module.kind is component but there is no app.py or app.js or app.ts",
            file=str(manifest_path), field="module.kind",
            fix="add app.py (Python), app.js (JavaScript) or app.ts (TypeScript), "
                "or `vak skill new NAME --lang python`")
    version = componentbuild.toolchain_version(lang, skill)
    return BuildTarget(skill, module, componentbuild.source_hash(skill, lang, version), lang)


def _module_of(manifest_path: Path, validate: bool) -> Path:
    """The module path a manifest names, checked to stay inside its directory.

    Only ``module.path`` is needed to build; ``validate`` also checks the whole
    manifest against its schema (what ``vak skill build`` does for authors).
    """
    skill = manifest_path.parent
    if validate:
        return resolve_module_path(skill, load_manifest(skill))
    raw = load_yaml_mapping(manifest_path.read_bytes(), str(manifest_path))
    module = raw.get("module")
    rel = module.get("path") if isinstance(module, dict) else None
    if not isinstance(rel, str) or not rel or PurePosixPath(rel).is_absolute() or (
            ".." in PurePosixPath(rel).parts):
        raise ManifestError(
            f"{manifest_path}: module.path: expected a relative path inside the skill "
            "directory", file=str(manifest_path), field="module.path",
            fix="e.g. module: {path: skill.wasm}",
        )
    target = (skill / rel).resolve()
    if not target.is_relative_to(skill.resolve()):
        raise ManifestError(f"{manifest_path}: module.path: {rel!r} resolves outside the "
                            "skill directory", file=str(manifest_path), field="module.path")
    return target


def find_targets(root: Path, sdk: Path | None = None, zig: str | None = None, *,
                 validate: bool = False, skipped: list[str] | None = None
                 ) -> list[BuildTarget]:
    """Every skill under ``root`` (or ``root`` itself) that has sources, with their digest.

    A skill without sources whose module exists (a prebuilt module) is skipped.
    With ``skipped`` (a list), a component whose toolchain is not installed is
    skipped too and the reason appended (the repository's own build, where a
    developer may lack node); without it that is an error.

    Raises:
        ConfigError: ``root`` holds no skill, a skill has neither sources nor
            module, or the compiler is missing.
        ManifestError: a ``skill.yaml`` is invalid (file and field named).
    """
    root = Path(root)
    sdk = sdk or sdk_for(root)
    targets = []
    for manifest_path in _manifests(root):
        skill = manifest_path.parent
        module = _module_of(manifest_path, validate)
        if module.suffix != ".wasm":
            raise ManifestError(
                f"{manifest_path}: module.path: {module.name!r} must end in .wasm",
                file=str(manifest_path), field="module.path", fix="e.g. module: {path: skill.wasm}",
            )
        if _kind_of(manifest_path) == "component":
            try:
                targets.append(_component_target(manifest_path, module))
            except ConfigError as exc:
                if skipped is None or exc.details.get("field") not in TOOLCHAINS:
                    raise
                skipped.append(f"{skill}: {exc.message}")
            continue
        zig = zig or zig_version()
        if not any(skill.glob("*.c")) and not (skill / f"{module.stem}.zig").exists():
            if module.exists():
                continue
            raise ConfigError(
                f"{skill}: no sources: expected {module.stem}.zig or *.c next to skill.yaml",
                file=str(manifest_path), field="module.path",
                fix=f"name the Zig root {module.stem}.zig, or add C files",
            )
        targets.append(BuildTarget(skill, module, _source_hash(skill, sdk, zig)))
    return targets


def stale(root: Path, sdk: Path | None = None, *, validate: bool = False,
          skipped: list[str] | None = None) -> list[BuildTarget]:
    """The skills under ``root`` whose module is missing or older than its sources."""
    return [t for t in find_targets(root, sdk, validate=validate, skipped=skipped)
            if not t.up_to_date()]


def _commands(target: BuildTarget, sdk: Path, out: Path, work: Path) -> list[list[str]]:
    if target.lang != "zig":
        return componentbuild.commands(target.lang, target.skill_dir, out, work)
    if target.zig_root.exists():
        return [[sys.executable, "-m", "ziglang", "build-exe", *ZIGFLAGS, "--dep", "vak",
                 f"-Mroot={target.zig_root}", f"-Mvak={sdk / 'vak.zig'}",
                 f"-femit-bin={out}"]]
    sources = [str(p) for p in sorted(target.skill_dir.glob("*.c"))]
    return [[sys.executable, "-m", "ziglang", "cc", *CFLAGS, "-I", str(sdk), *sources,
             "-o", str(out)]]


def build_target(target: BuildTarget, sdk: Path) -> None:
    """Compile one skill; the module appears only when the build succeeded.

    Raises:
        SkillLoadError: the compiler failed; the message carries its first
            diagnostics and the ``__cause__`` is the ``CalledProcessError``.
    """
    tmp = target.module.with_name(target.module.name + ".tmp")
    try:
        with tempfile.TemporaryDirectory(prefix="vak-build-") as work:
            for cmd in _commands(target, sdk, tmp, Path(work)):
                subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    except subprocess.CalledProcessError as exc:
        tmp.unlink(missing_ok=True)
        diagnostics = (exc.stderr or exc.stdout or "").strip()[:_MAX_DIAGNOSTICS]
        raise SkillLoadError(
            f"{target.skill_dir}: build failed:\n{diagnostics}",
            skill_dir=str(target.skill_dir),
            fix="fix the first error the compiler names (file:line:column) and build again",
        ) from exc
    except subprocess.TimeoutExpired as exc:
        tmp.unlink(missing_ok=True)
        raise SkillLoadError(f"{target.skill_dir}: the compiler ran over 600 s",
                             skill_dir=str(target.skill_dir)) from exc
    tmp.replace(target.module)
    target.stamp.write_text(target.digest + "\n", encoding="utf-8")


def build_all(root: Path, sdk: Path | None = None, *, validate: bool = False,
              skipped: list[str] | None = None, reuse: Path | None = None,
              progress: Callable[[str], None] | None = None) -> list[Path]:
    """Build every stale module under ``root`` (a skill or a tree); return those built.

    ``reuse`` is a directory of earlier component builds (seconds each) kept
    by source digest in a private, HMAC-keyed store (:class:`~vak.sandbox.cache.ModuleCache`):
    a component whose digest is there is copied, not rebuilt; one built is
    added. ``progress`` hears when a component build starts and ends.

    Raises:
        ConfigError: no skill under ``root``, or no compiler.
        ManifestError: a ``skill.yaml`` is invalid.
        SkillLoadError: a compile failed (see :func:`build_target`).
    """
    sdk = sdk or sdk_for(Path(root))
    cache = None if reuse is None else ModuleCache(Path(reuse), _BUILD_FINGERPRINT)
    say = progress or (lambda _message: None)
    built = []
    for target in stale(root, sdk, validate=validate, skipped=skipped):
        kept = cache.load(target.digest) if cache is not None and target.lang != "zig" else None
        if kept is not None:
            _install(target, kept)
        elif target.lang == "zig":
            build_target(target, sdk)
        else:
            name = target.skill_dir.name
            say(f"building {name} ({_LANGUAGES[target.lang]} component; about 10 s, once)")
            started = time.monotonic()
            build_target(target, sdk)
            say(f"built {name} in {time.monotonic() - started:.1f} s")
            if cache is not None:
                cache.store(target.digest, target.module.read_bytes())
        built.append(target.module)
    return built


def _install(target: BuildTarget, module: bytes) -> None:
    """Write a kept build as the target's module, with its stamp (atomically)."""
    tmp = target.module.with_name(target.module.name + ".tmp")
    tmp.write_bytes(module)
    tmp.replace(target.module)
    target.stamp.write_text(target.digest + "\n", encoding="utf-8")
