"""Build ``vak:skill`` components from Python, JavaScript or TypeScript sources.

Why: a skill whose manifest says ``module: {kind: component}`` is written in a
language whose toolchain emits WebAssembly components. The entry file decides
the language: ``app.py`` is built with **componentize-py** (PyPI; the
``python`` or ``build`` extra: ``pip install 'vak[python]'``), ``app.js`` with
**componentize-js** (npm: ``npm install @bytecodealliance/componentize-js``,
found as ``componentize-js`` on ``PATH`` or under ``./node_modules/.bin`` of the
skill or its parents). ``app.ts`` is first type-checked and compiled to
JavaScript by the TypeScript compiler (npm ``typescript``: ``tsc``, found the
same way) against ``skill.d.ts``, the WIT world's declarations shipped with
VAK, then built with componentize-js. All are given the WIT package shipped
with VAK (:func:`vak._resources.wit_dir`) and the world ``skill``.

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

__all__ = [
    "ENTRY_FILES", "WORLD", "commands", "language_of", "source_hash", "toolchain_version",
]

#: the language each entry file selects (TypeScript first: its build writes JavaScript)
ENTRY_FILES = {"app.py": "python", "app.ts": "ts", "app.js": "js"}
#: the WIT world's TypeScript declarations (beside skill.wit)
TS_DECLARATIONS = "skill.d.ts"
#: tsc flags: ES modules as componentize-js takes them, strict types, no output on error
TSC_FLAGS = ("--target", "es2022", "--module", "es2022", "--strict", "--noEmitOnError",
             "--skipLibCheck")
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


def _node_tool(skill_dir: Path, name: str) -> str | None:
    """``name`` from ``node_modules/.bin`` of the skill or a parent, else from ``PATH``."""
    for parent in (skill_dir, *skill_dir.resolve().parents):
        local = parent / "node_modules" / ".bin" / name
        if local.is_file():
            return str(local)
    return shutil.which(name)


def _package_version(tool: str, name: str) -> str:
    """``name`` and a digest of the npm package behind the bin ``tool`` (its package.json)."""
    real = Path(os.path.realpath(tool))
    for parent in real.parents:
        package = parent / "package.json"
        if package.is_file():
            return f"{name} {hashlib.sha256(package.read_bytes()).hexdigest()[:16]}"
    return f"{name} {tool}"


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
    what = "TypeScript" if lang == "ts" else "JavaScript"
    packages = "typescript @bytecodealliance/componentize-js" if lang == "ts" \
        else "@bytecodealliance/componentize-js"
    tool = _node_tool(skill_dir, "componentize-js")
    if tool is None or shutil.which("node") is None:
        raise ConfigError(
            f"building a {what} component needs node and componentize-js, "
            + ("which is not installed" if shutil.which("node") else "and node is missing"),
            field="componentize-js",
            fix=f"install Node.js, then in the skill directory: npm install {packages}")
    version = _package_version(tool, "componentize-js")
    if lang != "ts":
        return version
    tsc = _node_tool(skill_dir, "tsc")
    if tsc is None:
        raise ConfigError(
            "building a TypeScript component needs the TypeScript compiler (tsc), "
            "which is not installed", field="tsc",
            fix=f"in the skill directory: npm install {packages}")
    return f"{version}, {_package_version(tsc, 'tsc')}"


def source_hash(skill_dir: Path, lang: str, version: str) -> str:
    """SHA-256 over the toolchain version, the WIT package and the skill's sources."""
    h = hashlib.sha256(f"{version}\0{WORLD}\0".encode())
    pattern = {"python": "*.py", "ts": "*.ts"}.get(lang, "*.js")
    wit = [*sorted(wit_dir().glob("*.wit")), *([wit_dir() / TS_DECLARATIONS] if lang == "ts"
                                               else [])]
    for path in [*wit, *sorted(skill_dir.glob(pattern))]:
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def commands(lang: str, skill_dir: Path, out: Path, work: Path) -> list[list[str]]:
    """The toolchain's command lines building ``skill_dir`` into ``out``, in order.

    ``work`` is an empty scratch directory (the TypeScript compiler's output).
    """
    wit = str(wit_dir())
    if lang == "python":
        return [[sys.executable, "-c", _PY_RUNNER, "-d", wit, "-w", WORLD, "componentize",
                 "-p", str(skill_dir), "app", "-o", str(out)]]
    entry, steps = skill_dir / "app.js", []
    if lang == "ts":
        tsc = _node_tool(skill_dir, "tsc") or "tsc"
        steps.append([tsc, *TSC_FLAGS, "--outDir", str(work), str(skill_dir / "app.ts"),
                      str(wit_dir() / TS_DECLARATIONS)])
        entry = work / "app.js"
    tool = _node_tool(skill_dir, "componentize-js") or "componentize-js"
    # wasi:http is refused at load: build without StarlingMonkey's fetch support
    steps.append([tool, str(entry), "--wit", wit, "--world-name", WORLD,
                  "--out", str(out), "--disable", "http", "fetch-event"])
    return steps
