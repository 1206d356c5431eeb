"""How a command finds a running ``vak serve`` and asks it to reload.

The front writes ``<state_dir>/serve/serve.json`` once every worker is ready
(and removes it when it stops); it names the control socket
``<state_dir>/serve/control.sock`` (0600, so only the operator's account may
use it). ``vak reload --config vak.toml`` reads the state dir from the config,
the state file from there, and sends ``{"op": "reload"}``::

    >>> state = read_state(Path(".vak"))                 # doctest: +SKIP
    >>> ask(state, "reload")["ok"]                       # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from vak import errors
from vak.errors import ConfigError, VakError

__all__ = ["ask", "error_from", "read_state", "state_path"]


def state_path(state_dir: Path) -> Path:
    return state_dir / "serve" / "serve.json"


def read_state(state_dir: Path) -> dict[str, Any]:
    """The state file of the server running on ``state_dir``.

    Raises:
        ConfigError: no server is running there (no file, or its pid is gone).
    """
    path = state_path(state_dir)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no `vak serve` is running for this state_dir",
                          file=str(path), fix="start one with `vak serve --config vak.toml`"
                          ) from None
    except (OSError, ValueError, RecursionError) as exc:
        raise ConfigError(f"{path}: unreadable server state: {type(exc).__name__}",
                          file=str(path)) from None
    if not isinstance(state, dict):
        raise ConfigError(f"{path}: server state is not an object", file=str(path))
    pid = state.get("pid")
    if not isinstance(pid, int) or not _alive(pid):
        raise ConfigError(f"{path}: the server that wrote it (pid {pid}) is not running",
                          file=str(path), fix="remove the stale file, or start `vak serve`")
    out: dict[str, Any] = state
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ask(state: dict[str, Any], op: str, timeout: float = 180.0) -> dict[str, Any]:
    """Send ``op`` on the control socket; the server's JSON answer.

    Raises:
        ConfigError: the socket cannot be reached or the answer is not JSON.
    """
    path = str(state.get("control", ""))
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(json.dumps({"op": op}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        answer = json.loads(data)
    except (OSError, ValueError, RecursionError) as exc:
        raise ConfigError(f"{path}: cannot talk to the server: {type(exc).__name__}",
                          file=path) from None
    if not isinstance(answer, dict):
        raise ConfigError(f"{path}: the server's answer is not an object", file=path)
    return answer


def error_from(body: dict[str, Any]) -> VakError:
    """The typed error a worker reported (``VakError.to_dict()``), for the CLI's exit code."""
    code = body.get("error")
    message = str(body.get("message", "reload failed"))
    details = {k: v for k, v in body.items() if k not in ("error", "message")}
    for name in dir(errors):
        cls = getattr(errors, name)
        if isinstance(cls, type) and issubclass(cls, VakError) and cls.code == code:
            return cls(message, **details)
    return VakError(message, **details)
