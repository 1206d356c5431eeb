"""Settings of the audit writer: where the log and its keys live, and durability."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["AuditSettings"]


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """One log, one signing key, one origin; ``fsync`` is "strict" or "batched:<ms>"."""

    log: Path
    key: Path
    hmac_key: Path
    origin: str = "vak.local/kernel"
    fsync: str = "strict"
