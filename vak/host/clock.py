"""The ``clock_now`` host function, behind a :class:`Clock` seam for tests.

Arguments and replies: docs/HOST-FUNCTIONS.md.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from vak.host.base import EffectScope, NormalCall

__all__ = ["Clock", "ClockFamily", "SystemClock"]


class Clock(Protocol):
    def now_ns(self) -> int: ...
    def monotonic_ns(self) -> int: ...


class SystemClock:
    def now_ns(self) -> int:
        return time.time_ns()

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()


class ClockFamily:
    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()

    def perform(self, function: str, call: NormalCall, scope: EffectScope, /) -> dict[str, Any]:
        return {"unix_ns": self._clock.now_ns(), "monotonic_ns": self._clock.monotonic_ns()}
