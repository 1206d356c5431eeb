"""The epoch ticker: one daemon thread per engine that advances its epoch.

Every Store gets an epoch deadline of ``ceil(max_execution_time_ms /
epoch_tick_ms) + 1`` ticks; wasm code checks the engine's epoch at loop heads
and function entries and traps with ``INTERRUPT`` once it passes the deadline.

The ticker keeps the epoch in step with the monotonic clock (it catches up
after oversleeping instead of drifting), so a deadline fires at most about one
tick late. It keeps ticking for ``LINGER_S`` after the last call ended and
then sleeps, so an idle kernel costs nothing while a busy one does not wake
the thread (an OS context switch and a GIL hand-off) on every call.

Invariants: the ticker runs from :meth:`EpochTicker.start` until
:meth:`EpochTicker.stop`; ``stop`` is idempotent, refuses new calls at once, and
joins the thread only after the calls in flight have ended, so no running call
is ever left without a deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["LINGER_S", "EpochTicker"]

#: how long the ticker keeps ticking after the last call ended (seconds)
LINGER_S = 0.05


class EpochTicker:
    """Increments an engine's epoch every ``tick_ms`` while calls are active.

    ``increment`` is the public ``wasmtime.Engine.increment_epoch`` of the
    engine, a single atomic add, safe from any thread while other threads run
    wasm. The engine must outlive the ticker (the owning
    :class:`vak.sandbox.engine.Engine` stops it first).
    """

    def __init__(self, increment: Callable[[], None], tick_ms: int) -> None:
        self._increment = increment
        self._tick_s = tick_ms / 1000.0
        self._lock = threading.Lock()
        self._active = 0
        #: the thread is (about to be) waiting on ``_wake``; only ``enter`` clears it
        self._idle = False
        self._last_leave = 0.0
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="vak-epoch-ticker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop and join the thread; safe to call more than once."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def enter(self) -> None:
        """A call starts: make sure the ticker ticks.

        Raises:
            RuntimeError: the ticker was stopped (the engine is closed).
        """
        with self._lock:
            if self._stopped:
                raise RuntimeError("epoch ticker stopped")
            self._active += 1
            if self._idle:
                self._idle = False
                self._wake.set()

    def leave(self) -> None:
        """A call ended (whatever its outcome)."""
        with self._lock:
            self._active -= 1
            self._last_leave = time.monotonic()

    def _run(self) -> None:
        increment = self._increment
        clock = time.monotonic
        sleep = time.sleep
        tick = self._tick_s
        while True:
            with self._lock:
                if self._stopped and self._active == 0:
                    return
                idle = self._active == 0
                if idle:
                    # under the lock: an enter() after this sees _idle and wakes us
                    self._idle = True
                    self._wake.clear()
            if idle:
                self._wake.wait()
                continue
            base = clock()
            ticks = 0
            while self._active or (not self._stopped
                                   and clock() - self._last_leave < LINGER_S):
                ticks += 1
                delay = base + ticks * tick - clock()
                if delay > 0:
                    sleep(delay)
                increment()
