"""The verifiable audit log: entries, Merkle proofs, signed checkpoints, verification.

Three parts (docs/AUDIT-FORMAT.md is the contract between them):

* the format: :mod:`~vak.audit.entry` (entry profile), :mod:`~vak.audit.checkpoint`
  (signed notes), :mod:`~vak.audit.merkle` (RFC 9162), :mod:`~vak.audit.receipt`,
  :mod:`~vak.audit.entrysig`, plus :mod:`vak.canonical`;
* the one writer, :mod:`~vak.audit.log` (``AuditLog``), with its on-disk tree
  :mod:`~vak.audit.treefile`;
* the verifier, :mod:`~vak.audit.verify` (with :mod:`~vak.audit.scan` and
  :mod:`~vak.audit.state`), which imports only the format part.

Names resolve lazily (PEP 562), so ``import vak.audit.verify`` never loads the writer.

Example::

    >>> from vak.audit import AuditLog, verify_receipt          # doctest: +SKIP
    >>> log = AuditLog.open(settings)                           # doctest: +SKIP
    >>> ref = log.append("host_decision", fields, durable=True) # doctest: +SKIP
    >>> verify_receipt(log.receipt(ref.seq), log.public_key_path)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vak.audit.checkpoint import Checkpoint, SignedCheckpoint
    from vak.audit.log import AuditLog
    from vak.audit.receipt import Receipt, verify_receipt
    from vak.audit.settings import AuditSettings
    from vak.audit.sink import AuditRef, AuditSink
    from vak.audit.verify import Code, Finding, Report, verify_log

__all__ = [
    "AuditLog",
    "AuditRef",
    "AuditSettings",
    "AuditSink",
    "Checkpoint",
    "Code",
    "Finding",
    "Receipt",
    "Report",
    "SignedCheckpoint",
    "verify_log",
    "verify_receipt",
]

_HOME = {
    "AuditLog": "vak.audit.log", "AuditRef": "vak.audit.sink", "AuditSink": "vak.audit.sink",
    "AuditSettings": "vak.audit.settings", "Checkpoint": "vak.audit.checkpoint",
    "SignedCheckpoint": "vak.audit.checkpoint", "Code": "vak.audit.verify",
    "Finding": "vak.audit.verify", "Report": "vak.audit.verify",
    "verify_log": "vak.audit.verify", "Receipt": "vak.audit.receipt",
    "verify_receipt": "vak.audit.receipt",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'vak.audit' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
