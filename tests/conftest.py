"""Shared fixtures. ``built_skills`` builds every skill module once per session."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SKILLS = REPO / "skills"

#: memory mappings of this process above which closed kernels are collected now
#: (Linux allows 65530 by default; each wasmtime pooling engine holds ~2000 until
#: the cycle collector frees it, and a new engine that cannot map aborts the process)
_MAPS_HIGH = 30_000


@pytest.fixture(autouse=True)
def _release_closed_engines() -> Iterator[None]:
    """Collect closed kernels' engines when the map count runs high (see ``_MAPS_HIGH``)."""
    yield
    try:
        with open("/proc/self/maps", "rb") as f:
            count = sum(1 for _ in f)
    except OSError:  # not Linux: no map-count limit to watch
        return
    if count > _MAPS_HIGH:
        import gc

        gc.collect()


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
    """A module cache shared by every component test (one compile per session)."""
    return tmp_path_factory.mktemp("component-cache") / "cache"


@pytest.fixture(scope="session")
def components(built_skills: Path, component_cache: Path) -> Iterator[Any]:
    """The Python components built and compiled once (tests/component_helpers.py)."""
    from component_helpers import compile_components

    compiled = compile_components(component_cache)
    try:
        yield compiled
    finally:
        compiled.engine.close()
