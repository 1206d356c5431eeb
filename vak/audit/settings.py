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
    #: sign every entry into the ``<log>.sigs`` sidecar (one Ed25519 signature an entry)
    sign_entries: bool = False
    #: writers in several processes share the log (flock per append instead of for life)
    multiprocess: bool = False
    #: at most one checkpoint signature per this many milliseconds under load
    checkpoint_interval_ms: int = 20
    #: trust file that pins the log's key for ``vak-audit verify --config`` (None: the
    #: ``<key>.pub`` beside the log is used and reported as not pinned)
    trust: Path | None = None
