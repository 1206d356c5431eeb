"""Settings of the policy room: which Cedar policy sets decide, and the decision cache."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["PolicySettings"]


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """Policy directories (the shipped base first, then the operator's) and cache size."""

    #: operator policy directories (*.cedar), evaluated together with the shipped base
    policy_dirs: tuple[Path, ...] = ()
    #: decisions kept for identical requests (0 turns the cache off)
    decision_cache_size: int = 4096
