"""Helpers for tests that drive ``vak.sandbox.engine.Engine`` directly (no kernel)."""

from __future__ import annotations

from pathlib import Path

import orjson
import yaml

from vak.config import KernelConfig
from vak.identity.manifest import Limits
from vak.sandbox.engine import Engine, module_digest

SMALL_POOL = {"pool_total_instances": 32, "pool_total_memories": 32, "pool_total_tables": 32}


def small_config(tmp: Path, **changes: object) -> KernelConfig:
    return KernelConfig(state_dir=tmp, **{**SMALL_POOL, **changes})  # type: ignore[arg-type]


def load_skill(engine: Engine, skill_dir: Path) -> tuple[str, Limits]:
    """Compile a skill's module; return its digest and the manifest's limits."""
    data = yaml.safe_load((skill_dir / "skill.yaml").read_text())
    wasm = (skill_dir / data["module"]["path"]).read_bytes()
    digest = module_digest(wasm)
    engine.compile(wasm, digest)
    return digest, Limits(**data.get("limits", {}))


class Echo:
    """A plain HostHandler: records calls, answers ``{"fn": name, "args": ...}``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []

    def __call__(self, function: str, args: bytes) -> bytes:
        self.calls.append((function, args))
        return orjson.dumps({"fn": function, "args": orjson.loads(args)})


def no_host(function: str, args: bytes) -> bytes:
    raise AssertionError(f"unexpected host call {function}")
