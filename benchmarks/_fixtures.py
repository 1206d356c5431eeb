"""Shared set-up for the figure modules: signed skills, kernel configs, baselines.

Built once per run and memoised in ``Context.cache`` so that modules measuring
the same skill do not each sign and compile it. The baselines here are the
plain, obvious way to do the same job with the raw part; they are never tuned.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import wasmtime

from benchmarks._harness import Context

__all__ = [
    "CALC_INPUT",
    "REPO",
    "SKILLS",
    "engine_settings",
    "host_names",
    "kernel_config",
    "naive_caller",
    "rss_bytes",
    "signed_skill",
    "trust_file",
]

REPO = Path(__file__).resolve().parent.parent
SKILLS = REPO / "skills"
CALC_INPUT: dict[str, Any] = {"operation": "add", "a": 1, "b": 2}


def _signing(ctx: Context) -> tuple[Any, Path]:
    """A fresh Ed25519 signing key for this run and its trust store file."""
    if "signing" not in ctx.cache:
        from vak.identity.keys import generate_key_file, load_signing_key

        keys = ctx.workdir / "keys"
        keys.mkdir(parents=True, exist_ok=True)
        key_path = keys / "bench-signer.key"
        generate_key_file(key_path, force=True, comment="vak-bench-signer")
        pub = (keys / "bench-signer.key.pub").read_text(encoding="utf-8").strip()
        trust = ctx.workdir / "trust.yaml"
        trust.write_text(f"keys:\n  - key: {json.dumps(pub)}\n    tier: trusted\n",
                         encoding="utf-8")
        ctx.cache["signing"] = (load_signing_key(key_path), trust)
    return ctx.cache["signing"]


def trust_file(ctx: Context) -> Path:
    """The run's trust store (one key, trusted tier)."""
    return _signing(ctx)[1]


def signed_skill(ctx: Context, rel: str) -> Path:
    """Copy ``skills/<rel>`` into the run's workdir and sign it; return the copy.

    Raises:
        FileNotFoundError: the example skill is not built (run tools/build_skills.py).
    """
    key = f"skill:{rel}"
    if key not in ctx.cache:
        from vak.identity.signing import sign_skill

        source = SKILLS / rel
        if not (source / "skill.yaml").exists():
            raise FileNotFoundError(f"{source}/skill.yaml missing")
        dest = ctx.workdir / "skills" / rel.replace("/", "_")
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(source, dest)
        sign_skill(dest, _signing(ctx)[0])
        ctx.cache[key] = dest
    return ctx.cache[key]


def engine_settings(ctx: Context, name: str, *, module_cache: bool = True,
                    **changes: Any) -> Any:
    """``EngineSettings`` with a module cache under the workdir (or none)."""
    from vak.sandbox.settings import EngineSettings

    cache = ctx.workdir / "state" / name / "cache"
    return EngineSettings(module_cache_dir=cache if module_cache else None, **changes)


def host_names() -> tuple[str, ...]:
    """The import names the kernel offers a module (the host catalog)."""
    from vak.host.catalog import HOST_FUNCTIONS

    return tuple(f.name for f in HOST_FUNCTIONS)


def kernel_config(ctx: Context, name: str, **changes: Any) -> Any:
    """A ``KernelConfig`` with its own state dir under the workdir."""
    from vak.config import KernelConfig

    state = ctx.workdir / "state" / name
    state.mkdir(parents=True, exist_ok=True)
    return KernelConfig(state_dir=state, trust_store=trust_file(ctx), **changes)


def naive_caller(module_bytes: bytes, export: str, payload: Any) -> Callable[[], Any]:
    """The naive wasmtime-py path, the way a user would first write it.

    A default ``wasmtime.Engine`` and a module compiled once; per call: a new
    Store, ``Instance``, ``exports()``, the guest allocator, a memory write,
    ``Func.__call__`` and a read of the packed (ptr, len) result, with the same
    JSON encode/decode the kernel does. No fuel, no deadline, no audit.
    """
    engine = wasmtime.Engine()
    module = wasmtime.Module(engine, module_bytes)

    def call() -> Any:
        data = orjson.dumps(payload)
        store = wasmtime.Store(engine)
        instance = wasmtime.Instance(store, module, [])
        exports = instance.exports(store)
        memory = exports["memory"]
        ptr = exports["vak_alloc"](store, len(data))
        memory.write(store, data, ptr)
        packed = exports[export](store, ptr, len(data)) & 0xFFFFFFFFFFFFFFFF
        out_ptr, out_len = packed >> 32, packed & 0xFFFFFFFF
        return orjson.loads(memory.read(store, out_ptr, out_ptr + out_len))

    return call


def rss_bytes() -> int:
    """Resident set size of this process, from /proc (Linux)."""
    with open("/proc/self/statm", encoding="ascii") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")
