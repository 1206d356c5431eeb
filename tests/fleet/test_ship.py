"""Shipping real logs into a real PostgreSQL: exactly once, resumable, refusing bad batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vak.errors import FleetRefusedError
from vak.fleet.ship import ship_log
from vak.fleet.store import migrate, migrations

from .helpers import decision, keys_of, open_log, rewrite, write_log


def _count(conn: Any, origin: str) -> int:
    return int(conn.execute("SELECT count(*) FROM vak_fleet_entries WHERE origin = %s",
                            (origin,)).fetchone()[0])


def test_migrations_ship_in_the_package_and_apply_once(conn: Any) -> None:
    assert [v for v, _, _ in migrations()] == [1, 2]
    assert migrate(conn) == []  # the fixture applied them already


def test_ship_stores_every_entry_once_with_its_exact_line(conn: Any, tmp_path: Path) -> None:
    log, keys = write_log(tmp_path, "k1", 50)
    first = ship_log(conn, log, keys)
    assert first.origin == "test.vak/k1" and first.shipped == first.size
    again = ship_log(conn, log, keys)
    assert again.shipped == 0 and again.size == first.size
    assert _count(conn, "test.vak/k1") == first.size
    stored = [r[0] for r in conn.execute("SELECT line FROM vak_fleet_entries ORDER BY seq")]
    assert "\n".join(stored).encode() + b"\n" == log.read_bytes()


def test_resumes_where_it_stopped_and_ships_only_covered_entries(conn: Any,
                                                                 tmp_path: Path) -> None:
    log = open_log(tmp_path, "k1")
    for i in range(10):
        log.append("host_decision", decision(i))
    log.checkpoint()
    keys = keys_of(tmp_path, "k1")
    covered = ship_log(conn, log.path, keys).size
    for i in range(10, 30):
        log.append("host_decision", decision(i), durable=True)
    # the uncovered tail is not shipped until a checkpoint signs it
    log.checkpoint()
    later = ship_log(conn, log.path, keys)
    assert later.shipped == later.size - covered and later.size >= 31
    log.close()
    final = ship_log(conn, log.path, keys)
    assert final.size == _count(conn, "test.vak/k1") == len(log.path.read_bytes().splitlines())


def test_follows_a_key_rotation(conn: Any, tmp_path: Path) -> None:
    log = open_log(tmp_path, "k1")
    original = keys_of(tmp_path, "k1")
    log.append("heartbeat", {})
    log.rotate_key()
    log.append("heartbeat", {})
    log.close()
    report = ship_log(conn, log.path, original)  # only the first key is given
    assert report.size == len(log.path.read_bytes().splitlines())
    rows = conn.execute("SELECT since_seq FROM vak_fleet_keys ORDER BY since_seq").fetchall()
    assert [r[0] >= 0 for r in rows] == [False, True]


def _refused(conn: Any, log: Path, keys: Any) -> str:
    with pytest.raises(FleetRefusedError) as info:
        ship_log(conn, log, keys)
    return str(info.value.details["problem"])


def test_rewritten_history_is_refused_and_recorded(conn: Any, tmp_path: Path) -> None:
    log, keys = write_log(tmp_path, "k1", 20)
    size = ship_log(conn, log, keys).size
    rewrite(log, tmp_path / "k1" / "log.key", 5)
    # the insider's copy is longer and validly signed, but does not extend what was shipped
    with log.open("ab"):
        pass
    assert _refused(conn, log, keys) in ("fork", "rollback")
    assert _count(conn, "test.vak/k1") == size
    problems = [r[0] for r in conn.execute("SELECT problem FROM vak_fleet_incidents")]
    assert problems and problems[0] in ("fork", "rollback")


def test_a_fork_beyond_the_stored_head_is_refused(conn: Any, tmp_path: Path) -> None:
    log, keys = write_log(tmp_path, "k1", 20)
    ship_log(conn, log, keys)
    # same prefix, longer: append after re-opening, then rewrite an already shipped entry
    reopened = open_log(tmp_path, "k1")
    for i in range(5):
        reopened.append("heartbeat", {"i": i})
    reopened.close()
    shipped = _count(conn, "test.vak/k1")
    rewrite(log, tmp_path / "k1" / "log.key", 3)
    assert _refused(conn, log, keys) == "fork"
    assert _count(conn, "test.vak/k1") == shipped


def test_a_gap_is_refused(conn: Any, tmp_path: Path) -> None:
    log, keys = write_log(tmp_path, "k1", 10)
    lines = log.read_bytes().split(b"\n")[:-1]
    log.write_bytes(b"\n".join(lines[:4] + lines[5:]) + b"\n")  # entry 4 vanished
    assert _refused(conn, log, keys) == "gap"
    assert _count(conn, "test.vak/k1") == 0


def test_a_truncated_log_is_a_rollback(conn: Any, tmp_path: Path) -> None:
    log, keys = write_log(tmp_path, "k1", 10)
    ship_log(conn, log, keys)
    lines = log.read_bytes().split(b"\n")[:-1]
    log.write_bytes(b"\n".join(lines[:3]) + b"\n")
    assert _refused(conn, log, keys) == "rollback"


def test_entries_of_another_origin_are_refused(conn: Any, tmp_path: Path) -> None:
    log, keys = write_log(tmp_path, "k1", 5)
    other, _ = write_log(tmp_path, "k2", 5)
    log.write_bytes(log.read_bytes().split(b"\n", 1)[0] + b"\n" + other.read_bytes())
    assert _refused(conn, log, keys) in ("spliced", "fork", "gap")


def test_checkpoints_by_an_unknown_key_ship_nothing(conn: Any, tmp_path: Path) -> None:
    log, _ = write_log(tmp_path, "k1", 5)
    _, stranger = write_log(tmp_path, "k1b", 1)
    report = ship_log(conn, log, stranger)
    assert report.shipped == 0 and report.skipped
    assert _count(conn, "test.vak/k1") == 0


@pytest.mark.parametrize("edit", [
    lambda b: b.replace(b'"seq":3', b'"seq": 3', 1),           # not canonical
    lambda b: b.replace(b'"kv:ns/k2"', b'"kv:ns/k9"', 1),       # content changed
    lambda b: b.replace(b'"v":1,', b'"v":1.0,', 1),             # a float
], ids=["spacing", "content", "float"])
def test_a_tampered_line_is_refused(conn: Any, tmp_path: Path, edit: Any) -> None:
    log, keys = write_log(tmp_path, "k1", 6)
    log.write_bytes(edit(log.read_bytes()))
    assert _refused(conn, log, keys) in ("malformed", "fork")
    assert _count(conn, "test.vak/k1") == 0


def test_nul_characters_are_kept_in_the_line(conn: Any, tmp_path: Path) -> None:
    log = open_log(tmp_path, "k1")
    log.append("heartbeat", {"note": "a\x00b"})
    log.close()
    ship_log(conn, log.path, keys_of(tmp_path, "k1"))
    line, note = conn.execute("SELECT e.line, j.body->>'note' FROM vak_fleet_entries e "
                              "JOIN vak_fleet_entries_json j USING (origin, seq) "
                              "WHERE e.kind = 'heartbeat'").fetchone()
    assert "\\u0000" in line and note == "a\ufffdb"
