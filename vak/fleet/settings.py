"""Settings of the fleet room: where a kernel ships its log, which witnesses it asks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["FleetSettings"]


@dataclass(frozen=True, slots=True)
class FleetSettings:
    """All off by default: a kernel ships and asks witnesses only when configured."""

    #: PostgreSQL URL this kernel's log is shipped to in the background ("" = never)
    ship_to: str = ""
    #: witness submission prefixes (http://host:port[/prefix]) sent each new checkpoint
    witnesses: tuple[str, ...] = ()
    #: witness verifier keys; when set, cosignatures of other keys are dropped
    witness_keys: Path | None = None
    #: how often the background agent looks for new entries and checkpoints
    interval_ms: int = 200

    @property
    def active(self) -> bool:
        return bool(self.ship_to or self.witnesses)
