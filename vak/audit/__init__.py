"""The verifiable audit log: entries, Merkle proofs, signed checkpoints, verification.

Example::

    >>> from vak.audit import AuditLog, verify_receipt          # doctest: +SKIP
    >>> log = AuditLog.from_config(cfg)                         # doctest: +SKIP
    >>> ref = log.append("host_decision", fields, durable=True) # doctest: +SKIP
    >>> verify_receipt(log.receipt(ref.seq), log.public_key_path)  # doctest: +SKIP

See docs/AUDIT-FORMAT.md for the format a third-party verifier needs.
"""

from __future__ import annotations

from vak.audit.checkpoint import Checkpoint, SignedCheckpoint
from vak.audit.log import AuditLog, Receipt, verify_receipt
from vak.audit.sink import AuditRef, AuditSink
from vak.audit.verify import Code, Finding, Report, verify_log

__all__ = [
    "AuditLog",
    "AuditRef",
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
