"""``KernelConfig``: the one frozen object that configures a kernel.

The library reads no environment variables; everything the kernel does is
decided by this object, passed explicitly. It composes the settings of each
room (:class:`~vak.sandbox.settings.EngineSettings`,
:class:`~vak.sandbox.settings.WorkerSettings`,
:class:`~vak.host.settings.HostSettings`,
:class:`~vak.policy.settings.PolicySettings`,
:class:`~vak.audit.settings.AuditSettings`) with the kernel's own. Only the
composition root (:class:`vak.kernel.Kernel`) and the CLI see it; each room
is handed its own settings object, with paths resolved, and nothing else::

    >>> cfg = KernelConfig.from_toml("demo/vak.toml")      # doctest: +SKIP
    >>> cfg.audit_settings().log                           # doctest: +SKIP
    PosixPath('/abs/demo/audit/vak.log')
    >>> cfg.with_(engine=replace(cfg.engine, fuel=False))  # doctest: +SKIP

Invariants:

* **one parse, checks derived from the field types.** ``vak.toml`` is read
  once; the tables, key names and type checks come from the dataclass fields
  (:func:`typing.get_type_hints`), so a field a room adds to its settings
  class is a valid key of its table at once. A wrong type (``fuel = "false"``,
  ``pool_total_instances = "many"``, a bool where an int belongs, a negative
  size) or an unknown key anywhere is a :class:`~vak.errors.ConfigError`
  naming the file, the ``table.key``, what was found and what is valid. The
  same checks run on a config built in code (``__post_init__``).
* **paths.** In TOML, relative paths resolve against the TOML file's directory
  (so a ``vak.toml`` written by ``vak demo`` works from any working
  directory). In the room settings handed out by ``*_settings()``, a path
  still relative resolves against ``state_dir``; the defaults of the kernel's
  files (log, keys, kv store, module cache) are such relative paths.
* **ints are never negative** (sizes, counts, milliseconds); a field may ask
  for a larger minimum with ``field(metadata={"min": 1})``.

TOML layout (every key optional; a table is a room, its keys are the fields of
that room's settings class)::

    state_dir = ".vak"                 # default home for the files below
    trust_store = "trust.yaml"
    require_signature = true
    skill_dirs = ["skills/calculator"] # loaded by `vak run` / `vak mcp serve`
    policy_dirs = ["policies"]         # = [policy] policy_dirs (operator policies,
                                       #   added to the shipped ones)
    [kernel]                           # the kernel's own keys may also sit here
    max_concurrency = 8
    session_reuse = false   # opt-in: state persists between calls of one session
    session_max_live = 64
    strict_skills = false   # true: a skill that fails to load stops the start
    compact_invocations = false  # opt-in: one entry for a call without host calls
    [policy]
    decision_cache_size = 4096
    [audit]
    log = "audit/vak.log"   key = "audit/log.key"   origin = "vak.example/kernel-1"
    fsync = "strict"        # or "batched:5"
    hmac_key = "audit/args.hmac"
    [engine]
    pool_total_instances = 1000 ...    fuel = true   module_cache_dir = "cache"
    [host]
    kv_path = "kv.sqlite3"  secrets_file = "secrets.toml"
    [host.fs_mounts]
    "/workspace" = "data"
    [worker]
    force = false  require_os_sandbox = false  pool_size = 2  recycle_after = 1000
    cpu_seconds = 3600  start_timeout_ms = 30000  hang_margin_ms = 1000
    [telemetry]
    enabled = false  exporter = "global"   # or "otlp", "console" (stderr)

The flat names of earlier releases (``cfg.audit_fsync``, ``cfg.force_worker``,
``cfg.with_(worker_pool_size=1)``, ``cfg.resolved("audit_log")``) still read
and replace the room fields they name.
"""

from __future__ import annotations

import enum
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast, overload

from vak._resources import policy_dir
from vak.audit.settings import AuditSettings
from vak.errors import ConfigError
from vak.fleet.settings import FleetSettings
from vak.telemetry.settings import TelemetrySettings

if TYPE_CHECKING:
    # the other rooms' settings load on first use: reading only the [audit] table
    # (``vak-audit verify --config``) must not load the sandbox, host or policy packages
    from vak.host.settings import HostSettings
    from vak.policy.settings import PolicySettings
    from vak.sandbox.settings import EngineSettings, WorkerSettings

__all__ = [
    "SHIPPED_POLICY_DIR", "KernelConfig", "audit_settings_from_toml", "trust_store_from_toml",
]

