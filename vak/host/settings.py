"""Settings of the host room: what the host functions may reach and how far.

Built by the composition root from ``KernelConfig`` with paths resolved; the
mediation and the host families read only this object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["HostSettings"]


@dataclass(frozen=True, slots=True)
class HostSettings:
    """fs mounts, the kv store, secrets sources and HTTP bounds."""

    #: guest path prefix ("/workspace") -> host directory
    fs_mounts: Mapping[str, Path] = field(default_factory=dict)
    #: the SQLite kv database; ``None``: no kv store (kv calls are refused)
    kv_path: Path | None = None
    secrets_file: Path | None = None
    #: names of secrets the CLI's provider reads from the environment
    secrets_env: tuple[str, ...] = ()
    #: largest HTTP response body a call may read, and its default
    http_max_response_bytes: int = 1 << 20
    #: largest (and default) ``timeout_ms`` of one HTTP exchange, connect to last byte
    http_timeout_ms: int = 5000
    #: largest (and default) ``max_bytes`` of one ``fs_read``
    fs_max_read_bytes: int = 1 << 20
    #: operator cap on host calls per invocation, below what a manifest declares
    max_host_calls: int | None = None
