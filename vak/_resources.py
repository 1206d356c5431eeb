"""Files the kernel ships inside the package, found through :mod:`importlib.resources`.

Nothing at run time reaches into a source checkout: the Cedar schema and base
policies (``vak/policies``), the WIT world of components (``vak/wit``), the
guest SDK (``vak/sdk``: ``vak.h``, ``vak.zig``),
the example skills' sources and manifests (``vak/examples/<name>``) and the
manifest schema (``vak/identity/schemas``) are package data, so a wheel installed into a
fresh virtualenv finds them exactly as an editable install does::

    >>> (policy_dir() / "vak.cedarschema").is_file()
    True
    >>> "calculator" in example_names()
    True

The directories are returned as real filesystem paths because cedarpy and the
Zig compiler take paths. An installation that keeps the package in a zip file
(none of pip's do) gets a private extracted copy, made once per process.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

__all__ = ["example_dir", "example_names", "examples_dir", "policy_dir", "sdk_dir", "wit_dir"]


def _copy_tree(src: Traversable, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.is_dir():
            _copy_tree(item, dest / item.name)
        else:
            (dest / item.name).write_bytes(item.read_bytes())


@cache
def _packaged(name: str) -> Path:
    """The filesystem path of package directory ``vak/<name>``."""
    ref = resources.files("vak") / name
    if isinstance(ref, Path):
        return ref
    tmp = Path(tempfile.mkdtemp(prefix="vak-resources-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    _copy_tree(ref, tmp / name)
    return tmp / name


def policy_dir() -> Path:
    """The shipped Cedar schema (``vak.cedarschema``) and base policies."""
    return _packaged("policies")


def sdk_dir() -> Path:
    """The guest SDK: the C header ``vak.h`` and the Zig module ``vak.zig``."""
    return _packaged("sdk")


def wit_dir() -> Path:
    """The ``vak:skill@0.1.0`` WIT package components are built against (``skill.wit``)."""
    return _packaged("wit")


def examples_dir() -> Path:
    """The example skills, one directory each with its sources and ``skill.yaml``."""
    return _packaged("examples")


def example_names() -> tuple[str, ...]:
    """Names of the shipped example skills, sorted."""
    return tuple(sorted(p.name for p in examples_dir().iterdir()
                        if (p / "skill.yaml").is_file()))


def example_dir(name: str) -> Path:
    """The sources and manifest of example skill ``name``.

    Raises:
        KeyError: there is no example of that name.
    """
    path = examples_dir() / name
    if not (path / "skill.yaml").is_file():
        raise KeyError(name)
    return path
