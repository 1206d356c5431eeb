"""A throwaway PostgreSQL server in a directory, for tests, benchmarks and trials.

It listens on a Unix socket inside its directory only (no TCP port), trusts
local connections, and is stopped by :meth:`DevServer.stop`. It uses the
``pgserver`` package (PostgreSQL binaries from PyPI, in the dev extra) when
installed, else the system's ``initdb``/``pg_ctl`` (run as the ``postgres``
user when the caller is root, since PostgreSQL refuses to run as root).
Never use it for a real fleet store.

Example::

    >>> with DevServer.start(Path("/tmp/pg")) as srv:       # doctest: +SKIP
    ...     dsn = srv.create_database("audit")
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vak.errors import FleetError

__all__ = ["DevServer"]


def _system_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    roots = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return roots[-1].parent if roots else None


@dataclass(slots=True)
class DevServer:
    """A running server: its directory, its admin DSN, and how to stop it."""

    root: Path
    socket_dir: Path
    _handle: Any = None
    _bin: Path | None = None

    @classmethod
    def start(cls, root: Path) -> DevServer:
        """Start a server with its data in ``root`` (created).

        Raises:
            FleetError: neither pgserver nor PostgreSQL binaries are available.
        """
        root.mkdir(parents=True, exist_ok=True)
        try:
            pgserver: Any = importlib.import_module("pgserver")
        except ImportError:
            pgserver = None
        if pgserver is not None:
            return cls(root, root, pgserver.get_server(str(root), cleanup_mode="stop"))
        bindir = _system_bin()
        if bindir is None:
            raise FleetError("no PostgreSQL for the dev server",
                             fix="pip install pgserver, or install PostgreSQL")
        srv = cls(root, root, None, bindir)
        srv._start_system()
        return srv

    def _run(self, *argv: str) -> None:
        prefix: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            prefix = ["runuser", "-u", "postgres", "--"]
        subprocess.run([*prefix, *argv], check=True, capture_output=True, timeout=120)

    def _start_system(self) -> None:
        assert self._bin is not None
        data = self.root / "data"
        if not data.exists():
            self._run(str(self._bin / "initdb"), "-D", str(data), "-U", "postgres", "-E",
                      "UTF8", "--locale=C", "--auth=trust")
        self._run(str(self._bin / "pg_ctl"), "-D", str(data), "-w", "-l",
                  str(self.root / "server.log"), "-o",
                  f"-k {self.root} -c listen_addresses='' -c fsync=off", "start")

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@/{dbname}?host={self.socket_dir}"

    def create_database(self, name: str) -> str:
        """Create database ``name`` (UTF8) and return its DSN."""
        import psycopg

        if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", name):
            raise ValueError(f"database name {name!r} is not a plain identifier")
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0')
        return self.dsn(name)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cleanup()
            self._handle = None
        elif self._bin is not None:
            self._run(str(self._bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast",
                      "-w", "stop")
            self._bin = None

    def __enter__(self) -> DevServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
