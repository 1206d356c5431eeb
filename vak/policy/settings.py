"""Settings of the policy room: which Cedar policy sets decide, and the decision cache."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["PolicySettings"]


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """Policy directories (the shipped base first, then the operator's) and cache size."""

    policy_dirs: tuple[Path, ...] = ()
    decision_cache_size: int = 4096
