"""What a verifier remembers between runs, to detect rollback and forks.

A log can be rolled back (an older copy restored, entries and checkpoints
both cut) without any internal inconsistency; only someone who saw a later
checkpoint can tell. ``vak-audit verify --state FILE --update-state`` keeps
the newest verified checkpoint's origin, size and root here.

Example::

    >>> VerifierState("o", 3, "ab" * 32, "t").to_json()["size"]
    3
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from vak.canonical import canonical_bytes
from vak.errors import AuditError

__all__ = ["VerifierState", "load_state", "save_state"]


@dataclass(frozen=True, slots=True)
class VerifierState:
    """The newest checkpoint a verifier has accepted for one origin."""

    origin: str
    size: int
    root: str  # hex
    time: str

    def to_json(self) -> dict[str, Any]:
        return {"origin": self.origin, "size": self.size, "root": self.root, "time": self.time}


def load_state(path: str | Path) -> VerifierState | None:
    """The remembered state, or None when the file does not exist yet.

    Raises:
        AuditError: the file exists but is not a state file.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        data = orjson.loads(path.read_bytes())
        state = VerifierState(str(data["origin"]), int(data["size"]), str(data["root"]),
                              str(data.get("time", "")))
        bytes.fromhex(state.root)
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise AuditError(f"{path}: not a vak-audit state file: {exc}", file=str(path)) from None
    return state


def save_state(path: str | Path, state: VerifierState) -> None:
    """Atomically replace the state file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(canonical_bytes(state.to_json()) + b"\n")
    os.replace(tmp, path)
