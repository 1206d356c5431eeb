"""The catalog of host functions a guest may import from module ``vak``.

This is the single list the sandbox links (every name here is importable;
anything else is refused at instantiation), the mediation dispatches on, and
the Cedar schema declares an action for. Adding a host function means adding
a row here, an action in ``policies/vak.cedarschema`` and an implementation in
``vak/host/``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HOST_FUNCTIONS", "HostFunction", "host_function"]


@dataclass(frozen=True, slots=True)
class HostFunction:
    """One importable host function."""

    name: str  # wasm import name in module "vak"
    family: str  # fs | net | kv | secrets | obs
    action: str  # Cedar action id, e.g. 'Vak::Action::"fs_read"'
    effectful: bool  # changes or reveals the world; decision must be durable first


def _row(name: str, family: str, effectful: bool) -> HostFunction:
    return HostFunction(name, family, f'Vak::Action::"{name}"', effectful)


HOST_FUNCTIONS: tuple[HostFunction, ...] = (
    _row("log", "obs", False),
    _row("clock_now", "obs", False),
    _row("random_bytes", "obs", False),
    _row("fs_read", "fs", True),
    _row("fs_write", "fs", True),
    _row("fs_list", "fs", True),
    _row("http_request", "net", True),
    _row("kv_get", "kv", True),
    _row("kv_put", "kv", True),
    _row("kv_delete", "kv", True),
    _row("kv_list", "kv", True),
    _row("secret_get", "secrets", True),
)

_BY_NAME = {f.name: f for f in HOST_FUNCTIONS}


def host_function(name: str) -> HostFunction | None:
    """The catalog row for import ``name``, or None if the kernel offers no such function."""
    return _BY_NAME.get(name)