#: base policies and the Cedar schema shipped inside the package (vak/policies)
SHIPPED_POLICY_DIR = policy_dir()

#: a config value that cannot be a legitimate path, list or string is cut here in messages
_SHOWN = 60

_T = TypeVar("_T")


class _Flat(Generic[_T]):
    """A read-only flat alias of one room field (``cfg.audit_fsync`` -> ``cfg.audit.fsync``)."""

    __slots__ = ("field", "room")

    def __init__(self, room: str, name: str) -> None:
        self.room = room
        self.field = name

    @overload
    def __get__(self, obj: None, owner: type[object]) -> _Flat[_T]: ...
    @overload
    def __get__(self, obj: KernelConfig, owner: type[object]) -> _T: ...
    def __get__(self, obj: KernelConfig | None, owner: type[object]) -> _T | _Flat[_T]:
        if obj is None:
            return self
        return cast(_T, getattr(getattr(obj, self.room), self.field))


_DEFAULT_STATE_DIR = Path(".vak")


def _engine_default() -> EngineSettings:
    from vak.sandbox.settings import EngineSettings

    return EngineSettings(module_cache_dir=Path("cache"))


def _worker_default() -> WorkerSettings:
    from vak.sandbox.settings import WorkerSettings

    return WorkerSettings()


def _host_default() -> HostSettings:
    from vak.host.settings import HostSettings

    return HostSettings(kv_path=Path("kv.sqlite3"))


def _policy_default() -> PolicySettings:
    from vak.policy.settings import PolicySettings

    return PolicySettings()


def _audit_default() -> AuditSettings:
    return AuditSettings(
        log=Path("audit") / "vak.log",
        key=Path("audit") / "log.key",
        hmac_key=Path("audit") / "args.hmac",
    )


