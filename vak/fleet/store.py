"""The PostgreSQL connection and the schema migrations shipped in this package.

Invariants: psycopg (3) is imported lazily, so ``vak`` works without the
``[postgres]`` extra until a fleet store is used; a DSN must be a
``postgresql://`` or ``postgres://`` URL; migrations are the files
``vak/fleet/migrations/NNNN_*.sql``, applied in order, each once, inside one
transaction holding an advisory lock (two shippers starting together apply
them once). The applied versions live in ``vak_fleet_schema``.

Example::

    >>> conn = connect("postgresql://vak@db.internal/audit")   # doctest: +SKIP
    >>> migrate(conn)                                          # doctest: +SKIP
    [1]
"""

from __future__ import annotations

import importlib.resources
import re
from typing import Any

from vak.errors import FleetError

__all__ = ["SCHEMA_LOCK", "check_dsn", "connect", "driver_errors", "migrate", "migrations"]

#: advisory lock key serialising migrations (any constant shared by all shippers)
SCHEMA_LOCK = 0x76616B66  # "vakf"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def check_dsn(dsn: str) -> str:
    """Return ``dsn`` if it is a PostgreSQL URL.

    Raises:
        FleetError: anything else (the message never repeats the DSN: it may hold a password).
    """
    if not isinstance(dsn, str) or not re.match(r"^postgres(ql)?://", dsn):
        raise FleetError("fleet store must be a postgresql:// URL",
                         fix="pass e.g. postgresql://user@host/dbname")
    return dsn


def connect(dsn: str) -> Any:
    """An open psycopg connection to the fleet store, in autocommit mode.

    Autocommit, so that work grouped by ``with conn.transaction()`` commits at
    the end of the block (without it, a first query would open a transaction
    that the block would only nest a savepoint in).

    Raises:
        FleetError: psycopg is not installed, or the server refuses the connection.
    """
    check_dsn(dsn)
    try:
        import psycopg
    except ImportError:
        raise FleetError("the fleet store needs psycopg 3",
                         fix="pip install 'vak[postgres]'") from None
    try:
        conn = psycopg.connect(dsn, autocommit=True)
    except psycopg.Error as exc:
        raise FleetError(f"cannot connect to the fleet store: {_first_line(exc)}") from None
    encoding = conn.execute("SHOW server_encoding").fetchone()
    if encoding is None or encoding[0] != "UTF8":
        conn.close()
        raise FleetError("the fleet database must use UTF8 encoding",
                         fix="CREATE DATABASE ... ENCODING 'UTF8'")
    return conn


def driver_errors() -> tuple[type[BaseException], ...]:
    """The driver's base error class (for ``except``), or none when psycopg is absent."""
    try:
        import psycopg
    except ImportError:
        return ()
    return (psycopg.Error,)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def migrations() -> list[tuple[int, str, str]]:
    """``(version, file name, SQL)`` of every shipped migration, in order."""
    folder = importlib.resources.files("vak.fleet") / "migrations"
    found = []
    for item in folder.iterdir():
        m = _NAME.match(item.name)
        if m:
            found.append((int(m.group(1)), item.name, item.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(conn: Any) -> list[int]:
    """Apply the migrations ``conn``'s database lacks; returns the versions applied.

    Raises:
        FleetError: the database has a newer schema than this package knows.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS vak_fleet_schema ("
                     "version int PRIMARY KEY, name text NOT NULL, "
                     "applied_at timestamptz NOT NULL DEFAULT now())")
        have = {int(r[0]) for r in conn.execute("SELECT version FROM vak_fleet_schema")}
        known = migrations()
        newest = max((v for v, _, _ in known), default=0)
        if have and max(have) > newest:
            raise FleetError(f"the fleet store has schema version {max(have)}; this vak knows "
                             f"up to {newest}", fix="upgrade vak on this machine")
        applied = []
        for version, name, sql in known:
            if version in have:
                continue
            conn.execute(sql)
            conn.execute("INSERT INTO vak_fleet_schema (version, name) VALUES (%s, %s)",
                         (version, name))
            applied.append(version)
    return applied
