"""Fixtures for component tests: the Python components built once, compiled once.

Building a Python component takes seconds and compiling it with wasmtime
tens of seconds, so ``component_engine`` does both once per session (the
build is incremental through ``built_skills``; the compile goes to a session
cache that later engines and kernels reuse).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import yaml
from sandbox_helpers import HOST_NAMES, Echo

from vak._resources import example_dir
from vak.errors import PolicyDeniedError
from vak.identity.manifest import Limits
from vak.sandbox.engine import Engine, module_digest
from vak.sandbox.settings import EngineSettings

REPO = Path(__file__).resolve().parent.parent
COMPONENT_DIRS = {
    "pynotes": example_dir("pynotes"),
    "pyhostile": REPO / "skills" / "hostile" / "pyhostile",
}


@dataclass(frozen=True)
class Compiled:
    engine: Engine
    digests: dict[str, str]
    limits: dict[str, Limits]
    cache: Path


def component_bytes(name: str) -> bytes:
    skill = COMPONENT_DIRS[name]
    data = yaml.safe_load((skill / "skill.yaml").read_text())
    return (skill / data["module"]["path"]).read_bytes()


@pytest.fixture(scope="session")
def component_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("component-cache") / "cache"


@pytest.fixture(scope="session")
def components(built_skills: Path, component_cache: Path) -> Iterator[Compiled]:
    """One engine (default settings, session cache) with both components compiled."""
    engine = Engine(EngineSettings(module_cache_dir=component_cache), HOST_NAMES)
    digests, limits = {}, {}
    for name, skill in COMPONENT_DIRS.items():
        data = component_bytes(name)
        digests[name] = module_digest(data)
        engine.compile_component(data, digests[name])
        raw = yaml.safe_load((skill / "skill.yaml").read_text())
        limits[name] = Limits(**raw["limits"])
    try:
        yield Compiled(engine, digests, limits, component_cache)
    finally:
        engine.close()


class Files(Echo):
    """Echo that answers fs and kv like the mediation would."""

    def __init__(self, deny: str | None = None) -> None:
        super().__init__()
        self.deny = deny
        self.kv: dict[str, str] = {}

    def __call__(self, function: str, args: bytes) -> bytes:
        self.calls.append((function, args))
        parsed = orjson.loads(args)
        if function == "fs_read":
            if parsed["path"] == self.deny:
                raise PolicyDeniedError("fs_read denied", host_function=function)
            if parsed["path"].endswith("missing"):
                return orjson.dumps({"error": "not_found", "message": "no such file"})
            return orjson.dumps({"content": "note at " + parsed["path"], "truncated": False})
        if function == "kv_put":
            self.kv[parsed["key"]] = parsed["value"]
            return b'{"ok":true}'
        if function == "kv_get":
            value = self.kv.get(parsed["key"])
            return orjson.dumps({"found": value is not None, **({"value": value} if value else {})})
        return b'{"ok":true}'
