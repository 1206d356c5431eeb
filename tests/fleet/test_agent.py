"""The kernel's background agent on its own: ships, survives a dead store, stops on a refusal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vak.fleet.agent import FleetAgent
from vak.fleet.settings import FleetSettings

from .helpers import decision, open_log, rewrite


def _size(conn: Any) -> int:
    row = conn.execute("SELECT size FROM vak_fleet_origins").fetchone()
    return 0 if row is None else int(row[0])


def test_agent_ships_each_round_and_stops_after_a_refusal(conn: Any, dsn: str,
                                                          tmp_path: Path) -> None:
    log = open_log(tmp_path, "k1")
    pub = tmp_path / "k1" / "log.key.pub"
    agent = FleetAgent(FleetSettings(ship_to=dsn), log.path, pub)
    for i in range(5):
        log.append("host_decision", decision(i))
    log.checkpoint()
    agent.run_once()
    assert agent.error is None and _size(conn) == agent.shipped_size > 0
    log.close()
    rewrite(log.path, tmp_path / "k1" / "log.key", 2)
    agent.run_once()
    assert agent.refused is not None and agent.error and "refused" in agent.error
    before = _size(conn)
    agent.run_once()  # no further attempt: the incident waits for an operator
    assert _size(conn) == before
    assert conn.execute("SELECT count(*) FROM vak_fleet_incidents").fetchone()[0] == 1
    agent.close()


def test_agent_retries_after_the_store_comes_back(dsn: str, conn: Any, tmp_path: Path) -> None:
    log = open_log(tmp_path, "k1")
    log.append("heartbeat", {})
    log.checkpoint()
    pub = tmp_path / "k1" / "log.key.pub"
    down = FleetAgent(FleetSettings(ship_to="postgresql://x@127.0.0.1:1/none"), log.path, pub)
    down.run_once()
    assert down.error and down.refused is None
    up = FleetAgent(FleetSettings(ship_to=dsn), log.path, pub)
    up.run_once()
    assert up.error is None and _size(conn) > 0
    log.close()
    up.close()
    assert _size(conn) == len(log.path.read_bytes().splitlines())


def test_a_notified_checkpoint_is_pushed_once(tmp_path: Path) -> None:
    from vak.witness.sidecar import sidecar_for

    from .helpers import witness_processes

    log = open_log(tmp_path, "k1")
    pub = tmp_path / "k1" / "log.key.pub"
    with witness_processes(tmp_path, pub, n=1) as found:
        agent = FleetAgent(FleetSettings(witnesses=(found[0][0],)), log.path, pub)
        log.append("heartbeat", {})
        agent.notify(log.checkpoint())  # as the writer's checkpoint listener would
        agent.run_once()
        agent.run_once()  # nothing new: not sent again
        assert agent.error is None, agent.error
        assert len(sidecar_for(log.path).read_bytes().splitlines()) == 1
        log.close()
        agent.close()  # the final round sends the closing checkpoint
        assert len(sidecar_for(log.path).read_bytes().splitlines()) == 2
