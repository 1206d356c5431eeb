"""The kv family: ``kv_get``, ``kv_put``, ``kv_delete``, ``kv_list`` on SQLite.

One SQLite file per kernel; every row is keyed by ``(namespace, key)`` and the
namespace is always the calling skill's name, taken from its signed manifest,
never from the guest's arguments, so one skill cannot read another's keys.

The catalog's normalisers (:mod:`vak.host.calls`) put the namespace into every
call; :class:`KvFamily` performs allowed calls only. Arguments and replies:
docs/HOST-FUNCTIONS.md.

Data-flow marks (:mod:`vak.host.dataflow`): every row carries the labels of
the session that wrote it (a JSON array in column ``labels``); ``kv_get`` of
a row and ``kv_list`` of its key add those labels to the reading session
before the reply reaches the guest, so a secret stored by one invocation
still marks (and is scrubbed from) the invocation that reads it back.

Schema version 2 (``PRAGMA user_version``) added the ``labels`` column; a
version-1 database (no column) is migrated in place at open, its existing
rows getting no labels (they were written before labels existed). A database
from a newer VAK is refused rather than guessed at.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from vak.errors import ConfigError
from vak.host.base import EffectScope, HostEffectError, NormalCall

__all__ = ["SCHEMA_VERSION", "KvFamily", "KvStore"]

#: ``PRAGMA user_version`` of the current schema (1: no labels column)
SCHEMA_VERSION = 2
_NO_LABELS = "[]"
_NONE: frozenset[str] = frozenset()


def _encode_labels(labels: Iterable[str]) -> str:
    return orjson.dumps(sorted(set(labels))).decode()


def _decode_labels(raw: object) -> frozenset[str]:
    """The labels column of one row; a damaged column fails the read (closed)."""
    if raw == _NO_LABELS:
        return _NONE
    try:
        labels = orjson.loads(raw) if isinstance(raw, str | bytes) else None
    except orjson.JSONDecodeError:
        labels = None
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise HostEffectError("kv_corrupt", "the stored value's data-flow labels are unreadable")
    return frozenset(labels)


class KvStore:
    """A thread-safe SQLite key-value store with per-namespace, labelled rows.

    Raises (from the constructor):
        ConfigError: the database is from a newer schema version or cannot be migrated.
    """

    def __init__(self, path: Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._migrate(Path(path))

    def _migrate(self, path: Path) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"{path}: kv database schema version {version} is newer than this "
                    f"VAK's ({SCHEMA_VERSION})", file=str(path), field="kv_path",
                    fix="use the VAK version that wrote it, or point kv_path at a new file",
                )
            db.execute(
                "CREATE TABLE IF NOT EXISTS kv (ns TEXT NOT NULL, key TEXT NOT NULL, "
                "value TEXT NOT NULL, labels TEXT NOT NULL DEFAULT '[]', PRIMARY KEY (ns, key))"
            )
            columns = {str(r[1]) for r in db.execute("PRAGMA table_info(kv)").fetchall()}
            if "labels" not in columns:  # a version-1 database: rows written before labels
                db.execute("ALTER TABLE kv ADD COLUMN labels TEXT NOT NULL DEFAULT '[]'")
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def get(self, ns: str, key: str) -> str | None:
        found = self.get_labeled(ns, key)
        return None if found is None else found[0]

    def get_labeled(self, ns: str, key: str) -> tuple[str, frozenset[str]] | None:
        """``(value, labels)`` of a row, or None.

        Raises:
            HostEffectError: the row's labels column is damaged (``kv_corrupt``).
        """
        with self._lock:
            row = self._db.execute(
                "SELECT value, labels FROM kv WHERE ns=? AND key=?", (ns, key)
            ).fetchone()
        if row is None:
            return None
        return str(row[0]), _decode_labels(row[1])

    def put(self, ns: str, key: str, value: str, labels: Iterable[str] = ()) -> None:
        """Store ``value`` with the writer's data-flow ``labels`` (replacing the row)."""
        encoded = _encode_labels(labels)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO kv (ns, key, value, labels) VALUES (?, ?, ?, ?)",
                (ns, key, value, encoded),
            )

    def delete(self, ns: str, key: str) -> bool:
        with self._lock:
            cur = self._db.execute("DELETE FROM kv WHERE ns=? AND key=?", (ns, key))
        return cur.rowcount > 0

    def keys(self, ns: str, prefix: str, limit: int) -> list[str]:
        return self.keys_labeled(ns, prefix, limit)[0]

    def keys_labeled(self, ns: str, prefix: str, limit: int) -> tuple[list[str], frozenset[str]]:
        """Keys under ``prefix`` and the union of their rows' labels (a key is data too).

        Raises:
            HostEffectError: a listed row's labels column is damaged.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT key, labels FROM kv WHERE ns=? AND substr(key, 1, ?)=? "
                "ORDER BY key LIMIT ?",
                (ns, len(prefix), prefix, limit),
            ).fetchall()
        labels: set[str] = set()
        for raw in (r[1] for r in rows):
            if raw != _NO_LABELS:
                labels |= _decode_labels(raw)
        return [str(r[0]) for r in rows], frozenset(labels)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class KvFamily:
    """kv host functions over one :class:`KvStore`; labels flow in and out via the scope.

    ``kv_put`` stores the writer session's labels (``scope.labels``) with the
    value; ``kv_get`` and ``kv_list`` mark the reader (``scope.mark``) with the
    labels of what they return before returning it.
    """

    def __init__(self, store: KvStore) -> None:
        self._store = store

    def perform(self, function: str, call: NormalCall, scope: EffectScope, /) -> dict[str, Any]:
        p = call.params
        ns = p["namespace"]
        if function == "kv_list":
            keys, labels = self._store.keys_labeled(ns, p["prefix"], p["limit"])
            scope.mark(labels)
            return {"keys": keys}
        if function == "kv_get":
            found = self._store.get_labeled(ns, p["key"])
            if found is None:
                return {"found": False}
            scope.mark(found[1])
            return {"found": True, "value": found[0]}
        if function == "kv_put":
            self._store.put(ns, p["key"], p["value"], scope.labels)
            return {"ok": True}
        return {"deleted": self._store.delete(ns, p["key"])}
