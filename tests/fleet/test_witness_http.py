"""Two real witness processes on 127.0.0.1, a real log, the client and K-of-N verification."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from vak.audit.verify import Code
from vak.cli.audit import main as audit_main
from vak.witness.client import CheckpointPusher, WitnessEndpoint, add_checkpoint
from vak.witness.cosignature import load_witness_keys
from vak.witness.sidecar import check_log_cosignatures, sidecar_for

from .helpers import open_log, rewrite, witness_processes


@pytest.fixture
def fleet_log(tmp_path: Path) -> Any:
    log = open_log(tmp_path, "k1")
    yield log
    log.close()


@pytest.fixture
def witnesses(tmp_path: Path, fleet_log: Any) -> Iterator[list[tuple[str, Path]]]:
    with witness_processes(tmp_path, tmp_path / "k1" / "log.key.pub") as found:
        yield found


def _push(log: Any, witnesses: list[tuple[str, Path]], n: int) -> tuple[CheckpointPusher, str]:
    ends = [WitnessEndpoint(url, load_witness_keys(pub)[0]) for url, pub in witnesses]
    pusher = CheckpointPusher(log.path, ends)
    note = ""
    for i in range(n):
        log.append("heartbeat", {"i": i})
        note = log.checkpoint().note
        assert len(pusher.push(note)) == len(witnesses), pusher.errors
    return pusher, note


def _args(tmp_path: Path, witnesses: list[tuple[str, Path]], k: int) -> list[str]:
    log = tmp_path / "k1" / "vak.log"
    args = ["verify", str(log), "--key", str(tmp_path / "k1" / "log.key.pub")]
    for _, pub in witnesses:
        args += ["--witness", str(pub)]
    return [*args, "--min-witnesses", str(k)]


def test_both_witnesses_cosign_and_verify_needs_k_of_n(tmp_path: Path, fleet_log: Any,
                                                       witnesses: Any,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    _push(fleet_log, witnesses, 3)
    keys = [load_witness_keys(pub)[0] for _, pub in witnesses]
    check = check_log_cosignatures(fleet_log.path, keys, 2)
    assert check.witnesses == ("witness.test/w1", "witness.test/w2") and check.size > 0
    fleet_log.checkpoint()
    capsys.readouterr()
    code = audit_main([*_args(tmp_path, witnesses, 2), "--json"])
    data = orjson.loads(capsys.readouterr().out)
    assert data["witness"]["witnesses"] == ["witness.test/w1", "witness.test/w2"]
    assert code in (0, 1)  # entries after the last pushed checkpoint may only warn
    assert audit_main(_args(tmp_path, witnesses, 3)) == int(Code.UNVERIFIABLE)


def test_a_fresh_client_learns_the_size_from_409(fleet_log: Any, witnesses: Any) -> None:
    _push(fleet_log, witnesses, 2)
    fleet_log.append("heartbeat", {})
    note = fleet_log.checkpoint().note
    fresh = CheckpointPusher(fleet_log.path, [WitnessEndpoint(url) for url, _ in witnesses])
    assert len(fresh.push(note)) == 2, fresh.errors
    with pytest.raises(Exception, match=r"409|cosigned size"):
        add_checkpoint(witnesses[0][0], note, 0, [])


def test_rewritten_history_is_refused_by_both_witnesses(tmp_path: Path, fleet_log: Any,
                                                        witnesses: Any) -> None:
    _push(fleet_log, witnesses, 2)
    fleet_log.close()
    before = sidecar_for(fleet_log.path).read_bytes()
    rewrite(fleet_log.path, tmp_path / "k1" / "log.key", 1)
    forged = orjson.loads(fleet_log.path.with_name("vak.log.ckpt").read_bytes()
                          .splitlines()[-1])["note"]
    ends = [WitnessEndpoint(url) for url, _ in witnesses]
    pusher = CheckpointPusher(fleet_log.path, ends)
    assert pusher.push(forged) == []
    assert len(pusher.errors) == 2 and all("422" in e for e in pusher.errors), pusher.errors
    assert sidecar_for(fleet_log.path).read_bytes() == before  # nothing cosigned
    # and the K-of-N check of the rewritten log sees the witnesses' other history
    code = audit_main(_args(tmp_path, witnesses, 2))
    assert code == int(Code.FORK)


def test_unknown_paths_and_oversized_bodies(witnesses: Any) -> None:
    import http.client
    import urllib.parse
    parts = urllib.parse.urlsplit(witnesses[0][0])
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    conn.request("GET", "/add-checkpoint")
    assert conn.getresponse().status == 404
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    conn.request("POST", "/add-checkpoint", body=b"x" * (200 << 10))
    assert conn.getresponse().status == 413
