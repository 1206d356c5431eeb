"""vak.host.kv: labelled rows, the schema migration, and marks flowing to readers."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from vak.errors import ConfigError
from vak.host.base import HostEffectError
from vak.host.dataflow import SessionFlow
from vak.host.kv import SCHEMA_VERSION, KvFamily, KvStore


def _v1(path: Path) -> None:
    """A database as the kernel wrote it before labels (schema version 1)."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE kv (ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, "
               "PRIMARY KEY (ns, key))")
    db.execute("INSERT INTO kv VALUES ('notes', 'old', 'written before labels')")
    db.commit()
    db.close()


def test_labels_round_trip(tmp_path: Path) -> None:
    store = KvStore(tmp_path / "kv.db")
    store.put("n", "k", "v", ["secret:A", "fs:/w", "secret:A"])
    assert store.get_labeled("n", "k") == ("v", frozenset({"secret:A", "fs:/w"}))
    assert store.get("n", "k") == "v"
    store.put("n", "k2", "v2")
    assert store.keys_labeled("n", "", 10) == (["k", "k2"], frozenset({"secret:A", "fs:/w"}))
    assert store.keys_labeled("n", "k2", 10) == (["k2"], frozenset())
    store.close()


def test_version_1_database_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "kv.db"
    _v1(path)
    store = KvStore(path)
    assert store.get_labeled("notes", "old") == ("written before labels", frozenset())
    store.put("notes", "new", "x", ["secret:A"])
    store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    columns = [r[1] for r in db.execute("PRAGMA table_info(kv)")]
    assert columns == ["ns", "key", "value", "labels"]
    db.close()
    again = KvStore(path)  # opening a migrated database is a no-op
    assert again.get_labeled("notes", "new") == ("x", frozenset({"secret:A"}))
    again.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kv.db"
    KvStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(ConfigError, match="newer"):
        KvStore(path)


@pytest.mark.parametrize("raw", ["not json", '{"a": 1}', "[1]", "null"],
                         ids=["not-json", "object", "non-string", "null"])
def test_damaged_labels_fail_the_read_closed(tmp_path: Path, raw: str) -> None:
    path = tmp_path / "kv.db"
    store = KvStore(path)
    store.put("n", "k", "secret-bearing", ["secret:A"])
    db = sqlite3.connect(path)
    db.execute("UPDATE kv SET labels=?", (raw,))
    db.commit()
    db.close()
    with pytest.raises(HostEffectError) as info:
        store.get_labeled("n", "k")
    assert info.value.code == "kv_corrupt"
    with pytest.raises(HostEffectError):
        store.keys_labeled("n", "", 10)
    store.close()


class _Scope:
    """The part of the handler's EffectScope the kv family uses: a session's flow."""

    def __init__(self, flow: SessionFlow) -> None:
        self.flow = flow

    @property
    def labels(self) -> frozenset[str]:
        return self.flow.labels

    def mark(self, labels: Any, /) -> None:
        self.flow.add(labels)


def test_family_marks_writer_rows_and_readers(tmp_path: Path) -> None:
    from vak.host.calls import NORMALISERS
    from vak.host.settings import HostSettings

    store = KvStore(tmp_path / "kv.db")
    family = KvFamily(store)
    settings = HostSettings()

    def do(function: str, scope: _Scope, **args: Any) -> dict[str, Any]:
        call = NORMALISERS[function](args, "notes", settings)
        return family.perform(function, call, scope)  # type: ignore[arg-type]

    writer = SessionFlow("w")
    writer.add(["secret:A"])
    do("kv_put", _Scope(writer), key="k", value="v")
    assert store.get_labeled("notes", "k") == ("v", frozenset({"secret:A"}))
    reader = SessionFlow("r")
    assert do("kv_get", _Scope(reader), key="k")["value"] == "v"
    assert reader.labels == {"secret:A"}
    lister = SessionFlow("l")
    assert do("kv_list", _Scope(lister)) == {"keys": ["k"]}
    assert lister.labels == {"secret:A"}
    missing = SessionFlow("m")
    do("kv_get", _Scope(missing), key="nope")
    assert missing.labels == frozenset()
    store.close()



def test_kernels_opening_one_fresh_database_at_once_all_start(tmp_path: Path) -> None:
    """The workers of one `vak serve` open the shared kv file together: switching a fresh
    file to WAL can be refused at once ('database is locked', seen in about 1 round in 12
    of this test without the retry) while another connection does the same."""
    import threading

    for round_ in range(40):
        path = tmp_path / f"kv{round_}.sqlite"
        barrier = threading.Barrier(4)
        errors: list[BaseException] = []

        def open_and_put(i: int, path: Path = path, barrier: threading.Barrier = barrier,
                         errors: list[BaseException] = errors) -> None:
            barrier.wait()
            try:
                store = KvStore(path)
                store.put("ns", f"k{i}", f'"{i}"')
                store.close()
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=open_and_put, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        store = KvStore(path)
        assert sorted(store.get("ns", f"k{i}") or "" for i in range(4)) == \
            ['"0"', '"1"', '"2"', '"3"']
        store.close()