@dataclass(frozen=True, slots=True)
class KernelConfig:
    """Everything a :class:`vak.Kernel` needs to know, with safe defaults.

    Raises (from the constructor and :meth:`with_`):
        ConfigError: a field has a value of the wrong type or out of range.
    """

    # --- the kernel's own settings ------------------------------------------
    state_dir: Path = _DEFAULT_STATE_DIR
    trust_store: Path | None = None
    #: refuse skills whose signer is not in the trust store (never turn off in prod)
    require_signature: bool = True
    #: load a skill whose version is lower than one already loaded from the same signer
    #: (a rollback; the floor is kept in state_dir / "version-floor.json"); off by default
    allow_downgrade: bool = False
    skill_dirs: tuple[Path, ...] = ()
    #: most ``ainvoke`` calls awaiting at once, per event loop
    max_concurrency: int = field(default=8, metadata={"min": 1})
    #: opt-in: calls with the same ``session=`` reuse one live instance per skill,
    #: so guest state persists between them (see vak/_session.py); off by default
    session_reuse: bool = False
    #: most sessions holding a live instance at once (least recently used closed first);
    #: must stay below engine.pool_total_instances so fresh calls still find a slot
    session_max_live: int = field(default=64, metadata={"min": 1})
    #: refuse to start when a skill of skill_dirs fails to load; off: the refusal is
    #: recorded (skill_refused) and the other skills keep serving
    strict_skills: bool = False
    #: opt-in: an invocation that makes no host call is recorded by one combined
    #: ``invocation_finished`` entry instead of two; ``invocation_started`` is then
    #: written just before the first host call's decision (docs/AUDIT-FORMAT.md)
    compact_invocations: bool = False

    # --- each room's settings ------------------------------------------------
    engine: EngineSettings = field(default_factory=_engine_default)
    worker: WorkerSettings = field(default_factory=_worker_default)
    host: HostSettings = field(default_factory=_host_default)
    policy: PolicySettings = field(default_factory=_policy_default)
    audit: AuditSettings = field(default_factory=_audit_default)
    #: shipping to a fleet store and witnesses (vak/fleet/settings.py); off by default
    fleet: FleetSettings = field(default_factory=FleetSettings)
    #: OpenTelemetry traces and metrics (vak/telemetry; the 'otel' extra); off by default
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)

    def __post_init__(self) -> None:
        for f in fields(self):
            _check(_hints(KernelConfig)[f.name], getattr(self, f.name), f.name, f)

    # --- resolved room settings (for the composition root) -------------------
    def engine_settings(self) -> EngineSettings:
        """The engine's settings, relative paths under ``state_dir``."""
        return _rebase(self.engine, self.state_dir)

    def worker_settings(self) -> WorkerSettings:
        """The worker pool's settings."""
        return _rebase(self.worker, self.state_dir)

    def host_settings(self) -> HostSettings:
        """The mediation's settings, relative paths under ``state_dir``."""
        return _rebase(self.host, self.state_dir)

    def policy_settings(self) -> PolicySettings:
        """The policy sets that decide: the shipped base first, then the operator's."""
        operator = _rebase(self.policy, self.state_dir)
        return replace(operator, policy_dirs=(SHIPPED_POLICY_DIR, *operator.policy_dirs))

    def audit_settings(self) -> AuditSettings:
        """The audit writer's settings, relative paths under ``state_dir``."""
        return _rebase(self.audit, self.state_dir)

    def fleet_settings(self) -> FleetSettings:
        """The fleet agent's settings (shipping, witnesses), paths under ``state_dir``."""
        return _rebase(self.fleet, self.state_dir)

    @property
    def all_policy_dirs(self) -> tuple[Path, ...]:
        """Shipped policies first, then the operator's."""
        return self.policy_settings().policy_dirs

    # --- flat names of earlier releases ---------------------------------------
    policy_dirs = _Flat[tuple[Path, ...]]("policy", "policy_dirs")
    decision_cache_size = _Flat[int]("policy", "decision_cache_size")
    audit_origin = _Flat[str]("audit", "origin")
    audit_fsync = _Flat[str]("audit", "fsync")
    audit_trust = _Flat[Path | None]("audit", "trust")
    pool_total_instances = _Flat[int]("engine", "pool_total_instances")
    pool_total_memories = _Flat[int]("engine", "pool_total_memories")
    pool_max_memory_bytes = _Flat[int]("engine", "pool_max_memory_bytes")
    pool_total_tables = _Flat[int]("engine", "pool_total_tables")
    pool_table_elements = _Flat[int]("engine", "pool_table_elements")
    epoch_tick_ms = _Flat[int]("engine", "epoch_tick_ms")
    wasm_stack_bytes = _Flat[int]("engine", "wasm_stack_bytes")
    fuel = _Flat[bool]("engine", "fuel")
    fs_mounts = _Flat[Mapping[str, Path]]("host", "fs_mounts")
    secrets_file = _Flat[Path | None]("host", "secrets_file")
    secrets_env = _Flat[tuple[str, ...]]("host", "secrets_env")
    http_max_response_bytes = _Flat[int]("host", "http_max_response_bytes")
    http_timeout_ms = _Flat[int]("host", "http_timeout_ms")
    kv = _Flat[str]("host", "kv")
    force_worker = _Flat[bool]("worker", "force")
    require_os_sandbox = _Flat[bool]("worker", "require_os_sandbox")
    worker_allow_unsandboxed = _Flat[bool]("worker", "allow_unsandboxed")
    worker_pool_size = _Flat[int]("worker", "pool_size")
    worker_recycle_after = _Flat[int]("worker", "recycle_after")
    worker_cpu_seconds = _Flat[int]("worker", "cpu_seconds")
    worker_start_timeout_ms = _Flat[int]("worker", "start_timeout_ms")
    worker_hang_margin_ms = _Flat[int]("worker", "hang_margin_ms")

    @property
    def module_cache(self) -> bool:
        """Whether compiled modules are kept on disk (``engine.module_cache_dir`` set)."""
        return self.engine.module_cache_dir is not None

    def resolved(self, name: str) -> Path:
        """The effective path of a file setting, by its flat name (``"audit_log"``).

        Raises:
            ConfigError: ``name`` is not a file setting, or the file is turned off.
        """
        getters: dict[str, Callable[[], Path | None]] = {
            "audit_log": lambda: self.audit_settings().log,
            "audit_key": lambda: self.audit_settings().key,
            "audit_hmac_key": lambda: self.audit_settings().hmac_key,
            "module_cache_dir": lambda: self.engine_settings().module_cache_dir,
            "kv_path": lambda: self.host_settings().kv_path,
        }
        getter = getters.get(name)
        path = None if getter is None else getter()
        if path is None:
            raise ConfigError(f"no path for setting {name!r}", field=name,
                              valid=sorted(getters))
        return path

    def with_(self, **changes: object) -> KernelConfig:
        """A copy with ``changes`` applied; flat names of earlier releases are accepted.

        Raises:
            ConfigError: an unknown name, or a value of the wrong type.
        """
        own = {f.name for f in fields(self)}
        direct = {k: v for k, v in changes.items() if k in own}
        rooms: dict[str, dict[str, object]] = {}
        for key, value in changes.items():
            if key in own:
                continue
            if key == "module_cache":
                room, name = "engine", "module_cache_dir"
                value = (self.engine.module_cache_dir or Path("cache")) if value else None
            else:
                alias = _LEGACY.get(key)
                if alias is None:
                    raise ConfigError(f"unknown setting {key!r}", field=key,
                                      valid=sorted(own | set(_LEGACY)))
                room, name = alias
            rooms.setdefault(room, {})[name] = value
        for room, values in rooms.items():
            base = direct.get(room, getattr(self, room))
            direct[room] = _replace_checked(base, values, room)
        return replace(self, **cast(dict[str, Any], direct))

    # --- loading ---------------------------------------------------------------
    @classmethod
    def from_toml(cls, path: str | Path) -> KernelConfig:
        """Load a ``vak.toml``; relative paths resolve against its directory.

        Raises:
            ConfigError: the file is missing, not TOML, or has an unknown key or
                a value of the wrong type (the message names the key).
        """
        path = Path(path)
        data = _read_toml(path)
        return cls.from_mapping(data, base=path.parent.resolve(), source=str(path))

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, object], *, base: Path, source: str = "<config>"
    ) -> KernelConfig:
        """Build from a TOML-shaped mapping (see the module docstring).

        Raises:
            ConfigError: an unknown key or a value of the wrong type.
        """
        reader = _Reader(base, source)
        top = dict(data)
        kernel_table = top.pop("kernel", {})
        if not isinstance(kernel_table, Mapping):
            raise reader.wrong("kernel", "a table", kernel_table)
        rooms = {f.name for f in fields(cls) if is_dataclass(_hints(cls)[f.name])}
        for key, value in kernel_table.items():
            if key in rooms or key in top:
                raise reader.unknown(f"kernel.{key}", _own_keys(cls, rooms))
            top[key] = value
        for legacy, (room, name) in _TOP_LEVEL.items():
            if legacy in top:
                table = top.get(room, {})
                if not isinstance(table, Mapping) or name in table:
                    raise reader.unknown(legacy, _own_keys(cls, rooms))
                top[room] = {**table, name: top.pop(legacy)}
        return reader.dataclass(cls, top, "", cls())


