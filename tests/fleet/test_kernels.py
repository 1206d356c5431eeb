"""Done-when: real kernels ship in the background into one PostgreSQL; the fleet verifies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vak.audit.verify import Code
from vak.cli.audit import main as audit_main
from vak.config import KernelConfig
from vak.errors import PolicyDeniedError
from vak.fleet.settings import FleetSettings
from vak.kernel import Kernel

from .helpers import witness_processes


def _kernel(demo: Path, root: Path, n: int, fleet: FleetSettings) -> Kernel:
    base = KernelConfig.from_toml(demo)
    return Kernel(base.with_(audit_log=root / f"k{n}" / "vak.log",
                             audit_key=root / f"k{n}" / "log.key",
                             audit_hmac_key=root / f"k{n}" / "args.hmac",
                             audit_origin=f"fleet.test/kernel-{n}", fleet=fleet))


def _work(k: Kernel, n: int) -> None:
    for i in range(n + 2):
        k.invoke("calculator__execute", {"operation": "add", "a": i, "b": 1})
    with pytest.raises(PolicyDeniedError):
        k.invoke("notes__read", {"path": "/etc/passwd"})


def test_three_kernels_ship_and_the_fleet_verifies(demo: Path, tmp_path: Path, dsn: str,
                                                   conn: Any,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    fleet = FleetSettings(ship_to=dsn, interval_ms=20)
    kernels = [_kernel(demo, tmp_path, n, fleet) for n in range(3)]
    try:
        for n, k in enumerate(kernels):
            _work(k, n)
    finally:
        for k in kernels:
            k.close()
    for n in range(3):  # everything, the final checkpoint included, reached the store
        lines = (tmp_path / f"k{n}" / "vak.log").read_bytes().count(b"\n")
        stored = conn.execute("SELECT size FROM vak_fleet_origins WHERE origin = %s",
                              (f"fleet.test/kernel-{n}",)).fetchone()
        assert stored == (lines,)
    assert audit_main(["verify", "--fleet", dsn, "--json"]) == 0
    assert '"result": "OK"' in capsys.readouterr().out
    denials = conn.execute("SELECT origin FROM vak_fleet_decisions WHERE effect = 'deny' AND "
                           "skill = 'notes' ORDER BY origin").fetchall()
    assert [d[0] for d in denials] == [f"fleet.test/kernel-{n}" for n in range(3)]


def test_a_kernel_with_an_unreachable_store_still_serves(demo: Path, tmp_path: Path) -> None:
    fleet = FleetSettings(ship_to="postgresql://nobody@127.0.0.1:1/none", interval_ms=10)
    with _kernel(demo, tmp_path, 7, fleet) as k:
        _work(k, 1)
        agent = k._fleet
    assert agent is not None and agent.error and "connect" in agent.error
    assert audit_main(["verify", str(tmp_path / "k7" / "vak.log"), "--key",
                       str(tmp_path / "k7" / "log.key.pub")]) == int(Code.OK)


def test_a_kernel_sends_its_checkpoints_to_two_witnesses(demo: Path, tmp_path: Path,
                                                         dsn: str) -> None:
    from vak.audit.keys import export_public, load_or_create_private_key, public_bytes, verifier_key

    key = tmp_path / "k5" / "log.key"
    origin = "fleet.test/kernel-5"
    export_public(key, verifier_key(origin, public_bytes(load_or_create_private_key(key))))
    with witness_processes(tmp_path, tmp_path / "k5" / "log.key.pub") as found:
        (tmp_path / "w.pub").write_text("".join(p.read_text() for _, p in found))
        fleet = FleetSettings(witnesses=tuple(u for u, _ in found), ship_to=dsn,
                              witness_keys=tmp_path / "w.pub", interval_ms=20)
        with _kernel(demo, tmp_path, 5, fleet) as k:
            _work(k, 1)
            agent = k._fleet
    assert agent is not None and agent.error is None, agent.error
    args = ["verify", str(tmp_path / "k5" / "vak.log"), "--key", f"{key}.pub"]
    for _, pub in found:
        args += ["--witness", str(pub)]
    assert audit_main([*args, "--min-witnesses", "2"]) == int(Code.OK)
    # the fleet store got the cosignatures too: K of N holds there as well
    wargs = [a for _, p in found for a in ("--witness", str(p))]
    assert audit_main(["verify", "--fleet", dsn, *wargs, "--min-witnesses", "2"]) == 0
    assert audit_main(["verify", "--fleet", dsn, *wargs, "--min-witnesses", "3"]) == int(
        Code.UNVERIFIABLE)


def test_fleet_settings_load_from_vak_toml(tmp_path: Path) -> None:
    from vak.errors import ConfigError

    cfg = tmp_path / "vak.toml"
    cfg.write_text('[fleet]\nship_to = "postgresql://vak@db/audit"\n'
                   'witnesses = ["http://127.0.0.1:7380"]\nwitness_keys = "w.pub"\n'
                   'interval_ms = 50\n[host]\nkv = "postgresql://vak@db/audit"\n')
    loaded = KernelConfig.from_toml(cfg)
    assert loaded.fleet == FleetSettings("postgresql://vak@db/audit", ("http://127.0.0.1:7380",),
                                         tmp_path / "w.pub", 50)
    assert loaded.kv == "postgresql://vak@db/audit"
    cfg.write_text("[fleet]\nship_too = 1\n")
    with pytest.raises(ConfigError, match=r"fleet\.ship_too"):
        KernelConfig.from_toml(cfg)
