"""``SwapGuard``: a policy set is swapped only between decisions, never during one.

A host call's decision and its ``host_decision`` entry form one step; a reload
(:meth:`vak.kernel.Kernel.reload`) records the new ``policy_set`` entry and
swaps the set as another. The guard orders the two, so that in the log every
decision follows the ``policy_set`` entry of the set that made it (replay
evaluates each decision against the most recent ``policy_set`` before it):

* many decisions may be in their step at once (``with guard.deciding():``);
* :meth:`exclusive` first stops new decisions from starting, waits for those
  in their step to be recorded, runs the swap, then lets decisions go on.

The decision side is on every host call, so it takes no lock: it announces
itself (an atomic ``list.append``), then looks whether a swap is under way and,
if so, withdraws and waits. The swap side raises its flag, then waits until
no decision is announced. Each side writes before it reads, so one of them
always sees the other (the interpreter orders these single operations). A
swap waits at most for the slowest step in flight (an effectful decision's
fsync): no step spans an effect, a DNS lookup or the wait for a person's
approval (an approval's request is opened and recorded in the step; the
answer is awaited after it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["SwapGuard"]

_T = TypeVar("_T")
#: how often a waiting swap looks whether the decisions in their step are done
_POLL = 0.0005


class SwapGuard:
    """Shared steps (decisions) and exclusive ones (swaps), the swap first."""

    __slots__ = ("_in_step", "_open", "_swapping", "_writer")

    def __init__(self) -> None:
        self._writer = threading.Lock()  # one swap at a time
        self._open = threading.Event()
        self._open.set()
        self._in_step: list[None] = []
        self._swapping = False

    def deciding(self) -> SwapGuard:
        """``with guard.deciding():`` one decision and its record."""
        return self

    def __enter__(self) -> None:
        in_step = self._in_step
        while True:
            in_step.append(None)
            if not self._swapping:
                return
            in_step.pop()
            self._open.wait()

    def __exit__(self, *exc: object) -> None:
        self._in_step.pop()

    def exclusive(self, swap: Callable[[], _T]) -> _T:
        """Run ``swap`` with no decision in its step; returns what ``swap`` returns."""
        with self._writer:
            self._open.clear()
            self._swapping = True
            try:
                while self._in_step:
                    time.sleep(_POLL)
                return swap()
            finally:
                self._swapping = False
                self._open.set()
