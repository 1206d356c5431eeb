"""Fixtures for component tests: the Python components built once, compiled once.

Building a Python component takes seconds and compiling it with wasmtime
tens of seconds, so the session fixture ``components`` (tests/conftest.py)
does both once (the build is incremental through ``built_skills``; the
compile goes to a session cache that later engines and kernels reuse).
"""

from __future__ import annotations

import os
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
JS_DIR = example_dir("jsfetch")


def require_js_component() -> Path:
    """The built JavaScript example, or skip (fail under CI, which installs componentize-js)."""
    module = JS_DIR / "jsfetch.wasm"
    if not module.is_file():
        if os.environ.get("CI"):
            pytest.fail("vak/examples/jsfetch was not built (componentize-js missing in CI)")
        pytest.skip("componentize-js is not installed (npm install "
                    "@bytecodealliance/componentize-js): jsfetch not built")
    return module


@dataclass(frozen=True)
class Compiled:
    engine: Engine
    digests: dict[str, str]
    limits: dict[str, Limits]
    cache: Path


def compile_components(cache: Path) -> Compiled:
    """One engine (default settings, ``cache``) with both Python components compiled."""
    engine = Engine(EngineSettings(module_cache_dir=cache), HOST_NAMES)
    digests, limits = {}, {}
    for name, skill in COMPONENT_DIRS.items():
        data = component_bytes(name)
        digests[name] = module_digest(data)
        engine.compile_component(data, digests[name])
        raw = yaml.safe_load((skill / "skill.yaml").read_text())
        limits[name] = Limits(**raw["limits"])
    return Compiled(engine, digests, limits, cache)


def component_bytes(name: str) -> bytes:
    skill = COMPONENT_DIRS[name]
    data = yaml.safe_load((skill / "skill.yaml").read_text())
    return (skill / data["module"]["path"]).read_bytes()


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
        if function == "clock_now":
            return b'{"unix_ns":7,"monotonic_ns":8}'
        if function == "random_bytes":
            return _b64(parsed["n"])
        return b'{"ok":true}'


def _b64(n: int) -> bytes:
    import base64

    return orjson.dumps({"b64": base64.b64encode(b"\x07" * n).decode()})
