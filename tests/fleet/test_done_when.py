"""The issue's done-when scenario in one piece: a fleet of three logs, two witnesses, one
insider rewriting one origin's history; the fleet verifier and both witnesses catch it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from vak.audit.verify import Code
from vak.errors import FleetRefusedError
from vak.fleet.ship import ship_log
from vak.fleet.verify import verify_fleet
from vak.witness.client import CheckpointPusher, WitnessEndpoint
from vak.witness.cosignature import load_witness_keys

from .helpers import decision, keys_of, open_log, rewrite, witness_processes


def test_rewritten_origin_is_caught_by_the_fleet_and_the_witnesses(conn: Any,
                                                                   tmp_path: Path) -> None:
    logs = [open_log(tmp_path, f"k{n}") for n in range(3)]
    logs_pub = tmp_path / "logs.pub"
    logs_pub.write_text("".join((tmp_path / f"k{n}" / "log.key.pub").read_text()
                                for n in range(3)))
    with witness_processes(tmp_path, logs_pub) as found:
        wkeys = [load_witness_keys(pub)[0] for _, pub in found]
        for log in logs:
            pusher = CheckpointPusher(log.path, [WitnessEndpoint(u, k)
                                                 for (u, _), k in zip(found, wkeys, strict=True)])
            for i in range(10):
                log.append("host_decision", decision(i, "deny" if i == 3 else "allow"))
            log.close()
            note = orjson.loads(log.checkpoint_path.read_bytes().splitlines()[-1])["note"]
            assert len(pusher.push(note)) == 2, pusher.errors
        for n, log in enumerate(logs):
            ship_log(conn, log.path, keys_of(tmp_path, f"k{n}"))
        ok = verify_fleet(conn, witnesses=wkeys, min_witnesses=2)
        assert ok.result == Code.OK, ok.render()
        assert all(o.witnesses == ("witness.test/w1", "witness.test/w2") for o in ok.origins)

        # the insider rewrites k1 and re-signs it with k1's own key
        victim = logs[1].path
        rewrite(victim, tmp_path / "k1" / "log.key", 3)
        try:
            ship_log(conn, victim, keys_of(tmp_path, "k1"))
            raise AssertionError("the rewritten history was shipped")
        except FleetRefusedError as exc:
            assert exc.details["problem"] in ("fork", "rollback")
        report = verify_fleet(conn, witnesses=wkeys, min_witnesses=2)
        by = {o.origin: o.result for o in report.origins}
        assert by["test.vak/k0"] == by["test.vak/k2"] == Code.OK
        assert by["test.vak/k1"] >= Code.ROLLBACK
        # and neither witness cosigns the rewritten checkpoint: same size, other root (409)
        forged = orjson.loads(victim.with_name("vak.log.ckpt").read_bytes()
                              .splitlines()[-1])["note"]
        fresh = CheckpointPusher(victim, [WitnessEndpoint(u) for u, _ in found])
        assert fresh.push(forged) == []
        assert len(fresh.errors) == 2 and all("409" in e for e in fresh.errors)
        # nor a longer rewritten history (its consistency proof fails: 422)
        rewrite(victim, tmp_path / "k1" / "log.key", 3, extend=2)
        note = orjson.loads(victim.with_name("vak.log.ckpt").read_bytes()
                            .splitlines()[-1])["note"]
        again = CheckpointPusher(victim, [WitnessEndpoint(u) for u, _ in found])
        assert again.push(note) == []
        assert all("422" in e for e in again.errors), again.errors
