"""How worker ``i`` of ``vak serve`` names its audit log, origin and MCP sessions.

Each worker is a whole kernel with its own hash chain, so each writes its own
log; they share the log's signing key and argument-digest key (one key to pin,
digests comparable across workers)::

    [audit] log = "audit/vak.log", origin = "vak.demo/kernel"
    worker 0: audit/vak-w0.log   origin "vak.demo/kernel/w0"
    worker 1: audit/vak-w1.log   origin "vak.demo/kernel/w1"

A verifier key is named by its origin, so a pinned key (``[audit] trust``)
pins one origin. The front derives one pin file per worker from the
operator's pin -- the *pinned* public key (never the one in the key file)
under the worker's origin -- beside it: ``audit-pin.pub`` ->
``audit-pin-w0.pub``, and ``vak-audit verify audit/vak-w0.log --trust
audit-pin-w0.pub`` checks worker 0's log against the operator's pin. Without
a pin, ``--key audit/log.key.pub`` (every origin's line is there) verifies,
reported as not pinned. MCP session ids carry the worker: ``w1-<32 hex>``, so
the front routes every request of a session to the worker holding it, from
the id alone.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import replace
from pathlib import Path

from vak.audit.keys import parse_verifier_key
from vak.config import KernelConfig
from vak.errors import KeyFileError
from vak.identity.keys import verifier_key

__all__ = ["SESSION_ID", "log_path", "new_session_id", "pin_path", "worker_config",
           "worker_of_session", "write_worker_pin"]

#: the shape of every session id a worker hands out
SESSION_ID = re.compile(r"w([0-9]{1,4})-[0-9a-f]{32}")


def log_path(log: Path, index: int) -> Path:
    """``audit/vak.log`` -> ``audit/vak-w<index>.log`` (the suffix kept)."""
    return log.with_name(f"{log.stem}-w{index}{log.suffix}")


def pin_path(pin: Path, index: int) -> Path:
    """``audit-pin.pub`` -> ``audit-pin-w<index>.pub``."""
    return log_path(pin, index)


def worker_config(config: KernelConfig, index: int) -> KernelConfig:
    """The config of worker ``index``: its own log, origin and pin; the rest shared."""
    audit = config.audit
    trust = None if audit.trust is None else pin_path(audit.trust, index)
    return config.with_(audit=replace(audit, log=log_path(audit.log, index),
                                      origin=f"{audit.origin}/w{index}", trust=trust))


def write_worker_pin(config: KernelConfig, index: int) -> Path | None:
    """Write worker ``index``'s pin derived from the operator's ``[audit] trust`` file
    (None: no pin configured, or the file does not exist yet).

    Every key pinned under the configured origin is pinned under the worker's
    origin too, with its flags (``revoked``, ``not-after=``); nothing else is.

    Raises:
        KeyFileError: the pin file is unreadable, malformed or pins no key of
            the configured origin.
    """
    settings = config.audit_settings()
    if settings.trust is None:
        return None
    pin = settings.trust
    if not pin.exists():
        return None  # not pinned yet (the kernel does not need the pin to run)
    try:
        text = pin.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{pin}: cannot read the pinned log key: {exc}",
                           file=str(pin)) from None
    lines = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            key = parse_verifier_key(line)
        except KeyFileError as exc:
            raise KeyFileError(f"{pin}:{n}: {exc.message}", file=str(pin), line=n) from None
        if key.name != settings.origin:
            continue
        head, *flags = line.split()
        public = base64.b64decode(head.split("+", 2)[2])[1:]
        lines.append(" ".join([verifier_key(f"{settings.origin}/w{index}", public), *flags]))
    if not lines:
        raise KeyFileError(f"{pin}: pins no key of origin {settings.origin!r}", file=str(pin),
                           fix="pin the log's key line from <audit key>.pub")
    out = pin_path(pin, index)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text("# derived by vak serve from " + pin.name + " (worker "
                   f"{index})\n" + "\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(out)
    return out


def new_session_id(index: int) -> str:
    """A fresh, unguessable session id naming worker ``index``."""
    return f"w{index}-{secrets.token_hex(16)}"


def worker_of_session(session_id: str, workers: int) -> int | None:
    """The worker a session id names, or None (malformed, or no such worker)."""
    m = SESSION_ID.fullmatch(session_id)
    if m is None:
        return None
    index = int(m.group(1))
    return index if index < workers else None
