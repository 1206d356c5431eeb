"""``vak status``: what this machine supports, and with a config what the kernel runs.

Without a ``vak.toml`` (none in the current directory and no ``--config``) it
still answers the first question a new user has: can VAK sandbox skills here?
It reports the OS barriers the worker would apply (Landlock ABI, seccomp,
no_new_privs), whether wasmtime's pooling allocator can reserve its default
pools, whether the Zig compiler for ``vak skill build`` is installed, and the
versions of the engine and the policy evaluator. With a config it adds the
kernel's configuration, skills and tools. Probing never restricts this process.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from vak.cli._vak import DEFAULT_CONFIG, add, open_kernel, print_json
from vak.errors import ConfigError

__all__ = ["cmd_status", "machine_status", "pooling_status", "register", "status_dict"]


def pooling_status() -> dict[str, Any]:
    """Whether an engine with the default pooling allocator sizes can be created here."""
    import wasmtime

    from vak.sandbox.pooling import apply_pooling
    from vak.sandbox.settings import EngineSettings

    settings = EngineSettings()
    reserve = settings.pool_total_memories * settings.pool_max_memory_bytes
    out: dict[str, Any] = {"total_instances": settings.pool_total_instances,
                           "virtual_reservation_gib": round(reserve / (1 << 30), 1)}
    try:
        cfg = wasmtime.Config()
        apply_pooling(cfg, settings)
        wasmtime.Engine(cfg)
    except (wasmtime.WasmtimeError, ConfigError, OSError) as exc:
        out.update(available=False, reason=f"{type(exc).__name__}: {str(exc)[:200]}",
                   fix="lower engine.pool_total_memories or engine.pool_max_memory_bytes, "
                   "or raise the address-space limit (ulimit -v)")
        return out
    out["available"] = True
    return out


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_status() -> dict[str, Any]:
    """What this machine offers VAK (see the module docstring)."""
    from vak.sandbox import oslock

    barriers = oslock.barrier_status().to_dict()
    return {
        "platform": f"{platform.system().lower()}-{platform.machine()}",
        "python": platform.python_version(),
        "os_sandbox": barriers,
        "pooling": pooling_status(),
        "skill_build": {"zig": importlib.util.find_spec("ziglang") is not None,
                        "fix": None if importlib.util.find_spec("ziglang") else
                        "pip install 'vak[build]'"},
        "versions": {name: _version(name) for name in ("vak", "wasmtime", "cedarpy")},
    }


def status_dict(kernel: Any, config_path: str) -> dict[str, Any]:
    """What ``vak status --config`` reports: config, audit, skills, tools, the machine."""
    cfg = kernel.config
    out: dict[str, Any] = {
        "config": config_path,
        "audit_log": str(cfg.resolved("audit_log")),
        "audit_fsync": cfg.audit_fsync,
        "require_signature": cfg.require_signature,
        "force_worker": cfg.force_worker,
        "skills": [{"name": s.name, "version": s.version, "tier": s.tier,
                    "route": "worker" if s.use_worker else "engine"}
                   for s in kernel.skills()],
        "tools": [t.name for t in kernel.tools()],
        "refused": [_refused_dict(r) for r in kernel.refused_skills()],
    }
    if hasattr(kernel, "sandbox_status"):  # what this kernel applies (degraded or not)
        out["sandbox"] = kernel.sandbox_status()
    machine = machine_status()
    out["os_sandbox"] = machine.pop("os_sandbox")
    out["machine"] = machine
    out["versions"] = machine["versions"]
    return out


def _refused_dict(refused: Any) -> dict[str, Any]:
    """A skill of skill_dirs that would not load (its text bounded and escaped already)."""
    skill = refused.skill
    return {"path": refused.path, "error": refused.error, "message": refused.message,
            "skill": None if skill is None else f"{skill.id} {skill.version}"}


def _yes(flag: object) -> str:
    return "yes" if flag else "no"


def _machine_lines(data: dict[str, Any]) -> list[str]:
    os_ = data["os_sandbox"]
    machine = data.get("machine", data)
    pool = machine["pooling"]
    lines = [
        f"{'platform':<18} {machine['platform']} (python {machine['python']})",
        f"{'landlock':<18} ABI {os_['landlock']['abi']}  fs {_yes(os_['landlock']['fs'])}  "
        f"net {_yes(os_['landlock']['net'])}",
        f"{'seccomp':<18} {_yes(os_['seccomp']['available'])} "
        f"(tsync {_yes(os_['seccomp']['tsync'])})",
        f"{'worker sandbox':<18} "
        + ("complete" if os_["complete"] else f"INCOMPLETE: missing {', '.join(os_['missing'])}"),
        f"{'pooling':<18} " + (f"yes ({pool['total_instances']} instances, "
                               f"{pool['virtual_reservation_gib']} GiB virtual)"
                               if pool["available"] else f"NO: {pool['reason']}"),
        f"{'skill build (zig)':<18} " + ("yes" if machine["skill_build"]["zig"]
                                         else "no: pip install 'vak[build]'"),
        f"{'versions':<18} " + "  ".join(f"{k} {v}" for k, v in machine["versions"].items()),
    ]
    return lines


def cmd_status(args: argparse.Namespace) -> int:
    """``vak status``: the machine; with a config also the kernel."""
    config = args.config
    if config is None and Path(DEFAULT_CONFIG).exists():
        config = DEFAULT_CONFIG
    if config is None:
        data: dict[str, Any] = {"config": None, **machine_status()}
        if args.json:
            print_json(data)
            return 0
        print(f"{'config':<18} none (no ./vak.toml; `vak init DIR` writes one)")
        print("\n".join(_machine_lines(data)))
        return 0
    with open_kernel(config, read_only=True) as kernel:  # no lock, no entry: works beside a server
        data = status_dict(kernel, config)
    if args.json:
        print_json(data)
        return 0
    for key in ("config", "audit_log", "audit_fsync", "require_signature", "force_worker"):
        print(f"{key:<18} {data[key]}")
    print(f"{'tools':<18} {', '.join(data['tools']) or '(none)'}")
    for r in data["refused"]:
        print(f"{'refused skill':<18} {r['path']}: {r['error']}: {r['message']}")
    if "sandbox" in data:
        print(f"{'sandbox':<18} {json.dumps(data['sandbox'], default=str)}")
    print("\n".join(_machine_lines(data)))
    return 0


def register(sub: Any) -> None:
    """Add ``vak status`` to the ``vak`` subparsers."""
    p = add(sub, "status", cmd_status,
            "Report what this machine supports (Landlock, seccomp, pooling, Zig) and, "
            "with a config, the kernel's configuration, skills and tools.", config=False,
            epilog="examples:\n  vak status\n  vak status --config demo/vak.toml --json")
    p.add_argument("--config", default=None, metavar="vak.toml",
                   help="kernel configuration (default: ./vak.toml if it exists, else "
                   "only the machine is reported)")
