"""Shared fixtures. ``built_skills`` builds every skill module once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SKILLS = REPO / "skills"


@pytest.fixture(scope="session")
def built_skills() -> Path:
    """The skills root, with every ``skills/**/skill.yaml`` module built from source."""
    sys.path.insert(0, str(REPO / "tools"))
    try:
        from build_skills import build_all
    finally:
        sys.path.remove(str(REPO / "tools"))
    build_all(SKILLS)
    return SKILLS
