"""Opt-in per-session instance reuse (``KernelConfig.session_reuse``; internal).

With reuse on, calls that carry the same ``session=`` id for the same skill run
on one live wasm instance instead of a fresh one each, so a warm call costs
little more than the guest's own work. What changes for the guest, on purpose:
its globals and heap **persist between calls of that session**. That is why the
mode is opt-in: only for skills and sessions whose operator accepts that one
call can see what an earlier call of the same session left behind. Nothing is
ever shared across sessions or skills.

Invariants:

* one instance per ``(session, skill name, module digest)``; two sessions never
  share an instance, and calls on one instance are serialised by its lock;
* fuel and the epoch deadline are reset for every call; memory and table
  limits are those of the instance's Store, as for a fresh instance;
* a trap or any other error discards the instance (the next call of the
  session gets a fresh one), and so does a heap past half its memory limit;
* at most ``max_live`` instances are kept: the least recently used one is
  closed (after its call in flight, if any) when a new one is needed;
* :meth:`SessionTable.end` and :meth:`SessionTable.close` free the instances.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from vak.errors import UnknownToolError
from vak.identity.manifest import Limits
from vak.sandbox.types import CallOutcome, HostHandler

__all__ = ["SessionTable"]

_Key = tuple[str, str, str]


class _Slot:
    __slots__ = ("dead", "lock", "resident")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.resident: Any = None
        self.dead = False

    def retire(self) -> None:
        """Close the instance once no call runs on it; the slot is never used again."""
        with self.lock:
            self.dead = True
            if self.resident is not None:
                self.resident.close()
                self.resident = None


class SessionTable:
    """Live instances by (session, skill), LRU-bounded, over an ``Engine``."""

    def __init__(self, engine: Any, max_live: int) -> None:
        self._engine = engine
        self._max_live = max(1, max_live)
        self._lock = threading.Lock()
        self._slots: OrderedDict[_Key, _Slot] = OrderedDict()
        self._closed = False

    def call(self, session: str, skill: str, digest: str, export: str, input_json: bytes,
             limits: Limits, host: HostHandler) -> CallOutcome:
        """Run ``export`` on the session's instance of ``digest`` (made on first use).

        Raises:
            UnknownToolError: the table is closed.
            The errors of ``Engine.open_resident`` and ``Engine.call_resident``.
        """
        key = (session, skill, digest)
        while True:
            slot, evicted = self._slot(key)
            for old in evicted:
                old.retire()
            with slot.lock:
                if slot.dead:  # evicted or ended while we waited: look up again
                    continue
                resident = slot.resident
                if resident is None or resident.closed:
                    resident = slot.resident = self._engine.open_resident(digest, limits)
                return self._engine.call_resident(resident, export, input_json, limits, host)

    def end(self, session: str) -> int:
        """Close every instance of ``session``; the number closed."""
        with self._lock:
            keys = [k for k in self._slots if k[0] == session]
            slots = [self._slots.pop(k) for k in keys]
        for slot in slots:
            slot.retire()
        return len(slots)

    def close(self) -> None:
        """Close every instance; later calls raise ``UnknownToolError``."""
        with self._lock:
            self._closed = True
            slots = list(self._slots.values())
            self._slots.clear()
        for slot in slots:
            slot.retire()

    def live(self) -> int:
        """How many sessions hold an instance slot now (for status and tests)."""
        with self._lock:
            return sum(1 for s in self._slots.values() if s.resident is not None)

    def _slot(self, key: _Key) -> tuple[_Slot, list[_Slot]]:
        with self._lock:
            slot = self._slots.get(key)
            if slot is not None:
                self._slots.move_to_end(key)
                return slot, []
            if self._closed:
                raise UnknownToolError("the session table is closed", session=key[0])
            slot = self._slots[key] = _Slot()
            evicted = []
            while len(self._slots) > self._max_live:
                evicted.append(self._slots.popitem(last=False)[1])
            return slot, evicted
