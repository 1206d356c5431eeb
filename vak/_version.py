"""The kernel's version: the installed distribution's, so ``pyproject.toml`` is its one source."""

from __future__ import annotations

from functools import cache

__all__ = ["distribution_version"]


@cache
def distribution_version() -> str:
    """``vak.__version__`` (``"0+unknown"`` for a source tree that is not installed)."""
    from importlib import metadata

    try:
        return metadata.version("vak")
    except metadata.PackageNotFoundError:
        return "0+unknown"
