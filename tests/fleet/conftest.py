"""Fixtures: one real PostgreSQL per session (pgserver or system binaries), one database a test."""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vak.fleet.devserver import DevServer
from vak.fleet.store import connect, migrate

psycopg = pytest.importorskip("psycopg")
_names = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[DevServer]:
    # not under pytest's tmp dir: that is 0700 and PostgreSQL runs as its own user under root
    root = Path(tempfile.mkdtemp(prefix="vak-pg-"))
    root.chmod(0o755)
    srv = DevServer.start(root / "db")
    yield srv
    srv.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def dsn(pg_server: DevServer) -> str:
    """A fresh, empty database of the session's server."""
    return pg_server.create_database(f"t{next(_names)}")


@pytest.fixture
def conn(dsn: str) -> Iterator[Any]:
    c = connect(dsn)
    migrate(c)
    yield c
    c.close()


@pytest.fixture(scope="session")
def demo(built_skills: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The vak.toml of a signed, trusted demo workdir (the `vak demo` code path)."""
    from vak.demo import _local_server, prepare_workdir

    with _local_server() as port:
        yield prepare_workdir(tmp_path_factory.mktemp("fleet-demo"), port)