def _read_toml(path: Path) -> dict[str, object]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found", file=str(path),
            fix="pass --config PATH to an existing vak.toml (vak demo writes one)",
        ) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}", file=str(path)) from None


def audit_settings_from_toml(path: str | Path) -> AuditSettings:
    """Only the audit log's settings of a ``vak.toml``, paths resolved (for verifiers).

    Reads ``state_dir`` and the ``[audit]`` table with the same checks as
    :meth:`KernelConfig.from_toml`, and nothing else: a verifier of the log
    (``vak-audit verify --config``) loads no other room.

    Raises:
        ConfigError: the file is missing or not TOML, or ``state_dir`` or the
            ``[audit]`` table is invalid.
    """
    path = Path(path)
    data = _read_toml(path)
    reader = _Reader(path.parent.resolve(), str(path))
    kernel = data.get("kernel", {})
    state = data.get("state_dir", kernel.get("state_dir") if isinstance(kernel, Mapping) else None)
    state_dir = _DEFAULT_STATE_DIR if state is None else cast(
        Path, reader.value(Path, state, "state_dir", None))
    table = data.get("audit", {})
    if not isinstance(table, Mapping):
        raise reader.wrong("audit", "a table", table)
    audit = reader.dataclass(AuditSettings, table, "audit.", _audit_default())
    return _rebase(audit, state_dir)



def trust_store_from_toml(path: str | Path) -> Path | None:
    """Only the ``trust_store`` of a ``vak.toml`` (resolved), for verifiers of approvals.

    Like :func:`audit_settings_from_toml`, reads that one key with the same checks
    and loads no room's settings.

    Raises:
        ConfigError: the file is missing or not TOML, or the value is not a path.
    """
    path = Path(path)
    data = _read_toml(path)
    reader = _Reader(path.parent.resolve(), str(path))
    kernel = data.get("kernel", {})
    value = data.get("trust_store",
                     kernel.get("trust_store") if isinstance(kernel, Mapping) else None)
    if value is None:
        return None
    return cast(Path, reader.value(Path, value, "trust_store", None))

