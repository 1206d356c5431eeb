"""``verify_fleet`` and ``vak-audit verify --fleet`` over real shipped logs in PostgreSQL."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from vak.audit.verify import Code
from vak.cli.audit import main as audit_main
from vak.fleet.ship import ship_log
from vak.fleet.verify import verify_fleet

from .helpers import SKILL, rewrite, write_log

DOCS = Path(__file__).resolve().parents[2] / "docs" / "FLEET.md"


def _fleet(conn: Any, root: Path, n: int = 3, entries: int = 30) -> list[tuple[Path, Any]]:
    logs = []
    for k in range(n):
        log, keys = write_log(root, f"k{k}", entries, denials=k)
        ship_log(conn, log, keys)
        logs.append((log, keys))
    return logs


def _codes(report: Any) -> dict[str, list[str]]:
    return {o.origin: [f.code.name for f in o.findings] for o in report.origins}


def test_three_origins_verify_and_heads_are_remembered(conn: Any, tmp_path: Path) -> None:
    _fleet(conn, tmp_path)
    report = verify_fleet(conn)
    assert report.result == Code.OK, report.render()
    assert [o.origin for o in report.origins] == [f"test.vak/k{k}" for k in range(3)]
    heads = conn.execute("SELECT origin, size FROM vak_fleet_heads ORDER BY origin").fetchall()
    assert [h[1] for h in heads] == [o.checkpoint_size for o in report.origins]


def test_an_edited_row_is_modified_and_only_that_origin_fails(conn: Any, tmp_path: Path) -> None:
    _fleet(conn, tmp_path)
    conn.execute("UPDATE vak_fleet_entries SET line = replace(line, 'kv:ns/k4', 'kv:ns/kX') "
                 "WHERE origin = 'test.vak/k1' AND seq = 5")
    conn.commit()
    report = verify_fleet(conn)
    codes = _codes(report)
    assert codes["test.vak/k0"] == [] and codes["test.vak/k2"] == []
    assert "MODIFIED" in codes["test.vak/k1"] or "MALFORMED" in codes["test.vak/k1"]
    assert report.result >= Code.MALFORMED


def test_a_deleted_row_is_missing(conn: Any, tmp_path: Path) -> None:
    _fleet(conn, tmp_path, n=1)
    conn.execute("DELETE FROM vak_fleet_entries WHERE seq = 7")
    conn.commit()
    assert "MISSING" in _codes(verify_fleet(conn))["test.vak/k0"]


def test_a_store_rolled_back_since_last_time_is_flagged(conn: Any, tmp_path: Path) -> None:
    _fleet(conn, tmp_path, n=1)
    assert verify_fleet(conn).result == Code.OK
    conn.execute("DELETE FROM vak_fleet_entries WHERE seq >= 10")
    conn.execute("DELETE FROM vak_fleet_checkpoints WHERE size > 10")
    conn.execute("UPDATE vak_fleet_origins SET size = 10")
    conn.commit()
    assert "ROLLBACK" in _codes(verify_fleet(conn))["test.vak/k0"]


def test_a_rewritten_history_is_a_fork_for_the_fleet_verifier(conn: Any, tmp_path: Path) -> None:
    (log, keys), = _fleet(conn, tmp_path, n=1)
    assert verify_fleet(conn).result == Code.OK
    # an insider replaces the origin's rows with a rewritten, validly re-signed history
    rewrite(log, tmp_path / "k0" / "log.key", 4, keep_checkpoints=False)
    for table in ("entries", "checkpoints", "keys", "cosignatures", "origins"):
        conn.execute(f"DELETE FROM vak_fleet_{table}")
    conn.commit()
    ship_log(conn, log, keys)
    report = verify_fleet(conn)
    assert "FORK" in _codes(report)["test.vak/k0"]
    assert report.result == Code.FORK


def test_a_refused_shipment_flags_its_origin(conn: Any, tmp_path: Path) -> None:
    (log, keys), = _fleet(conn, tmp_path, n=1)
    rewrite(log, tmp_path / "k0" / "log.key", 4)
    with pytest.raises(Exception, match="refused"):
        ship_log(conn, log, keys)
    assert verify_fleet(conn).result >= Code.ROLLBACK


def test_the_auditor_trust_file_replaces_the_pinned_keys(conn: Any, tmp_path: Path) -> None:
    _fleet(conn, tmp_path, n=2)
    other = write_log(tmp_path, "stranger", 1)[1]
    report = verify_fleet(conn, trust=other)
    assert {o.result for o in report.origins} == {Code.KEY_UNTRUSTED}


def _doc_queries() -> dict[str, str]:
    """The SQL blocks of docs/FLEET.md, by the ``-- query: NAME`` comment they start with."""
    text = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"```sql\n(.*?)```", text, re.S)
    # psql variables (:'skill') become psycopg parameters
    return {m.group(1): b.replace(":'skill'", "%(skill)s") for b in blocks
            if (m := re.match(r"-- query: ([\w-]+)", b))}


def test_documented_auditor_queries_run_and_answer(conn: Any, tmp_path: Path) -> None:
    _fleet(conn, tmp_path)  # k0 no denials, k1 one, k2 two: all of skill "notes"
    queries = _doc_queries()
    assert {"denials-of-a-skill", "origins", "decisions-per-origin"} <= set(queries)
    rows = conn.execute(queries["denials-of-a-skill"], {"skill": SKILL["id"]}).fetchall()
    assert sorted(r[0] for r in rows) == ["test.vak/k1", "test.vak/k2", "test.vak/k2"]
    assert not conn.execute(queries["denials-of-a-skill"], {"skill": "nope"}).fetchall()
    assert len(conn.execute(queries["origins"]).fetchall()) == 3
    counts = conn.execute(queries["decisions-per-origin"]).fetchall()
    assert {r[0]: r[2] for r in counts}["test.vak/k2"] == 2


def test_cli_verify_fleet_json_and_exit_code(dsn: str, conn: Any, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    _fleet(conn, tmp_path, n=2)
    assert audit_main(["verify", "--fleet", dsn, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["result"] == "OK" and len(data["origins"]) == 2
    conn.execute("DELETE FROM vak_fleet_entries WHERE seq = 3 AND origin = 'test.vak/k1'")
    conn.commit()
    # the heads remembered by the first run make the shorter chain a rollback too
    assert audit_main(["verify", "--fleet", dsn]) == int(Code.ROLLBACK)
    out = capsys.readouterr().out
    assert "MISSING seq=3" in out and "RESULT: ROLLBACK" in out


def test_cli_ship_then_verify(dsn: str, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    log, _ = write_log(tmp_path, "k9", 12)
    pub = str(tmp_path / "k9" / "log.key.pub")
    assert audit_main(["ship", str(log), "--to", dsn, "--key", pub]) == 0
    assert audit_main(["ship", str(log), "--to", dsn, "--key", pub, "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert json.loads(lines[-1])["shipped"] == 0
    rewrite(log, tmp_path / "k9" / "log.key", 2)
    code = audit_main(["ship", str(log), "--to", dsn, "--key", pub])
    assert code in (int(Code.FORK), int(Code.ROLLBACK))
    assert audit_main(["verify", "--fleet", dsn, "--trust", pub]) >= int(Code.ROLLBACK)


def test_cli_rejects_a_non_postgres_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert audit_main(["verify", "--fleet", "mysql://x/y"]) == int(Code.USAGE)
    assert "postgresql://" in capsys.readouterr().err


def test_a_witness_cosignature_over_another_root_is_a_fork(conn: Any, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from vak.audit.checkpoint import Checkpoint
    from vak.witness.cosignature import cosign, witness_key_of

    _fleet(conn, tmp_path, n=1)
    size = verify_fleet(conn).origins[0].checkpoint_size
    key = Ed25519PrivateKey.generate()
    wkey = witness_key_of("witness.test/w1", key)
    for root in (conn.execute("SELECT root FROM vak_fleet_checkpoints WHERE size = %s",
                              (size,)).fetchone()[0], b"\x07" * 32):
        body = Checkpoint("test.vak/k0", size, bytes(root), "t").body()
        conn.execute("INSERT INTO vak_fleet_cosignatures VALUES (%s, %s, %s, %s, %s, %s, %s)",
                     ("test.vak/k0", size, bytes(root), wkey.name, wkey.key_id,
                      cosign(wkey.name, key, body, 1), body))
        report = verify_fleet(conn, witnesses=[wkey], min_witnesses=1, update_heads=False)
        if root == b"\x07" * 32:
            assert "FORK" in _codes(report)["test.vak/k0"]
        else:
            assert report.result == Code.OK and report.origins[0].witnesses == (wkey.name,)
