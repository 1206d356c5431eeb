"""Helpers for signing tests: tiny real wasm skills built with wat2wasm, keys, trust."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import wasmtime
import yaml

from vak.identity.keys import SigningKey, public_key_id
from vak.identity.signing import sign_skill
from vak.identity.trust import TrustStore

TEMPLATE: dict[str, Any] = {
    "name": "adder",
    "version": "1.2.3",
    "description": "Adds two integers.",
    "author": "VAK tests",
    "license": "Apache-2.0",
    "module": {"path": "adder.wasm"},
    "capabilities": {"log": True, "fs": {"read": ["/workspace"]}},
    "limits": {"max_fuel": 100000, "max_host_calls": 2},
    "exports": [
        {
            "name": "execute",
            "description": "a + b",
            "input_schema": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"],
            },
            "output_schema": {"type": "object"},
        }
    ],
}


def wasm(tag: int = 0) -> bytes:
    """A small valid module; ``tag`` changes its bytes (a different skill's module)."""
    return wasmtime.wat2wasm(
        f'(module (memory (export "memory") 1) '
        f'(func (export "execute") (param i32 i32) (result i64) i64.const {tag}))'
    )


def make_skill(
    root: Path, name: str = "adder", tag: int = 0, **changes: Any
) -> Path:
    """An unsigned skill dir ``root/name`` with skill.yaml + module."""
    skill = root / name
    skill.mkdir(parents=True, exist_ok=True)
    doc = {**TEMPLATE, "name": name, "module": {"path": f"{name}.wasm"}, **changes}
    (skill / "skill.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (skill / f"{name}.wasm").write_bytes(wasm(tag))
    return skill


def signed_skill(root: Path, key: SigningKey, name: str = "adder", tag: int = 0) -> Path:
    skill = make_skill(root, name, tag)
    sign_skill(skill, key)
    return skill


def trust_of(*keys: SigningKey) -> TrustStore:
    return TrustStore.from_keys(*(k.verify_key for k in keys))


def key_id(key: SigningKey) -> str:
    return public_key_id(key.verify_key)


SIGN_CLI = [sys.executable, "-m", "vak.cli.skill_sign"]
SCRIPT = Path(sys.executable).parent / "vak-skill-sign"


def cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real ``vak-skill-sign`` console script."""
    exe = [str(SCRIPT)] if SCRIPT.exists() else SIGN_CLI
    return subprocess.run(
        [*exe, *map(str, args)], capture_output=True, text=True, timeout=60, env=env,
        check=False,
    )
