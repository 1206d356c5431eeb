"""``SwapGuard``: a policy set is swapped only between decisions, never during one.

A host call's decision and its ``host_decision`` entry form one step; a reload
(:meth:`vak.kernel.Kernel.reload`) records the new ``policy_set`` entry and
swaps the set as another. The guard orders the two, so that in the log every
decision follows the ``policy_set`` entry of the set that made it (replay
evaluates each decision against the most recent ``policy_set`` before it):

* many decisions may be in their step at once (:meth:`deciding`, shared);
* :meth:`exclusive` first stops new decisions from starting, waits for those
  in their step to be recorded, runs the swap, then lets decisions go on.

The shared side costs two uncontended lock round trips per decision; a swap
waits at most for the slowest step in flight (an effectful decision's fsync),
since no step spans an effect, a DNS lookup or a person's approval.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

__all__ = ["SwapGuard"]

_T = TypeVar("_T")


class SwapGuard:
    """Shared steps (decisions) and exclusive ones (swaps), writer first."""

    __slots__ = ("_drained", "_lock", "_open", "_readers", "_swapping", "_writer")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._writer = threading.Lock()  # one swap at a time
        self._open = threading.Event()
        self._open.set()
        self._drained = threading.Event()
        self._readers = 0
        self._swapping = False

    @contextmanager
    def deciding(self) -> Iterator[None]:
        """One decision and its record (waits while a swap is under way)."""
        while True:
            with self._lock:
                if not self._swapping:
                    self._readers += 1
                    break
            self._open.wait()
        try:
            yield
        finally:
            self._leave()

    def _leave(self) -> None:
        with self._lock:
            self._readers -= 1
            if self._swapping and self._readers == 0:
                self._drained.set()

    def exclusive(self, swap: Callable[[], _T]) -> _T:
        """Run ``swap`` with no decision in its step; returns what ``swap`` returns."""
        with self._writer:
            with self._lock:
                self._swapping = True
                self._open.clear()
                if self._readers == 0:
                    self._drained.set()
                else:
                    self._drained.clear()
            try:
                self._drained.wait()
                return swap()
            finally:
                with self._lock:
                    self._swapping = False
                    self._drained.clear()
                    self._open.set()
