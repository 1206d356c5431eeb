"""The per-call context the kernel hands to :meth:`Mediator.handler`.

``CallContext`` is immutable and identifies *who* is calling (the verified
skill) and *within what* (invocation, session, deadline). The mutable parts
are :class:`CallCounters`, kernel-kept counters of the current invocation, which
the mediation updates and clamps so that they can never overflow a Cedar
``Long`` (an overflowing ``forbid`` would be skipped by Cedar), and the
session's label set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from vak.identity.manifest import Manifest
from vak.identity.ref import SkillRef
from vak.identity.trust import Tier

__all__ = ["COUNTER_MAX", "CallContext", "CallCounters"]

#: counters saturate here (far below Cedar's i64, so policy arithmetic stays safe)
COUNTER_MAX = 2**40


class CallCounters:
    """Mutable, saturating counters for one invocation (one thread at a time)."""

    __slots__ = ("bytes_read", "bytes_written", "host_calls", "http_requests")

    def __init__(self) -> None:
        self.host_calls = 0
        self.bytes_read = 0
        self.bytes_written = 0
        self.http_requests = 0

    def add(self, name: str, amount: int) -> int:
        """Add ``amount`` (>= 0) to counter ``name``, saturating at COUNTER_MAX."""
        value: int = min(COUNTER_MAX, getattr(self, name) + max(0, amount))
        setattr(self, name, value)
        return value

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who is calling and within which invocation/session."""

    manifest: Manifest
    manifest_digest: str  # "sha256:<hex>" of the canonical signed manifest
    module_sha256: str
    signer_key_id: str  # "ed25519:<hex>" or "" for unsigned dev skills
    trust_tier: Tier
    invocation_id: str
    session_id: str = ""
    counters: CallCounters = field(default_factory=CallCounters, compare=False)
    #: the invocation's deadline on ``time.monotonic()``: no host effect outlives it
    deadline: float = math.inf
    #: the session's data-flow labels (``secret:<name>``, ``kv:<ns>``, ...); Cedar
    #: sees them at ``context.session.labels`` and decision entries record them. The
    #: kernel passes the session's own set, which lives as long as the session.
    labels: set[str] = field(default_factory=set, compare=False)
    #: who asked for the tool call (:class:`vak.invocation.Principal` id and kind);
    #: Cedar sees it as ``context.caller`` (never guest-controlled)
    caller_id: str = "anonymous"
    caller_kind: str = "agent"

    @property
    def skill(self) -> SkillRef:
        """How audit entries of this call name the skill (docs/AUDIT-FORMAT.md)."""
        return SkillRef(self.manifest.name, self.manifest.version, self.manifest_digest,
                        self.signer_key_id)
