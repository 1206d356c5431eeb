"""The kv family: ``kv_get``, ``_put``, ``_delete``, ``_list``, ``_incr``, ``_cas``.

Two stores implement :class:`KvBackend`: :class:`KvStore`, one SQLite file
(the embedded default, ``[host] kv_path``), and
:class:`vak.fleet.kvstore.PostgresKV` (``[host] kv = "postgresql://..."``),
shared by the replicas of a fleet; :func:`open_kv` picks one. ``kv_incr`` and
``kv_cas`` are single atomic steps of the store (SQLite ``BEGIN IMMEDIATE``,
PostgreSQL a row lock), so concurrent kernels sharing a store lose no update,
which read-modify-write through ``kv_get``/``kv_put`` would.

Every row is keyed by ``(namespace, key)`` and the namespace is always the
calling skill's name, taken from its signed manifest, never from the guest's
arguments, so one skill cannot read another's keys.

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

import re
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import orjson

from vak.errors import ConfigError
from vak.host.base import EffectScope, HostEffectError, NormalCall
from vak.host.settings import HostSettings

__all__ = ["SCHEMA_VERSION", "KvBackend", "KvFamily", "KvStore", "counter_value", "open_kv"]

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


class KvBackend(Protocol):
    """What the kv family needs of a store (rows keyed by namespace and key, with labels)."""

    def get_labeled(self, ns: str, key: str) -> tuple[str, frozenset[str]] | None: ...

    def put(self, ns: str, key: str, value: str, labels: Iterable[str] = ()) -> None: ...

    def delete(self, ns: str, key: str) -> bool: ...

    def keys_labeled(self, ns: str, prefix: str,
                     limit: int) -> tuple[list[str], frozenset[str]]: ...

    def incr(self, ns: str, key: str, by: int,
             labels: Iterable[str]) -> tuple[int, frozenset[str]]:
        """Add ``by`` atomically; ``(new value, labels the caller must now carry)``.

        Those are the row's labels before the write, possibly with the writer's
        own (which it carries already); the row keeps its labels plus the
        writer's, since the new value derives from both.
        """
        ...

    def cas(self, ns: str, key: str, expected: str | None, value: str,
            labels: Iterable[str]) -> tuple[bool, str | None, frozenset[str]]:
        """Write ``value`` only if the row holds ``expected`` (None: no row); atomically.

        Returns ``(written, current value if not written, labels of that value)``.
        """
        ...

    def close(self) -> None: ...


_COUNTER = re.compile(r"-?(0|[1-9][0-9]{0,15})")


def counter_value(stored: str | None, by: int, limit: int = (1 << 53) - 1) -> int:
    """``stored`` (a decimal integer, None counting as 0) plus ``by``.

    Raises:
        HostEffectError: ``kv_not_integer`` when the stored value is not a plain
            decimal integer, ``kv_overflow`` when the sum leaves ``[-limit, limit]``.
    """
    if stored is None:
        current = 0
    elif _COUNTER.fullmatch(stored) and stored != "-0":
        current = int(stored)
    else:
        raise HostEffectError("kv_not_integer", "the stored value is not a decimal integer")
    total = current + by
    if not -limit <= total <= limit:
        raise HostEffectError("kv_overflow", f"the counter would leave [-{limit}, {limit}]")
    return total


def open_kv(settings: HostSettings) -> KvBackend | None:
    """The kv store the settings name: PostgreSQL for ``kv = "postgresql://..."``, else
    the SQLite file ``kv_path``; None when neither is set (kv calls are refused).

    Raises:
        ConfigError: an unusable database (schema too new, unreachable server, ...).
    """
    if settings.kv:
        if not isinstance(settings.kv, str) or not settings.kv.startswith(
                ("postgresql://", "postgres://")):
            raise ConfigError("[host] kv must be a postgresql:// URL (or unset for the SQLite "
                              "file kv_path)", field="host.kv")
        from vak.fleet.kvstore import PostgresKV

        return PostgresKV(settings.kv)
    return KvStore(settings.kv_path) if settings.kv_path is not None else None


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
            # kernels sharing the file wait for each other's write transactions
            self._db.execute("PRAGMA busy_timeout=10000")
            # switching a fresh file to WAL can be refused at once (SQLITE_BUSY without
            # the busy handler) while another kernel does the same, e.g. the workers
            # of one `vak serve` starting together: retry within the same 10 s
            deadline = time.monotonic() + 10.0
            while True:
                try:
                    self._db.execute("PRAGMA journal_mode=WAL")
                    self._migrate(Path(path))
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)

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

    def _atomic(self, ns: str, key: str) -> tuple[str, str] | None:
        """Inside ``BEGIN IMMEDIATE``: the row as ``(value, labels column)``, or None."""
        row = self._db.execute("SELECT value, labels FROM kv WHERE ns=? AND key=?",
                               (ns, key)).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def incr(self, ns: str, key: str, by: int,
             labels: Iterable[str]) -> tuple[int, frozenset[str]]:
        """See :meth:`KvBackend.incr`; one ``BEGIN IMMEDIATE`` transaction (other
        processes sharing the file wait for it)."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                row = self._atomic(ns, key)
                old = _decode_labels(row[1]) if row else _NONE
                total = counter_value(row[0] if row else None, by)
                db.execute("INSERT OR REPLACE INTO kv (ns, key, value, labels) "
                           "VALUES (?, ?, ?, ?)",
                           (ns, key, str(total), _encode_labels(old | set(labels))))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return total, old

    def cas(self, ns: str, key: str, expected: str | None, value: str,
            labels: Iterable[str]) -> tuple[bool, str | None, frozenset[str]]:
        """See :meth:`KvBackend.cas`; one ``BEGIN IMMEDIATE`` transaction."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                row = self._atomic(ns, key)
                current = row[0] if row else None
                if current != expected:
                    db.execute("ROLLBACK")
                    return False, current, _decode_labels(row[1]) if row else _NONE
                db.execute("INSERT OR REPLACE INTO kv (ns, key, value, labels) "
                           "VALUES (?, ?, ?, ?)", (ns, key, value, _encode_labels(labels)))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return True, None, _NONE

    def close(self) -> None:
        with self._lock:
            self._db.close()


class KvFamily:
    """kv host functions over one :class:`KvStore`; labels flow in and out via the scope.

    ``kv_put`` stores the writer session's labels (``scope.labels``) with the
    value; ``kv_get`` and ``kv_list`` mark the reader (``scope.mark``) with the
    labels of what they return before returning it.
    """

    def __init__(self, store: KvBackend) -> None:
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
        if function == "kv_incr":
            total, before = self._store.incr(ns, p["key"], p["by"], scope.labels)
            scope.mark(before)
            return {"value": total}
        if function == "kv_cas":
            ok, current, labels = self._store.cas(ns, p["key"], p["expected"], p["value"],
                                                  scope.labels)
            if ok:
                return {"ok": True}
            scope.mark(labels)
            return {"ok": False, "found": False} if current is None else {
                "ok": False, "found": True, "value": current}
        return {"deleted": self._store.delete(ns, p["key"])}
