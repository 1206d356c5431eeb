"""Helpers for tests that drive ``vak.sandbox.engine.Engine`` directly (no kernel)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml

from vak.config import KernelConfig
from vak.errors import ABIError, HostCallLimitError
from vak.host.catalog import HOST_FUNCTIONS
from vak.identity.manifest import Limits
from vak.sandbox.engine import Engine, module_digest
from vak.sandbox.pool import WorkerPool
from vak.sandbox.settings import EngineSettings, WorkerSettings

SMALL_POOL = {"pool_total_instances": 32, "pool_total_memories": 32, "pool_total_tables": 32}
#: the import names the kernel offers (what the composition root hands the engine)
HOST_NAMES = tuple(f.name for f in HOST_FUNCTIONS)


def small_config(tmp: Path, **changes: object) -> KernelConfig:
    """A kernel config with a small engine pool, state under ``tmp``."""
    return KernelConfig(state_dir=tmp, **{**SMALL_POOL, **changes})  # type: ignore[arg-type]


def small_settings(tmp: Path, **changes: object) -> EngineSettings:
    """Engine settings with a small pool and a module cache under ``tmp``
    (``module_cache=False`` keeps none)."""
    cache = changes.pop("module_cache", True)
    changes.setdefault("module_cache_dir", tmp / "cache" if cache else None)
    return EngineSettings(**{**SMALL_POOL, **changes})  # type: ignore[arg-type]


def load_skill(engine: Engine, skill_dir: Path) -> tuple[str, Limits]:
    """Compile a skill's module; return its digest and the manifest's limits."""
    data = yaml.safe_load((skill_dir / "skill.yaml").read_text())
    wasm = (skill_dir / data["module"]["path"]).read_bytes()
    digest = module_digest(wasm)
    engine.compile(wasm, digest)
    return digest, Limits(**data.get("limits", {}))


class Echo:
    """A HostHandler: records calls, answers ``{"fn": name, "args": ...}``.

    Like the kernel's mediation (RULES contract 3) it counts calls and refuses
    past ``max_host_calls`` (``None``: no limit), and ``refuse`` records each
    refusal in ``refusals`` and returns the typed error the engine raises.
    """

    def __init__(self, max_host_calls: int | None = None) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.refusals: list[tuple[str, str, str]] = []
        self.max_host_calls = max_host_calls
        self._count = 0

    def __call__(self, function: str, args: bytes) -> bytes:
        self._count += 1
        if self.max_host_calls is not None and self._count > self.max_host_calls:
            raise self.refuse(function, "vak.host-call-limit",
                              f"more than {self.max_host_calls} host calls")
        self.calls.append((function, args))
        return orjson.dumps({"fn": function, "args": orjson.loads(args)})

    def refuse(self, function: str, policy_id: str, reason: str) -> BaseException:
        self.refusals.append((function, policy_id, reason))
        if policy_id == "vak.host-call-limit":
            return HostCallLimitError(reason, host_function=function, limit=self.max_host_calls)
        return ABIError(reason, host_function=function, policy_id=policy_id)


def no_host(function: str, args: bytes) -> bytes:
    raise AssertionError(f"unexpected host call {function}")


def worker_pool(*, probe: bool = False, engine: EngineSettings | None = None,
                **changes: Any) -> WorkerPool:
    """A WorkerPool with ``WorkerSettings(**changes)``; ``probe`` starts the
    test-only escape-probe worker (``tests/worker_probe.py``)."""
    from worker_probe import PROBE_COMMAND

    return WorkerPool(WorkerSettings(**changes), engine or EngineSettings(), HOST_NAMES,
                      command=PROBE_COMMAND if probe else None)
