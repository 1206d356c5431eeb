"""The kv host functions' store on PostgreSQL, shared by the kernels of a fleet.

Same rows as the SQLite store (:class:`vak.host.kv.KvStore`): ``(namespace,
key) -> value`` with the writers' data-flow labels, in table ``vak_kv``
(migration ``0002_kv.sql``). ``incr`` and ``cas`` lock the row (``SELECT ...
FOR UPDATE``, or an insert that conflicts) inside one transaction, so any
number of kernels incrementing one counter lose no update. One connection per
store, serialised by a lock (a kernel's host calls come from many threads).

Example::

    >>> kv = PostgresKV("postgresql://vak@db.internal/audit")   # doctest: +SKIP
    >>> kv.incr("counter", "visits", 1, ())                     # doctest: +SKIP
    (1, frozenset())
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from vak.errors import ConfigError, FleetError
from vak.host.base import HostEffectError
from vak.host.kv import counter_value

__all__ = ["PostgresKV"]


class PostgresKV:
    """A :class:`vak.host.kv.KvBackend` on PostgreSQL.

    Raises (from the constructor):
        ConfigError: the server cannot be reached or its schema is newer than this VAK's.
    """

    def __init__(self, dsn: str) -> None:
        from vak.fleet.store import connect, driver_errors, migrate

        self._errors = driver_errors()
        try:
            self._conn = connect(dsn)
            migrate(self._conn)
        except FleetError as exc:
            raise ConfigError(f"[host] kv: {exc.message}", field="kv",
                              fix=str(exc.details.get("fix") or "check the URL and the server")
                              ) from None
        self._lock = threading.Lock()

    def _run(self, fn: Any) -> Any:
        """Run ``fn(conn)`` in one transaction; a driver failure is the guest's host_failure."""
        with self._lock:
            try:
                with self._conn.transaction():
                    return fn(self._conn)
            except self._errors as exc:
                raise HostEffectError("host_failure", "the shared kv store failed: "
                                      f"{type(exc).__name__}") from None

    def get_labeled(self, ns: str, key: str) -> tuple[str, frozenset[str]] | None:
        row = self._run(lambda c: c.execute(
            "SELECT value, labels FROM vak_kv WHERE ns = %s AND key = %s", (ns, key)).fetchone())
        return None if row is None else (str(row[0]), frozenset(row[1]))

    def get(self, ns: str, key: str) -> str | None:
        found = self.get_labeled(ns, key)
        return None if found is None else found[0]

    def put(self, ns: str, key: str, value: str, labels: Iterable[str] = ()) -> None:
        self._run(lambda c: c.execute(
            "INSERT INTO vak_kv (ns, key, value, labels) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (ns, key) DO UPDATE SET value = EXCLUDED.value, "
            "labels = EXCLUDED.labels", (ns, key, value, sorted(set(labels)))))

    def delete(self, ns: str, key: str) -> bool:
        cur = self._run(lambda c: c.execute(
            "DELETE FROM vak_kv WHERE ns = %s AND key = %s", (ns, key)))
        return bool(cur.rowcount)

    def keys_labeled(self, ns: str, prefix: str,
                     limit: int) -> tuple[list[str], frozenset[str]]:
        # prefix compared with left(), not LIKE: the guest's % and _ stay literal
        rows = self._run(lambda c: c.execute(
            "SELECT key, labels FROM vak_kv WHERE ns = %s AND left(key, %s) = %s "
            "ORDER BY key COLLATE \"C\" LIMIT %s", (ns, len(prefix), prefix, limit)).fetchall())
        labels: set[str] = set()
        for _, row_labels in rows:
            labels.update(row_labels)
        return [str(r[0]) for r in rows], frozenset(labels)

    def keys(self, ns: str, prefix: str, limit: int) -> list[str]:
        return self.keys_labeled(ns, prefix, limit)[0]

    @staticmethod
    def _locked(conn: Any, ns: str, key: str) -> tuple[str, list[str]] | None:
        """The row, locked for this transaction; a missing row is created empty-locked."""
        row = conn.execute("SELECT value, labels FROM vak_kv WHERE ns = %s AND key = %s "
                           "FOR UPDATE", (ns, key)).fetchone()
        return None if row is None else (str(row[0]), list(row[1]))

    _INCR = (
        "INSERT INTO vak_kv AS t (ns, key, value, labels) VALUES (%(ns)s, %(key)s, %(by)s, "
        "%(labels)s) ON CONFLICT (ns, key) DO UPDATE SET "
        "value = (t.value::bigint + %(by)s)::text, "
        "labels = ARRAY(SELECT DISTINCT x FROM unnest(t.labels || EXCLUDED.labels) AS x "
        "ORDER BY 1) "
        "WHERE t.value ~ '^-?(0|[1-9][0-9]{0,15})$' AND t.value <> '-0' "
        "AND abs(t.value::bigint + %(by)s) <= %(limit)s "
        "RETURNING value, labels")

    def incr(self, ns: str, key: str, by: int,
             labels: Iterable[str]) -> tuple[int, frozenset[str]]:
        """See :meth:`vak.host.kv.KvBackend.incr`.

        One statement (the upsert locks the row, so concurrent increments queue on
        it); the returned labels are the row's after the write, a superset of
        the ones before by the writer's own, which the reader already carries.
        When the stored value is no counter or the sum out of range, nothing is
        written and the error says which.
        """
        params = {"ns": ns, "key": key, "by": by, "labels": sorted(set(labels)),
                  "limit": (1 << 53) - 1}

        def step(conn: Any) -> tuple[int, frozenset[str]]:
            row = conn.execute(self._INCR, params).fetchone()
            if row is not None:
                return int(row[0]), frozenset(row[1])
            stored = conn.execute("SELECT value FROM vak_kv WHERE ns = %s AND key = %s",
                                  (ns, key)).fetchone()
            counter_value(None if stored is None else str(stored[0]), by)  # raises why
            raise HostEffectError("host_failure", "the counter changed during the increment")

        result: tuple[int, frozenset[str]] = self._run(step)
        return result

    def cas(self, ns: str, key: str, expected: str | None, value: str,
            labels: Iterable[str]) -> tuple[bool, str | None, frozenset[str]]:
        """See :meth:`vak.host.kv.KvBackend.cas`."""
        mine = sorted(set(labels))

        def step(conn: Any) -> tuple[bool, str | None, frozenset[str]]:
            if expected is None:
                cur = conn.execute("INSERT INTO vak_kv (ns, key, value, labels) VALUES "
                                   "(%s, %s, %s, %s) ON CONFLICT (ns, key) DO NOTHING",
                                   (ns, key, value, mine))
                if cur.rowcount:
                    return True, None, frozenset()
            row = self._locked(conn, ns, key)
            if row is None or row[0] != expected:
                return (False, None, frozenset()) if row is None else (
                    False, row[0], frozenset(row[1]))
            conn.execute("UPDATE vak_kv SET value = %s, labels = %s WHERE ns = %s AND key = %s",
                         (value, mine, ns, key))
            return True, None, frozenset()

        result: tuple[bool, str | None, frozenset[str]] = self._run(step)
        return result

    def close(self) -> None:
        with self._lock:
            self._conn.close()
