"""``KernelConfig``: the one frozen object that configures a kernel.

The library reads no environment variables; everything the kernel does is
decided by this object, passed explicitly. It can be loaded from TOML, where
relative paths resolve against the TOML file's directory (so a ``vak.toml``
written by ``vak demo`` works from any working directory)::

    >>> cfg = KernelConfig.from_toml("demo/vak.toml")      # doctest: +SKIP
    >>> cfg.audit_log                                      # doctest: +SKIP
    PosixPath('/abs/demo/audit/vak.log')

TOML layout (every key optional)::

    state_dir = ".vak"                 # default home for the files below
    trust_store = "trust.yaml"
    policy_dirs = ["policies"]         # operator policies, added to the shipped ones
    skill_dirs = ["skills/calculator"] # loaded by `vak run` / `vak mcp serve`
    [audit]
    log = "audit/vak.log"   key = "audit/log.key"   origin = "vak.example/kernel-1"
    fsync = "strict"        # or "batched:5"
    [engine]
    pool_total_instances = 1000 ...
    [host]
    kv_path = "kv.sqlite3"  secrets_file = "secrets.toml"
    [host.fs_mounts]
    "/workspace" = "data"
    [worker]
    force = false  require_os_sandbox = false  pool_size = 2  recycle_after = 1000
    cpu_seconds = 3600  start_timeout_ms = 30000  hang_margin_ms = 1000
    [kernel]
    max_concurrency = 8
    session_reuse = false   # opt-in: state persists between calls of one session
    session_max_live = 64
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from vak._resources import policy_dir
from vak.errors import ConfigError

__all__ = ["SHIPPED_POLICY_DIR", "KernelConfig"]

#: base policies and the Cedar schema shipped inside the package (vak/policies)
SHIPPED_POLICY_DIR = policy_dir()


@dataclass(frozen=True, slots=True)
class KernelConfig:
    """Everything a :class:`vak.Kernel` needs to know, with safe defaults."""

    # --- where state lives -------------------------------------------------
    state_dir: Path = Path(".vak")
    trust_store: Path | None = None
    #: refuse skills whose signer is not in the trust store (never turn off in prod)
    require_signature: bool = True
    #: load a skill whose version is lower than one already loaded from the same signer
    #: (a rollback; the floor is kept in state_dir / "version-floor.json"); off by default
    allow_downgrade: bool = False
    skill_dirs: tuple[Path, ...] = ()

    # --- policy ------------------------------------------------------------
    #: operator policy directories, evaluated together with SHIPPED_POLICY_DIR
    policy_dirs: tuple[Path, ...] = ()
    decision_cache_size: int = 4096

    # --- audit -------------------------------------------------------------
    audit_log: Path | None = None  # default: state_dir / "audit" / "vak.log"
    audit_key: Path | None = None  # default: state_dir / "audit" / "log.key"
    audit_origin: str = "vak.local/kernel"
    #: "strict" (fsync before every effect) or "batched:<ms>"
    audit_fsync: str = "strict"
    #: HMAC key file for argument digests; default: state_dir / "audit" / "args.hmac"
    audit_hmac_key: Path | None = None
    #: trust file pinning the log's key for ``vak-audit verify --config``
    audit_trust: Path | None = None

    # --- engine ------------------------------------------------------------
    pool_total_instances: int = 1000
    pool_total_memories: int = 1000
    pool_max_memory_bytes: int = 64 << 20
    pool_total_tables: int = 1000
    pool_table_elements: int = 10_000
    epoch_tick_ms: int = 1
    wasm_stack_bytes: int = 512 << 10
    #: fuel metering on; operators may turn it off for trusted skills only
    fuel: bool = True
    module_cache_dir: Path | None = None  # default: state_dir / "cache"
    #: keep compiled modules on disk (False in OS-sandboxed workers, which cannot write)
    module_cache: bool = True

    # --- host functions ----------------------------------------------------
    fs_mounts: Mapping[str, Path] = field(default_factory=dict)
    kv_path: Path | None = None  # default: state_dir / "kv.sqlite3"
    secrets_file: Path | None = None
    #: names of secrets read from the environment by the CLI's provider
    secrets_env: tuple[str, ...] = ()
    http_max_response_bytes: int = 1 << 20
    http_timeout_ms: int = 5000

    # --- OS-sandboxed worker ------------------------------------------------
    force_worker: bool = False
    require_os_sandbox: bool = False
    #: run untrusted skills on a host without Landlock or seccomp (recorded as degraded)
    worker_allow_unsandboxed: bool = False
    worker_pool_size: int = 2
    worker_recycle_after: int = 1000
    #: RLIMIT_CPU of a worker over its whole life (SIGXCPU ends it; the pool replaces it)
    worker_cpu_seconds: int = 3600
    #: how long a worker may take to start, restrict itself and compile its module
    worker_start_timeout_ms: int = 30_000
    #: grace beyond max_execution_time_ms before a silent worker counts as hung
    worker_hang_margin_ms: int = 1000

    # --- kernel API ---------------------------------------------------------
    max_concurrency: int = 8
    #: opt-in: calls with the same ``session=`` reuse one live instance per skill,
    #: so guest state persists between them (see vak/_session.py); off by default
    session_reuse: bool = False
    #: most sessions holding a live instance at once (least recently used closed first);
    #: must stay below pool_total_instances so fresh calls still find a slot
    session_max_live: int = 64

    # ------------------------------------------------------------------------
    def resolved(self, name: str) -> Path:
        """The effective path of an optional path field, applying defaults.

        Raises:
            ConfigError: ``name`` is not a path setting with a default.
        """
        defaults = {
            "audit_log": Path("audit") / "vak.log",
            "audit_key": Path("audit") / "log.key",
            "audit_hmac_key": Path("audit") / "args.hmac",
            "module_cache_dir": Path("cache"),
            "kv_path": Path("kv.sqlite3"),
        }
        if name not in defaults:
            raise ConfigError(f"no default path for setting {name!r}")
        value = getattr(self, name)
        return Path(value) if value is not None else self.state_dir / defaults[name]

    @property
    def all_policy_dirs(self) -> tuple[Path, ...]:
        """Shipped policies first, then the operator's."""
        return (SHIPPED_POLICY_DIR, *self.policy_dirs)

    def with_(self, **changes: Any) -> KernelConfig:
        """A copy with ``changes`` applied (dataclasses.replace, validated)."""
        return replace(self, **changes)

    # ------------------------------------------------------------------------
    @classmethod
    def from_toml(cls, path: str | Path) -> KernelConfig:
        """Load a ``vak.toml``; relative paths resolve against its directory.

        Raises:
            ConfigError: the file is missing, not TOML, or has an unknown key or
                a value of the wrong type (the message names the key).
        """
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"{path}: config file not found", file=str(path),
                fix="pass --config PATH to an existing vak.toml (vak demo writes one)",
            ) from None
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read config: {exc}", file=str(path)) from None
        return cls.from_mapping(data, base=path.parent.resolve(), source=str(path))

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, base: Path, source: str = "<config>"
    ) -> KernelConfig:
        """Build from a TOML-shaped mapping (see the module docstring)."""
        flat: dict[str, Any] = {}
        sections = {
            "audit": {"log": "audit_log", "key": "audit_key", "origin": "audit_origin",
                      "fsync": "audit_fsync", "hmac_key": "audit_hmac_key",
                      "trust": "audit_trust"},
            "worker": {"force": "force_worker", "require_os_sandbox": "require_os_sandbox",
                       "allow_unsandboxed": "worker_allow_unsandboxed",
                       "pool_size": "worker_pool_size", "recycle_after": "worker_recycle_after",
                       "cpu_seconds": "worker_cpu_seconds",
                       "start_timeout_ms": "worker_start_timeout_ms",
                       "hang_margin_ms": "worker_hang_margin_ms"},
        }
        for key, value in data.items():
            if key in sections and isinstance(value, Mapping):
                for sub, sval in value.items():
                    if sub not in sections[key]:
                        raise ConfigError(
                            f"{source}: unknown setting {key}.{sub}", file=source,
                            field=f"{key}.{sub}", valid=sorted(sections[key]),
                        )
                    flat[sections[key][sub]] = sval
            elif key in ("engine", "host", "kernel") and isinstance(value, Mapping):
                for sub, sval in value.items():
                    flat[sub] = sval
            else:
                flat[key] = value

        known = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in flat.items():
            if key not in known:
                raise ConfigError(
                    f"{source}: unknown setting {key!r}", file=source, field=key,
                    fix="remove it or check the spelling against vak/config.py",
                )
            kwargs[key] = _coerce(key, value, base, source)
        return cls(**kwargs)


_PATH_FIELDS = {
    "state_dir", "trust_store", "audit_log", "audit_key", "audit_hmac_key", "audit_trust",
    "module_cache_dir", "kv_path", "secrets_file",
}
_PATH_TUPLE_FIELDS = {"skill_dirs", "policy_dirs"}


def _coerce(key: str, value: Any, base: Path, source: str) -> Any:
    def as_path(v: Any) -> Path:
        if not isinstance(v, str):
            raise ConfigError(f"{source}: {key} must be a path string", file=source, field=key)
        p = Path(v).expanduser()
        return p if p.is_absolute() else base / p

    if key in _PATH_FIELDS:
        return as_path(value)
    if key in _PATH_TUPLE_FIELDS:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key} must be a list of paths", file=source, field=key)
        return tuple(as_path(v) for v in value)
    if key == "fs_mounts":
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: fs_mounts must be a table", file=source, field=key)
        return {str(k): as_path(v) for k, v in value.items()}
    if key == "secrets_env":
        return tuple(str(v) for v in value)
    return value
