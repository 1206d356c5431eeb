"""Shared fixtures. ``built_skills`` builds every skill module once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SKILLS = REPO / "skills"


@pytest.fixture(scope="session")
def built_skills() -> Path:
    """The skills root, with every module built from source.

    ``skills/`` holds the hostile test skills; its ``calculator``, ``sdk``,
    ``hostile/loop``... are links into the packaged examples (``vak/examples``),
    which are built too, so ``built_skills / "calculator"`` works as before.
    """
    sys.path.insert(0, str(REPO / "tools"))
    try:
        from build_skills import DEFAULT_ROOTS, build_all
    finally:
        sys.path.remove(str(REPO / "tools"))
    for root in DEFAULT_ROOTS:
        build_all(root)
    return SKILLS
