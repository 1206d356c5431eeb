"""The kv family: ``kv_get``, ``kv_put``, ``kv_delete``, ``kv_list`` on SQLite.

One SQLite file per kernel; every row is keyed by ``(namespace, key)`` and the
namespace is always the calling skill's name, taken from its signed manifest,
never from the guest's arguments, so one skill cannot read another's keys.

The catalog's normalisers (:mod:`vak.host.calls`) put the namespace into every
call; :class:`KvFamily` performs allowed calls only. Arguments and replies:
docs/HOST-FUNCTIONS.md.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from vak.host.base import EffectScope, NormalCall

__all__ = ["KvFamily", "KvStore"]


class KvStore:
    """A thread-safe SQLite key-value store with per-namespace rows."""

    def __init__(self, path: Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS kv (ns TEXT NOT NULL, key TEXT NOT NULL, "
                "value TEXT NOT NULL, PRIMARY KEY (ns, key))"
            )

    def get(self, ns: str, key: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM kv WHERE ns=? AND key=?", (ns, key)
            ).fetchone()
        return None if row is None else str(row[0])

    def put(self, ns: str, key: str, value: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO kv (ns, key, value) VALUES (?, ?, ?)", (ns, key, value)
            )

    def delete(self, ns: str, key: str) -> bool:
        with self._lock:
            cur = self._db.execute("DELETE FROM kv WHERE ns=? AND key=?", (ns, key))
        return cur.rowcount > 0

    def keys(self, ns: str, prefix: str, limit: int) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key FROM kv WHERE ns=? AND substr(key, 1, ?)=? ORDER BY key LIMIT ?",
                (ns, len(prefix), prefix, limit),
            ).fetchall()
        return [str(r[0]) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class KvFamily:
    """kv host functions over one :class:`KvStore`."""

    def __init__(self, store: KvStore) -> None:
        self._store = store

    def perform(self, function: str, call: NormalCall, scope: EffectScope, /) -> dict[str, Any]:
        p = call.params
        ns = p["namespace"]
        if function == "kv_list":
            return {"keys": self._store.keys(ns, p["prefix"], p["limit"])}
        if function == "kv_get":
            value = self._store.get(ns, p["key"])
            return {"found": False} if value is None else {"found": True, "value": value}
        if function == "kv_put":
            self._store.put(ns, p["key"], p["value"])
            return {"ok": True}
        return {"deleted": self._store.delete(ns, p["key"])}
