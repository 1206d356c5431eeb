"""The ``clock_now`` host function, behind a :class:`Clock` seam for tests.

Arguments (JSON): ``{}`` -> ``{"unix_ns", "monotonic_ns"}``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

from vak.host.base import Prepared
from vak.host.context import CallContext
from vak.policy.entities import kernel_entity

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

    def prepare(self, function: str, args: Mapping[str, Any], ctx: CallContext) -> Prepared:
        ceiling = None if ctx.manifest.capabilities.clock else "the skill did not declare clock"
        clock = self._clock
        return Prepared(
            kernel_entity(),
            {},
            ceiling,
            lambda: {"unix_ns": clock.now_ns(), "monotonic_ns": clock.monotonic_ns()},
        )
