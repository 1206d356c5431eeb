"""Hostile cases against the OS-sandboxed worker: every escape probe run inside
a restricted worker must be refused by the kernel, while mediated host calls
still work. Barriers are proven from outside (/proc/<pid>/status, a real
loopback server that must see no connection), not assumed."""

from __future__ import annotations

import errno
import os
import socket
import threading
from collections.abc import Iterator

import orjson
import pytest
from sandbox_helpers import worker_pool

from vak.identity.manifest import Limits
from vak.sandbox import oslock

pytestmark = pytest.mark.skipif(
    not oslock.barrier_status().complete, reason="kernel offers no Landlock+seccomp"
)
DIGEST = "sha256:" + "cd" * 32

PROBES = [
    ("read_file", errno.EACCES),  # Landlock
    ("read_proc_self", errno.EACCES),
    ("write_tmp", errno.EACCES),
    ("list_root", errno.EACCES),
    ("tcp_connect_loopback", errno.EPERM),  # seccomp: no socket at all
    ("unix_socket", errno.EPERM),
    ("socketpair", errno.EPERM),
    ("fork", errno.EPERM),
    ("exec", errno.EPERM),
    ("signal_parent", errno.EPERM),
    ("signal_group", errno.EPERM),
    ("unshare_user", errno.EPERM),
    ("ptrace_parent", errno.EPERM),
]


@pytest.fixture(scope="module")
def listener() -> Iterator[tuple[socket.socket, list[object]]]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(0.2)
    accepted: list[object] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                accepted.append(srv.accept())
            except OSError:
                continue

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield srv, accepted
    stop.set()
    t.join()
    srv.close()


@pytest.fixture(scope="module")
def probe_result(listener: tuple[socket.socket, list[object]]) -> dict[str, str]:
    srv, _ = listener
    os.environ["VAK_TEST_PARENT_SECRET"] = "s3cret"  # must not reach the worker
    marker = "/tmp/vak-probe-escape"
    if os.path.exists(marker):
        os.unlink(marker)
    with worker_pool(probe=True, pool_size=1, require_os_sandbox=True) as p:
        p.register(DIGEST, b"")
        p.wait_ready(DIGEST)
        arg = {"parent_pid": os.getpid(), "port": srv.getsockname()[1]}
        out = p.call(DIGEST, "probe", orjson.dumps(arg), Limits(), lambda f, a: b"{}")
    del os.environ["VAK_TEST_PARENT_SECRET"]
    assert not os.path.exists(marker)
    return orjson.loads(out.output)  # type: ignore[no-any-return]


@pytest.mark.parametrize(("probe", "code"), PROBES, ids=[p for p, _ in PROBES])
def test_escape_probe_is_refused(probe_result: dict[str, str], probe: str, code: int) -> None:
    assert probe_result[probe] == f"refused:{code}"


def test_filter_is_not_too_broad(probe_result: dict[str, str]) -> None:
    assert probe_result["thread"] == "allowed"


def test_parent_environment_and_sockets_do_not_reach_the_worker(
    probe_result: dict[str, str], listener: tuple[socket.socket, list[object]]
) -> None:
    assert "VAK_TEST_PARENT_SECRET" not in probe_result["environ"].split(",")
    assert probe_result["inherited_sockets"] == ""  # the listener's fd was not inherited


def test_loopback_server_saw_no_connection(
    probe_result: dict[str, str], listener: tuple[socket.socket, list[object]]
) -> None:
    assert listener[1] == []


def test_worker_status_shows_nnp_and_seccomp_filter() -> None:
    with worker_pool(probe=True, pool_size=1) as p:
        p.register(DIGEST, b"")
        p.wait_ready(DIGEST)
        (pid,) = p.pids(DIGEST)
        with open(f"/proc/{pid}/status") as fh:
            status = dict(line.split(":\t", 1) for line in fh.read().splitlines() if ":\t" in line)
        assert status["NoNewPrivs"].strip() == "1"
        assert status["Seccomp"].strip() == "2"
        barriers = p.barriers()
        assert barriers is not None
        assert barriers["threads_at_restrict"] == 1  # no thread escaped Landlock
        assert barriers["landlock"]["abi"] == oslock.barrier_status().landlock_abi
        # mediated host calls still work from inside the sandbox
        out = p.call(DIGEST, "host", orjson.dumps({"calls": [["clock_now", {}]]}), Limits(),
                     lambda f, a: b'{"now":1}')
        assert orjson.loads(out.output) == {"replies": [{"now": 1}]}
