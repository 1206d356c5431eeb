"""SIGKILL/restart loops in ``batched`` mode: nothing acknowledged is ever lost.

``batched:<ms>`` may give up power-loss durability, never process-crash
durability: an entry is handed to the OS before the invocation it records is
acknowledged. A child (the real writer, or a real kernel) acknowledges on
stdout only after the call returned; the parent kills it at a random moment,
restarts it, and at the end every acknowledged entry or invocation is in the
log and ``verify`` exits 0. Bounded by default; more rounds under ``slow``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import orjson
import pytest

from vak.audit.keys import load_trusted_keys
from vak.audit.verify import Code, verify_log

_WRITER = textwrap.dedent("""
    import sys
    from vak.audit.log import AuditLog
    root = sys.argv[1]
    log = AuditLog.open(root + "/vak.log", key_path=root + "/log.key", origin="crash.vak/w",
                        fsync="batched:200")
    n = 0
    while True:
        inv = f"{sys.argv[2]}-{n}"
        log.append("invocation_started", {"invocation": inv, "skill": {"id": "s"}})
        log.append("host_result", {"invocation": inv, "host_function": "log",
                                   "outcome": {"status": "ok"}})
        log.append("invocation_finished", {"invocation": inv, "skill": {"id": "s"},
                                           "outcome": {"status": "ok"}}, flush=True)
        print(inv, flush=True)
        n += 1
""")

_KERNEL = textwrap.dedent("""
    import sys
    from vak import Kernel
    with Kernel.from_config(sys.argv[1]) as k:
        while True:
            inv = k.invoke("calculator__execute", {"operation": "add", "a": 1, "b": 2})
            print(inv.invocation_id, flush=True)
""")


def _run_and_kill(argv: list[str], rng: random.Random, window: float) -> list[str]:
    """Start the child, read its acknowledgements, SIGKILL it after a random time."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    acked: list[str] = []
    first = proc.stdout.readline()  # wait until it is running
    if first:
        acked.append(first.decode().strip())
    deadline = time.monotonic() + rng.uniform(0.05, window)
    os.set_blocking(proc.stdout.fileno(), False)
    buf = b""
    while time.monotonic() < deadline:
        chunk = proc.stdout.read()
        if chunk:
            buf += chunk
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    os.set_blocking(proc.stdout.fileno(), True)
    buf += proc.stdout.read() or b""
    # only complete lines were acknowledged
    acked += [x.decode() for x in buf.split(b"\n")[:-1] if x]
    return acked


def _finished(log: Path) -> set[str]:
    out: set[str] = set()
    for raw in log.read_bytes().split(b"\n")[:-1]:
        e = orjson.loads(raw)
        if e["kind"] == "invocation_finished":
            out.add(e["invocation"])
    return out


def _writer_loop(tmp_path: Path, rounds: int) -> None:
    rng = random.Random(12)
    acked: list[str] = []
    for r in range(rounds):
        acked += _run_and_kill([sys.executable, "-c", _WRITER, str(tmp_path), f"r{r}"], rng,
                               0.6)
    assert acked
    # a clean open and close seals the tail under a checkpoint
    subprocess.run([sys.executable, "-c", "import sys\nfrom vak.audit.log import AuditLog\n"
                    "AuditLog.open(sys.argv[1] + '/vak.log', key_path=sys.argv[1] + '/log.key',"
                    " origin='crash.vak/w').close()", str(tmp_path)], check=True, timeout=120)
    missing = set(acked) - _finished(tmp_path / "vak.log")
    assert not missing, sorted(missing)[:5]
    report = verify_log(tmp_path / "vak.log", load_trusted_keys(tmp_path / "log.key.pub"))
    assert report.result == Code.OK, report.render()


def test_sigkill_loop_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    _writer_loop(tmp_path, 4)


@pytest.mark.slow
def test_sigkill_loop_loses_no_acknowledged_entry_many_rounds(tmp_path: Path) -> None:
    _writer_loop(tmp_path, 20)


def _kernel_loop(tmp_path: Path, built_skills: Path, rounds: int) -> None:
    from vak.demo import prepare_workdir

    config = prepare_workdir(tmp_path, 9)
    assert 'fsync = "batched:' in config.read_text()
    rng = random.Random(7)
    acked: list[str] = []
    for _ in range(rounds):
        acked += _run_and_kill([sys.executable, "-c", _KERNEL, str(config)], rng, 1.5)
    assert acked
    subprocess.run([sys.executable, "-c", "import sys\nfrom vak import Kernel\n"
                    "Kernel.from_config(sys.argv[1]).close()", str(config)], check=True,
                   timeout=120)
    log = tmp_path / "audit" / "vak.log"
    # the operator pins the key the first kernel made (as `vak demo` does)
    (tmp_path / "audit-pin.pub").write_bytes((tmp_path / "audit" / "log.key.pub").read_bytes())
    missing = set(acked) - _finished(log)
    assert not missing, sorted(missing)[:5]
    out = subprocess.run([sys.executable, "-m", "vak.cli.audit", "verify", "--config",
                          str(config)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_kernel_sigkill_loop_loses_no_acknowledged_invocation(tmp_path: Path,
                                                              built_skills: Path) -> None:
    _kernel_loop(tmp_path, built_skills, 2)


@pytest.mark.slow
def test_kernel_sigkill_loop_many_rounds(tmp_path: Path, built_skills: Path) -> None:
    _kernel_loop(tmp_path, built_skills, 8)
