"""tools/build_skills.py: incremental builds from source."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
from build_skills import build_all, main, stale  # noqa: E402

sys.path.remove(str(REPO / "tools"))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "skills"
    shutil.copytree(REPO / "skills" / "sdk", root / "sdk")
    for name in ("calculator", "wordstats"):
        shutil.copytree(REPO / "skills" / name, root / name,
                        ignore=shutil.ignore_patterns("*.wasm", ".*"))
    return root


def test_incremental(tree: Path) -> None:
    first = build_all(tree)
    assert sorted(p.name for p in first) == ["calculator.wasm", "wordstats.wasm"]
    assert (tree / "calculator" / "calculator.wasm").read_bytes()[:4] == b"\0asm"
    assert build_all(tree) == []
    assert main(["--root", str(tree), "--check"]) == 0
    src = tree / "wordstats" / "wordstats.c"
    src.write_text(src.read_text() + "\n/* touched */\n")
    assert [p.name for p in stale(tree)[:1] for p in [p[1]]] == ["wordstats.wasm"]
    assert main(["--root", str(tree), "--check"]) == 1
    assert [p.name for p in build_all(tree)] == ["wordstats.wasm"]
    (tree / "sdk" / "vak.h").write_text((tree / "sdk" / "vak.h").read_text() + "\n")
    assert len(build_all(tree)) == 2


def test_compile_error_is_reported(tree: Path) -> None:
    (tree / "calculator" / "calculator.c").write_text("this is not C")
    with pytest.raises(subprocess.CalledProcessError):
        build_all(tree)
    assert main(["--root", str(tree)]) == 1
    assert not (tree / "calculator" / "calculator.wasm").exists()


def test_repo_skills_are_built(built_skills: Path) -> None:
    assert stale(built_skills) == []


def test_zig_skill_builds(tmp_path: Path) -> None:
    root = tmp_path / "skills"
    shutil.copytree(REPO / "skills" / "sdk", root / "sdk")
    shutil.copytree(REPO / "skills" / "uppercase", root / "uppercase",
                    ignore=shutil.ignore_patterns("*.wasm", ".*"))
    assert [p.name for p in build_all(root)] == ["uppercase.wasm"]
    assert (root / "uppercase" / "uppercase.wasm").read_bytes()[:4] == b"\0asm"
    (root / "sdk" / "vak.zig").write_text((root / "sdk" / "vak.zig").read_text() + "\n")
    assert [p.name for p in build_all(root)] == ["uppercase.wasm"]