# ---------------------------------------------------------------------- names
#: flat name of an earlier release -> (room, field)
_LEGACY: dict[str, tuple[str, str]] = {
    name: (alias.room, alias.field)
    for name, alias in vars(KernelConfig).items() if isinstance(alias, _Flat)
} | {
    "audit_log": ("audit", "log"), "audit_key": ("audit", "key"),
    "audit_hmac_key": ("audit", "hmac_key"), "module_cache_dir": ("engine", "module_cache_dir"),
    "kv_path": ("host", "kv_path"),
}

#: top-level TOML keys of earlier releases that belong to a room's table
_TOP_LEVEL: dict[str, tuple[str, str]] = {
    "policy_dirs": ("policy", "policy_dirs"),
    "decision_cache_size": ("policy", "decision_cache_size"),
}


def _own_keys(cls: type[object], rooms: set[str]) -> list[str]:
    own = {f.name for f in fields(cast(Any, cls))} - rooms
    return sorted(own | {f"[{r}]" for r in rooms} | set(_TOP_LEVEL) | {"[kernel]"})


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The resolved field types of a settings dataclass (annotations are strings here)."""
    hints = _HINTS.get(cls)
    if hints is None:
        namespace = None
        if cls is KernelConfig:
            from vak.host.settings import HostSettings
            from vak.policy.settings import PolicySettings
            from vak.sandbox.settings import EngineSettings, WorkerSettings

            namespace = {**globals(), "EngineSettings": EngineSettings,
                         "WorkerSettings": WorkerSettings, "HostSettings": HostSettings,
                         "PolicySettings": PolicySettings}
        hints = _HINTS[cls] = typing.get_type_hints(cls, globalns=namespace)
    return hints


def _replace_checked(base: object, values: Mapping[str, object], room: str) -> object:
    known = {f.name for f in fields(cast(Any, base))}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown setting {room}.{unknown[0]}", field=f"{room}.{unknown[0]}",
                          valid=sorted(known))
    return replace(cast(Any, base), **values)


# ---------------------------------------------------------------------- types
def _expected(hint: Any, meta: Field[Any] | None = None) -> str:
    """What a value of type ``hint`` looks like, in words for an operator."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_expected(a, meta) for a in typing.get_args(hint)
                           if a is not type(None))
    if origin is tuple or origin is frozenset:
        return f"a list, each {_expected(typing.get_args(hint)[0])}"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (Mapping, dict):
        return f"a table, each value {_expected(typing.get_args(hint)[1])}"
    if hint is int:
        return f"an integer >= {_minimum(meta)}"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in hint)
    if is_dataclass(hint):
        return "a table"
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             Path: "a path string"}
    return words.get(hint, getattr(hint, "__name__", str(hint)))


def _found(value: object) -> str:
    """A bounded, escaped description of a config value (configs are adversarial)."""
    text = repr(value)
    if len(text) > _SHOWN:
        text = text[:_SHOWN] + "..."
    return f"{type(value).__name__} {text}"


def _minimum(meta: Field[Any] | None) -> int:
    if meta is None:
        return 0
    return int(meta.metadata.get("min", 0))


def _check(hint: Any, value: object, where: str, meta: Field[Any] | None = None) -> None:
    """Raise ConfigError unless ``value`` (built in code) is of type ``hint``."""
    if not _matches(hint, value, where, meta):
        raise ConfigError(
            f"setting {where}: expected {_expected(hint, meta)}, found {_found(value)}",
            field=where, found=_found(value), valid=_expected(hint, meta),
        )


def _matches(hint: Any, value: object, where: str, meta: Field[Any] | None) -> bool:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None:
            return type(None) in args
        options = [a for a in args if a is not type(None)]
        return any(_matches(a, value, where, meta) for a in options)
    if origin is tuple or origin is frozenset:
        return isinstance(value, origin) and all(
            _matches(args[0], v, where, None) for v in value)
    if origin is Literal:
        return value in args
    if origin in (Mapping, dict):
        return isinstance(value, Mapping) and all(
            isinstance(k, str) and _matches(args[1], v, f"{where}.{k}", None)
            for k, v in value.items())
    if is_dataclass(hint):
        if not isinstance(value, cast(type, hint)):
            return False
        for f in fields(cast(Any, value)):
            _check(_hints(type(value))[f.name], getattr(value, f.name), f"{where}.{f.name}", f)
        return True
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool) and \
            value >= _minimum(meta)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return hint is Any or hint is object or isinstance(value, hint)


