"""The host and policy rooms keep their imports one-way (docs/ARCHITECTURE.md).

* policy imports nothing of host (host arguments are normalised beside the catalog);
* host and policy import no facade module (``vak.config``, ``vak.kernel``,
  names from ``vak/__init__``) -- each room takes its own settings object.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

VAK = Path(__file__).resolve().parent.parent / "vak"
FACADE = ("vak.config", "vak.kernel", "vak._session", "vak._registry", "vak.invocation")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module if node.level == 0 else f".{node.module}")
    return out


def _modules(room: str) -> list[Path]:
    return sorted((VAK / room).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("policy"), ids=lambda p: p.name)
def test_policy_imports_no_host_and_no_facade(path: Path) -> None:
    bad = [m for m in _imports(path)
           if m.startswith("vak.host") or m.startswith(FACADE) or m == "vak"]
    assert bad == []


@pytest.mark.parametrize("path", _modules("host"), ids=lambda p: p.name)
def test_host_imports_no_facade(path: Path) -> None:
    bad = [m for m in _imports(path) if m.startswith(FACADE) or m == "vak"]
    assert bad == []
