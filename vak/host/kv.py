"""The kv family: ``kv_get``, ``kv_put``, ``kv_delete``, ``kv_list`` on SQLite.

One SQLite file per kernel; every row is keyed by ``(namespace, key)`` and the
namespace is always the calling skill's name, taken from its signed manifest,
never from the guest's arguments, so one skill cannot read another's keys.

Arguments (JSON): ``kv_get {"key"}`` -> ``{"found", "value"?}``; ``kv_put
{"key", "value"}`` -> ``{"ok"}``; ``kv_delete {"key"}`` -> ``{"deleted"}``;
``kv_list {"prefix"?, "limit"?}`` -> ``{"keys"}``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vak.host.base import Prepared, arg_int, arg_str
from vak.host.context import CallContext
from vak.policy.entities import Entity
from vak.policy.normalize import NormalizeError

__all__ = ["KvFamily", "KvStore"]

MAX_KEY = 256
MAX_VALUE = 64 << 10


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


def _key(args: Mapping[str, Any], name: str, *, allow_empty: bool = False) -> str:
    key = arg_str(args, name, default="" if allow_empty else None, max_len=MAX_KEY)
    if (not key and not allow_empty) or "\x00" in key:
        raise NormalizeError(f"kv {name} must be 1..{MAX_KEY} characters without NUL")
    return key


class KvFamily:
    """kv host functions over one :class:`KvStore`."""

    def __init__(self, store: KvStore) -> None:
        self._store = store

    def prepare(self, function: str, args: Mapping[str, Any], ctx: CallContext) -> Prepared:
        ns = ctx.manifest.name
        ceiling = None if ctx.manifest.capabilities.kv else "the skill did not declare kv"
        if function == "kv_list":
            prefix = _key(args, "prefix", allow_empty=True)
            limit = arg_int(args, "limit", default=100, lo=1, hi=1000)
            res = Entity("Vak::KvNamespace", ns, {"name": ns})
            return Prepared(
                res,
                {},
                ceiling,
                lambda: {"keys": self._store.keys(ns, prefix, limit)},
                {"namespace": ns, "prefix": prefix},
            )
        key = _key(args, "key")
        res = Entity(
            "Vak::KvKey", f"{ns}/{key}", {"namespace": ns, "key": key}, (("Vak::KvNamespace", ns),)
        )
        summary: dict[str, Any] = {"namespace": ns, "key": key}
        if function == "kv_get":

            def get() -> dict[str, Any]:
                value = self._store.get(ns, key)
                return {"found": False} if value is None else {"found": True, "value": value}

            return Prepared(res, {}, ceiling, get, summary)
        if function == "kv_put":
            value = arg_str(args, "value", max_len=MAX_VALUE)
            summary["size"] = len(value)

            def put() -> dict[str, Any]:
                self._store.put(ns, key, value)
                return {"ok": True}

            return Prepared(res, {"size": len(value)}, ceiling, put, summary)
        if function == "kv_delete":
            return Prepared(
                res, {}, ceiling, lambda: {"deleted": self._store.delete(ns, key)}, summary
            )
        raise AssertionError(function)
