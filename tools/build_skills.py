#!/usr/bin/env python3
"""Build every skill's wasm module from its C sources with Zig from PyPI.

For each ``skills/**/skill.yaml`` the module at ``module.path`` is built from
the skill directory's sources: ``<module stem>.zig`` if present (with
``skills/sdk/vak.zig`` as module ``vak``), else all ``*.c`` files (with
``skills/sdk`` on the include path). Builds are incremental: a stamp file
next to the module records the SHA-256 of the sources, the SDK files, the
flags and the Zig version, and a module whose stamp matches is left alone.

    python tools/build_skills.py            # build what is stale, print what was built
    python tools/build_skills.py --check    # exit 1 if any module is missing or stale

Importable: ``build_all(root) -> list[Path]`` returns the modules it (re)built.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from pathlib import Path

import yaml

__all__ = ["build_all", "skill_dirs", "stale"]

CFLAGS = (
    "--target=wasm32-freestanding", "-nostdlib", "-O2", "-Wall", "-Wno-unused-function",
    "-Wl,--no-entry", "-Wl,-z,stack-size=65536", "-Wl,--strip-all",
)
ZIGFLAGS = (
    "-target", "wasm32-freestanding", "-fno-entry", "-rdynamic", "-O", "ReleaseSmall",
    "--stack", "65536",
)
REPO = Path(__file__).resolve().parent.parent


def _zig_version() -> str:
    out = subprocess.run([sys.executable, "-m", "ziglang", "version"], check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


def skill_dirs(root: Path) -> list[tuple[Path, Path]]:
    """``(skill_dir, module_path)`` for every skill.yaml under ``root``."""
    found = []
    for manifest in sorted(Path(root).rglob("skill.yaml")):
        data = yaml.safe_load(manifest.read_text(encoding="utf-8"))
        rel = data["module"]["path"]
        found.append((manifest.parent, manifest.parent / rel))
    return found


def _source_hash(skill: Path, sdk: Path, zig: str) -> str:
    h = hashlib.sha256()
    h.update(zig.encode() + b"\0" + "\0".join(CFLAGS + ZIGFLAGS).encode() + b"\0")
    sources = [*sorted(skill.glob("*.c")), *sorted(skill.glob("*.zig"))]
    for path in sources + sorted(sdk.glob("*.h")) + sorted(sdk.glob("*.zig")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _stamp(module: Path) -> Path:
    return module.with_name(f".{module.name}.src-sha256")


def stale(root: Path, zig: str | None = None) -> list[tuple[Path, Path, str]]:
    """Skills whose module is missing or older than its sources."""
    root = Path(root)
    zig = zig or _zig_version()
    out = []
    for skill, module in skill_dirs(root):
        digest = _source_hash(skill, root / "sdk", zig)
        stamp = _stamp(module)
        if not module.exists() or not stamp.exists() or stamp.read_text().strip() != digest:
            out.append((skill, module, digest))
    return out


def build_all(root: Path) -> list[Path]:
    """Build every stale module under ``root`` (a skills directory).

    Raises:
        subprocess.CalledProcessError: the compiler failed (its stderr is attached).
    """
    root = Path(root)
    built = []
    for skill, module, digest in stale(root):
        tmp = module.with_name(module.name + ".tmp")
        zig_root = skill / f"{module.stem}.zig"
        if zig_root.exists():
            cmd = [sys.executable, "-m", "ziglang", "build-exe", *ZIGFLAGS, "--dep", "vak",
                   f"-Mroot={zig_root}", f"-Mvak={root / 'sdk' / 'vak.zig'}",
                   f"-femit-bin={tmp}"]
        else:
            sources = [str(p) for p in sorted(skill.glob("*.c"))]
            cmd = [sys.executable, "-m", "ziglang", "cc", *CFLAGS, "-I", str(root / "sdk"),
                   *sources, "-o", str(tmp)]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        tmp.replace(module)
        _stamp(module).write_text(digest + "\n")
        built.append(module)
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO / "skills")
    parser.add_argument("--check", action="store_true",
                        help="do not build; exit 1 if any module is missing or stale")
    args = parser.parse_args(argv)
    if args.check:
        todo = stale(args.root)
        for _, module, _ in todo:
            print(f"stale: {module}")
        return 1 if todo else 0
    try:
        built = build_all(args.root)
    except subprocess.CalledProcessError as exc:
        print(f"build failed: {' '.join(exc.cmd)}\n{exc.stderr}", file=sys.stderr)
        return 1
    for module in built:
        print(f"built: {module}")
    if not built:
        print("all skills up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
