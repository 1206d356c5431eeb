"""Build ``vak:skill`` components from Python or JavaScript sources.

Why: a skill whose manifest says ``module: {kind: component}`` is written in a
language whose toolchain emits WebAssembly components. The entry file decides
the language: ``app.py`` is built with **componentize-py** (PyPI; the
``python`` extra: ``pip install 'vak[python]'``), ``app.js`` with
**componentize-js** (npm: ``npm install @bytecodealliance/componentize-js``,
found as ``componentize-js`` on ``PATH`` or under ``./node_modules/.bin`` of the
skill or its parents). Both are given the WIT package shipped with VAK
(:func:`vak._resources.wit_dir`) and the world ``skill``.

A missing toolchain is a :class:`~vak.errors.ConfigError` naming the tool and
how to install it. Builds are incremental like the C/Zig ones: a stamp next to
the module records the SHA-256 of the sources, the WIT package and the
toolchain version.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import sys
from pathlib import Path

from vak._resources import wit_dir
from vak.errors import ConfigError

__all__ = ["ENTRY_FILES", "WORLD", "command", "language_of", "source_hash", "toolchain_version"]

#: the language each entry file selects
ENTRY_FILES = {"app.py": "python", "app.js": "js"}
#: the world inside the shipped WIT package
WORLD = "skill"
_PY_RUNNER = ("import sys; from componentize_py import script; "
              "sys.argv[0] = 'componentize-py'; sys.exit(script())")


def language_of(skill_dir: Path) -> str | None:
    """``"python"`` or ``"js"`` from the entry file present, else None."""
    for entry, lang in ENTRY_FILES.items():
        if (skill_dir / entry).is_file():
            return lang
    return None


def _componentize_js(skill_dir: Path) -> str | None:
    for parent in (skill_dir, *skill_dir.resolve().parents):
        local = parent / "node_modules" / ".bin" / "componentize-js"
        if local.is_file():
            return str(local)
    return shutil.which("componentize-js")


def toolchain_version(lang: str, skill_dir: Path) -> str:
    """The version of the toolchain building ``lang`` (what the stamp binds).

    Raises:
        ConfigError: the toolchain is not installed (named, with the install command).
    """
    if lang == "python":
        if importlib.util.find_spec("componentize_py") is None:
            raise ConfigError(
                "building a Python component needs componentize-py, which is not installed",
                field="componentize-py",
                fix="pip install 'vak[python]' (or pip install componentize-py)")
        return "componentize-py " + importlib.metadata.version("componentize-py")
    tool = _componentize_js(skill_dir)
    if tool is None or shutil.which("node") is None:
        raise ConfigError(
            "building a JavaScript component needs node and componentize-js, "
            + ("which is not installed" if shutil.which("node") else "and node is missing"),
            field="componentize-js",
            fix="install Node.js, then in the skill directory: "
                "npm install @bytecodealliance/componentize-js")
    package = Path(os.path.realpath(tool)).parent.with_name("package.json")  # src/cli.js
    return f"componentize-js {hashlib.sha256(package.read_bytes()).hexdigest()[:16]}" \
        if package.is_file() else f"componentize-js {tool}"


def source_hash(skill_dir: Path, lang: str, version: str) -> str:
    """SHA-256 over the toolchain version, the WIT package and the skill's sources."""
    h = hashlib.sha256(f"{version}\0{WORLD}\0".encode())
    pattern = "*.py" if lang == "python" else "*.js"
    for path in [*sorted(wit_dir().glob("*.wit")), *sorted(skill_dir.glob(pattern))]:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def command(lang: str, skill_dir: Path, out: Path) -> list[str]:
    """The toolchain's command line building ``skill_dir`` into ``out``."""
    wit = str(wit_dir())
    if lang == "python":
        return [sys.executable, "-c", _PY_RUNNER, "-d", wit, "-w", WORLD, "componentize",
                "-p", str(skill_dir), "app", "-o", str(out)]
    tool = _componentize_js(skill_dir) or "componentize-js"
    # wasi:http is refused at load: build without StarlingMonkey's fetch support
    return [tool, str(skill_dir / "app.js"), "--wit", wit, "--world-name", WORLD,
            "--out", str(out), "--disable", "http", "fetch-event"]
