"""Shared fixtures. ``built_skills`` builds every skill module once per session."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@pytest.fixture(scope="session")
def component_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A module cache shared by every component test (one compile per session).

    Named ``modules`` so that its parent is a `vak demo` cache directory too
    (``run_demo(cache_dir=component_cache.parent)`` shares the compile).
    """
    return tmp_path_factory.mktemp("component-cache") / "modules"


@pytest.fixture(scope="session")
def components(built_skills: Path, component_cache: Path) -> Iterator[Any]:
    """The Python components built and compiled once (tests/component_helpers.py)."""
    from component_helpers import compile_components

    compiled = compile_components(component_cache)
    try:
        yield compiled
    finally:
        compiled.engine.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.long_form`` tests (minutes-long soaks, each with a bounded form that
    always runs) run only when selected with ``-m slow``, never in a plain ``pytest``
    (CI's run): the bounded forms keep the suite within its time budget."""
    expr = (config.getoption("markexpr") or "").replace("not slow", "")
    if "slow" in expr:
        return
    skip = pytest.mark.skip(reason="the long form runs only when selected with -m slow")
    for item in items:
        if item.get_closest_marker("long_form") is not None:
            item.add_marker(skip)
