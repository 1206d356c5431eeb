"""What a verifier remembers between runs: the newest checkpoint and the pinned keys.

A log can be rolled back (an older copy restored, entries and checkpoints
both cut) without any internal inconsistency; only someone who saw a later
checkpoint can tell. ``vak-audit verify --state FILE --update-state`` keeps
the newest verified checkpoint's origin, size and root here, and the keys it
was verified with (the origin's key and the rotations it vouched for): a later
run with the same state file trusts those keys, not whatever sits beside the
log, so a history replaced together with its key file is caught.

The file is input like any other: every field must have its exact JSON type,
or :func:`load_state` raises :class:`~vak.errors.AuditIntegrityError`.

Example::

    >>> VerifierState("o", 3, "ab" * 32, "t").to_json()["size"]
    3
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from vak.audit.keys import parse_verifier_key
from vak.canonical import canonical_bytes
from vak.errors import AuditIntegrityError, KeyFileError

__all__ = ["MAX_STATE_BYTES", "VerifierState", "load_state", "save_state"]

#: a state file is a few hundred bytes; anything much larger is not one
MAX_STATE_BYTES = 1 << 20
_MAX_KEYS = 1000


@dataclass(frozen=True, slots=True)
class VerifierState:
    """The newest checkpoint a verifier has accepted for one origin, and its keys."""

    origin: str
    size: int
    root: str  # hex
    time: str
    #: trust-file lines (verifier key, optional ``not-after=``) pinned for the origin
    keys: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"origin": self.origin, "size": self.size, "root": self.root,
                               "time": self.time}
        if self.keys:
            out["keys"] = list(self.keys)
        return out


def _bad(path: Path, why: str) -> AuditIntegrityError:
    return AuditIntegrityError(f"{path}: not a vak-audit state file: {why}", file=str(path),
                               fix="restore the state file from your records, or remove it "
                               "to start over (losing rollback detection)")


def load_state(path: str | Path) -> VerifierState | None:
    """The remembered state, or None when the file does not exist yet.

    Raises:
        AuditIntegrityError: the file exists but is not a state file (unreadable,
            not JSON, a field missing or of the wrong type, a malformed key line).
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_STATE_BYTES + 1)
    except OSError as exc:
        raise _bad(path, f"cannot read it ({exc.strerror})") from None
    if len(raw) > MAX_STATE_BYTES:
        raise _bad(path, f"larger than {MAX_STATE_BYTES} bytes")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _bad(path, "not valid JSON") from None
    if type(data) is not dict:
        raise _bad(path, "not a JSON object")
    origin, size, root, stamp = (data.get(k) for k in ("origin", "size", "root", "time"))
    keys = data.get("keys", [])
    if type(origin) is not str or not origin:
        raise _bad(path, "origin is not a non-empty string")
    if type(size) is not int or size < 0:
        raise _bad(path, "size is not a non-negative integer")
    if type(root) is not str or len(root) != 64 or not _is_hex(root):
        raise _bad(path, "root is not a 64-character lower-case hex hash")
    if stamp is None:
        stamp = ""
    if type(stamp) is not str:
        raise _bad(path, "time is not a string")
    if type(keys) is not list or len(keys) > _MAX_KEYS \
            or any(type(k) is not str or not k.isprintable() for k in keys):
        raise _bad(path, "keys is not a list of verifier-key strings")
    for n, line in enumerate(keys):
        try:
            parse_verifier_key(line)
        except KeyFileError as exc:
            raise _bad(path, f"keys[{n}]: {exc.message}") from None
    return VerifierState(origin, size, root, stamp, tuple(keys))


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def save_state(path: str | Path, state: VerifierState) -> None:
    """Atomically replace the state file (written, fsynced, renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        f.write(canonical_bytes(state.to_json()) + b"\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