def _rebase(settings: _T, base: Path) -> _T:
    """``settings`` with every relative path (also in lists and tables) under ``base``."""
    changes: dict[str, object] = {}
    for f in fields(cast(Any, settings)):
        value = getattr(settings, f.name)
        moved = _rebase_value(_hints(type(settings))[f.name], value, base)
        if moved is not value:
            changes[f.name] = moved
    return replace(cast(Any, settings), **changes) if changes else settings


def _rebase_value(hint: Any, value: object, base: Path) -> object:
    if isinstance(value, Path):
        return value if value.is_absolute() else base / value
    if isinstance(value, tuple) and any(isinstance(v, Path) for v in value):
        return tuple(_rebase_value(hint, v, base) for v in value)
    if isinstance(value, Mapping) and any(isinstance(v, Path) for v in value.values()):
        return {k: _rebase_value(hint, v, base) for k, v in value.items()}
    if is_dataclass(value) and not isinstance(value, type):
        return _rebase(value, base)
    return value


class _Reader:
    """Turns TOML values into field values, one type shape at a time, naming ``table.key``."""

    def __init__(self, base: Path, source: str) -> None:
        self.base = base
        self.source = source

    def wrong(self, where: str, expected: str, value: object) -> ConfigError:
        return ConfigError(
            f"{self.source}: {where}: expected {expected}, found {_found(value)}",
            file=self.source, field=where, found=_found(value), valid=expected,
        )

    def unknown(self, where: str, valid: list[str]) -> ConfigError:
        return ConfigError(
            f"{self.source}: unknown setting {where}", file=self.source, field=where,
            valid=valid, fix="remove it or check the spelling against vak/config.py",
        )

    def dataclass(self, cls: type[_T], table: Mapping[str, object], prefix: str,
                  default: _T) -> _T:
        known = {f.name: f for f in fields(cast(Any, cls))}
        values: dict[str, object] = {}
        for key, value in table.items():
            where = f"{prefix}{key}"
            if key not in known:
                raise self.unknown(where, sorted(known))
            values[key] = self.value(_hints(cls)[key], value, where,
                                     getattr(default, key, None), known[key])
        missing = [f.name for f in known.values() if f.name not in values
                   and f.default is MISSING and f.default_factory is MISSING]
        if missing and default is None:
            raise ConfigError(f"{self.source}: [{prefix.rstrip('.')}] needs {missing[0]}",
                              file=self.source, field=f"{prefix}{missing[0]}")
        return replace(cast(Any, default), **values) if default is not None else cls(**values)

    def value(self, hint: Any, value: object, where: str, default: object,
              meta: Field[Any] | None = None) -> object:
        """``value`` converted to ``hint`` (lists to tuples, strings to paths...).

        Raises:
            ConfigError: naming ``where``, the value found and what is valid.
        """
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if origin in (types.UnionType, typing.Union):
            options = [a for a in args if a is not type(None)]
            if len(options) == 1:
                return self.value(options[0], value, where, default, meta)
            return self.leaf(hint, value, where, meta)
        if origin is tuple or origin is frozenset:
            if not isinstance(value, list):
                raise self.wrong(where, _expected(hint), value)
            return origin(self.value(args[0], v, f"{where}[{i}]", None)
                          for i, v in enumerate(value))
        if origin in (Mapping, dict):
            if not isinstance(value, Mapping):
                raise self.wrong(where, _expected(hint), value)
            return {k: self.value(args[1], v, f"{where}.{k}", None) for k, v in value.items()}
        if is_dataclass(hint):
            if not isinstance(value, Mapping):
                raise self.wrong(where, "a table", value)
            start = default if is_dataclass(default) else None
            return self.dataclass(cast(type, hint), value, f"{where}.", start)
        return self.scalar(hint, value, where, meta)

    def scalar(self, hint: Any, value: object, where: str, meta: Field[Any] | None) -> object:
        if hint is Path:
            if not isinstance(value, str) or not value or "\0" in value:
                raise self.wrong(where, _expected(hint), value)
            path = Path(value).expanduser()
            return path if path.is_absolute() else self.base / path
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            try:
                return hint(value)
            except ValueError:
                raise self.wrong(where, _expected(hint), value) from None
        return self.leaf(hint, value, where, meta)

    def leaf(self, hint: Any, value: object, where: str, meta: Field[Any] | None) -> object:
        if not _matches(hint, value, where, meta):
            raise self.wrong(where, _expected(hint, meta), value)
        return value
