"""``ServeSettings``: what ``vak serve`` was asked to do, checked before anything starts.

Binding an address other than loopback without a token file is refused
(:class:`~vak.errors.ConfigError`, exit 8): an unauthenticated kernel must
not be reachable from another machine. The listen address must be an IP
literal (or ``localhost``, meaning 127.0.0.1), so what is checked is what is
bound -- no name is resolved.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from vak.errors import ConfigError

__all__ = ["ServeSettings", "parse_listen"]

DEFAULT_PORT = 8765
#: most worker processes (session ids name the worker in at most 4 digits)
MAX_WORKERS = 256


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` / ``[V6]:PORT`` / ``HOST`` -> (IP literal, port).

    Raises:
        ConfigError: not an IP literal with a port in 0..65535.
    """
    host, port_text = text, str(DEFAULT_PORT)
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ConfigError(f"--listen {text[:80]!r}: unclosed [", field="--listen")
        host, rest = text[1:close], text[close + 1:]
        if rest:
            if not rest.startswith(":"):
                raise ConfigError(f"--listen {text[:80]!r}: expected [ADDR]:PORT",
                                  field="--listen")
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ipaddress.ip_address(host)
        port = int(port_text)
    except ValueError:
        raise ConfigError(
            f"--listen {text[:80]!r}: expected IP:PORT with an IP address literal",
            field="--listen", fix="e.g. --listen 127.0.0.1:8765 (names are not resolved)",
        ) from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"--listen {text[:80]!r}: port out of range", field="--listen")
    return host, port


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """The checked settings of one ``vak serve``.

    Raises (constructor):
        ConfigError: a non-loopback address without a token file, a worker count
            outside 1..256, or a drain timeout that is not positive.
    """

    config_path: Path
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    workers: int = 0
    token_file: Path | None = None
    drain_timeout: float = 30.0
    log_format: str = "text"
    log_level: str = "info"

    def __post_init__(self) -> None:
        if self.workers == 0:
            object.__setattr__(self, "workers", os.cpu_count() or 1)
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ConfigError(f"--workers {self.workers}: expected 1..{MAX_WORKERS} "
                              "(0: the CPU count)", field="--workers")
        if not 0 < self.drain_timeout <= 3600:
            raise ConfigError(f"--drain-timeout {self.drain_timeout}: expected 0 < seconds "
                              "<= 3600", field="--drain-timeout")
        if self.token_file is None and not ipaddress.ip_address(self.host).is_loopback:
            raise ConfigError(
                f"refusing to serve on {self.host} without authentication: only loopback "
                "addresses may be served without a token file", field="--token-file",
                fix="create one with `vak serve token add NAME --token-file FILE` and pass "
                "--token-file FILE, or listen on 127.0.0.1")

    @property
    def serve_dir(self) -> Path:
        return self.state_dir / "serve"

    @property
    def state_path(self) -> Path:
        """``<state_dir>/serve/serve.json``: how ``vak reload`` finds the server."""
        return self.serve_dir / "serve.json"

    @property
    def control_path(self) -> Path:
        return self.serve_dir / "control.sock"
