#!/usr/bin/env python3
"""Build the repository's skills: the packaged examples and ``skills/hostile``.

A thin wrapper kept for CI, tests and muscle memory; the builder itself is
:mod:`vak.skillbuild` (``vak skill build DIR`` for skill authors). Without
``--root`` it builds ``vak/examples`` (with the packaged SDK) and the test
skills under ``skills/`` (whose ``skills/sdk`` links to the same SDK).

    python tools/build_skills.py            # build what is stale, print what was built
    python tools/build_skills.py --check    # exit 1 if any module is missing or stale

Importable: ``build_all(root) -> list[Path]`` returns the modules it (re)built
and raises ``subprocess.CalledProcessError`` when the compiler fails, as before.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from vak import skillbuild
from vak._resources import examples_dir
from vak.errors import SkillLoadError, VakError

__all__ = ["DEFAULT_ROOTS", "build_all", "main", "stale"]

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ROOTS = (examples_dir(), REPO / "skills")


#: component skills not built because their toolchain is missing (reported by main)
SKIPPED: list[str] = []


def build_all(root: Path) -> list[Path]:
    """:func:`vak.skillbuild.build_all`, raising the compiler's own error on failure."""
    try:
        return skillbuild.build_all(Path(root), skipped=SKIPPED)
    except SkillLoadError as exc:
        if isinstance(exc.__cause__, subprocess.CalledProcessError):
            raise exc.__cause__ from None
        raise


def stale(root: Path) -> list[tuple[Path, Path, str]]:
    """``(skill_dir, module, digest)`` of every missing or stale module under ``root``."""
    return [(t.skill_dir, t.module, t.digest)
            for t in skillbuild.stale(Path(root), skipped=SKIPPED)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--root", type=Path, action="append",
                        help="a skills tree to build (repeatable; default: the examples "
                        "and skills/)")
    parser.add_argument("--check", action="store_true",
                        help="do not build; exit 1 if any module is missing or stale")
    args = parser.parse_args(argv)
    roots = args.root or list(DEFAULT_ROOTS)
    try:
        if args.check:
            todo = [m for root in roots for _, m, _ in stale(root)]
            for module in todo:
                print(f"stale: {module}")
            return 1 if todo else 0
        built = [m for root in roots for m in skillbuild.build_all(root, skipped=SKIPPED)]
    except VakError as exc:
        print(f"build failed: {exc.diagnostics()}", file=sys.stderr)
        return 1
    for module in built:
        print(f"built: {module}")
    for reason in SKIPPED:
        print(f"skipped: {reason}")
    if not built:
        print("all skills up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
