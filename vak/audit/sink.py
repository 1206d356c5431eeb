"""The narrow seam through which the host mediation and the kernel write audit.

Everything that writes to the audit log goes through :class:`AuditSink`; the
real implementation is :class:`vak.audit.log.AuditLog`. ``durable=True`` means
*do not return until the entry is durable under the log's fsync policy*: the
mediation uses it for decision entries so that an effect never happens before
its record ("record, then act"). ``flush=True`` means *handed to the OS*: the
kernel uses it before acknowledging an invocation, so a crash of the kernel
process never loses an entry of a call whose result was returned.

Field values are plain JSON values; a sink whose class sets
``accepts_sealed = True`` (the real log) may also be handed
:class:`vak.audit.entry.Sealed` values, a recurring value checked and encoded
once. Writers look for the flag and hand any other sink plain values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["AuditRef", "AuditSink"]


@dataclass(frozen=True, slots=True)
class AuditRef:
    """Where an entry landed: its sequence number and RFC 9162 leaf hash (hex)."""

    seq: int
    leaf_hash: str


class AuditSink(Protocol):
    """Append-only audit writer."""

    def append(self, kind: str, fields: Mapping[str, Any], *, durable: bool = False,
               flush: bool = False) -> AuditRef:
        """Append one entry of ``kind`` with ``fields`` (canonical-JSON values).

        ``durable``: on stable storage before returning; ``flush``: at least handed
        to the OS (survives a crash of this process) before returning.
        """
        ...
