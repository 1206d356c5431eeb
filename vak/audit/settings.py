"""Settings of the audit writer: where the log and its keys live, and durability."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["AuditSettings"]


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """One log, one signing key, one origin; ``fsync`` is "strict" or "batched:<ms>"."""

    #: the append-only, hash-chained log file
    log: Path
    #: the kernel's Ed25519 log signing key (created at first start; ``.pub`` beside it)
    key: Path
    #: the secret keying the argument digests in entries (created at first start)
    hmac_key: Path
    #: this kernel's name in every entry and checkpoint (e.g. "example.com/kernel-1")
    origin: str = "vak.local/kernel"
    #: "strict" (fsync before every effect) or "batched:<ms>" (group commit)
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
