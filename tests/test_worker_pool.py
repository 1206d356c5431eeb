"""Tests for vak.sandbox.pool.WorkerPool with the test-only probe runner:
mediated host calls, crash/garbage/hang replacement, recycling."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import orjson
import pytest
from sandbox_helpers import Echo, worker_pool

from vak.errors import (
    ABIError,
    HostCallLimitError,
    PolicyDeniedError,
    WorkerCrashedError,
)
from vak.identity.manifest import Limits
from vak.sandbox import oslock
from vak.sandbox.pool import WorkerPool
from vak.sandbox.worker import error_from_wire, error_to_wire

pytestmark = pytest.mark.skipif(os.name != "posix", reason="workers need Linux")

DIGEST = "sha256:" + "ab" * 32


def no_host(function: str, args: bytes) -> bytes:
    raise AssertionError(f"unexpected host call {function}")


@pytest.fixture(scope="module")
def pool() -> Iterator[WorkerPool]:
    cfg = dict(pool_size=1, hang_margin_ms=300)
    with worker_pool(probe=True, **cfg) as p:
        p.register(DIGEST, b"")
        p.wait_ready(DIGEST)
        yield p


def call(pool: WorkerPool, export: str, arg: object, host=no_host, **limits: int) -> bytes:
    return pool.call(DIGEST, export, orjson.dumps(arg), Limits(**limits), host).output


def test_echo_round_trip(pool: WorkerPool) -> None:
    assert orjson.loads(call(pool, "echo", {"a": [1, 2]})) == {"a": [1, 2]}


def test_host_calls_reach_the_parent_handler(pool: WorkerPool) -> None:
    seen: list[tuple[str, bytes, int]] = []

    def host(function: str, args: bytes) -> bytes:
        seen.append((function, args, threading.get_ident()))
        return orjson.dumps({"n": len(seen)})

    out = pool.call(DIGEST, "host", orjson.dumps({"calls": [["kv_get", {"k": "a"}],
                                                            ["log", {"m": "hi"}]]}),
                    Limits(), host)
    assert orjson.loads(out.output) == {"replies": [{"n": 1}, {"n": 2}]}
    assert out.host_calls == 2
    assert [(f, orjson.loads(a)) for f, a, _ in seen] == [("kv_get", {"k": "a"}),
                                                           ("log", {"m": "hi"})]
    assert {t for *_, t in seen} == {threading.get_ident()}  # the calling thread


def test_host_error_is_reraised_unchanged_and_worker_survives(pool: WorkerPool) -> None:
    denied = PolicyDeniedError("denied", policy_ids=["p1"], audit_seq=7)

    def host(function: str, args: bytes) -> bytes:
        raise denied

    before = pool.pids(DIGEST)
    with pytest.raises(PolicyDeniedError) as info:
        call(pool, "host", {"calls": [["fs_read", {"path": "/x"}]]}, host)
    assert info.value is denied
    assert pool.pids(DIGEST) == before


def test_guest_error_is_typed(pool: WorkerPool) -> None:
    with pytest.raises(ABIError):
        call(pool, "no_such_export", {})


def test_host_call_limit_enforced_by_parent(pool: WorkerPool) -> None:
    # the parent's handler counts and refuses (RULES contract 3), as the mediation does
    calls = {"calls": [["log", {}]] * 3}
    with pytest.raises(HostCallLimitError):
        call(pool, "host", calls, Echo(max_host_calls=2), max_host_calls=2)


def test_unknown_host_function_kills_worker(pool: WorkerPool) -> None:
    before = pool.pids(DIGEST)
    with pytest.raises(WorkerCrashedError):
        call(pool, "host", {"calls": [["system", {}]]}, lambda f, a: b"{}")
    pool.wait_ready(DIGEST)
    assert pool.pids(DIGEST) != before
    assert call(pool, "echo", 1) == b"1"


@pytest.mark.parametrize(
    ("export", "arg", "limits"),
    [
        ("garbage", {}, {}),
        ("exit", {}, {}),
        ("sleep", {"seconds": 30}, {"max_execution_time_ms": 100}),
    ],
    ids=["garbage_frame", "worker_exits", "hung_worker"],
)
def test_misbehaving_worker_is_replaced(pool: WorkerPool, export: str, arg: object,
                                        limits: dict[str, int]) -> None:
    before = pool.pids(DIGEST)
    started = time.monotonic()
    with pytest.raises(WorkerCrashedError):
        call(pool, export, arg, **limits)
    assert time.monotonic() - started < 10
    pool.wait_ready(DIGEST)
    assert pool.pids(DIGEST) != before
    assert call(pool, "echo", "ok") == b'"ok"'


def test_worker_killed_mid_call_by_sigkill(pool: WorkerPool) -> None:
    (pid,) = pool.pids(DIGEST)
    timer = threading.Timer(0.3, os.kill, (pid, signal.SIGKILL))
    timer.start()
    try:
        with pytest.raises(WorkerCrashedError):
            call(pool, "sleep", {"seconds": 20}, max_execution_time_ms=20_000)
    finally:
        timer.cancel()
    pool.wait_ready(DIGEST)
    assert pool.pids(DIGEST) != (pid,)
    assert call(pool, "echo", 2) == b"2"


def test_recycle_after_n_calls() -> None:
    cfg = dict(pool_size=1, recycle_after=3)
    with worker_pool(probe=True, **cfg) as p:
        p.register(DIGEST, b"")
        p.wait_ready(DIGEST)
        first = p.pids(DIGEST)
        for _ in range(3):
            p.call(DIGEST, "echo", b"1", Limits(), no_host)
        p.wait_ready(DIGEST)
        second = p.pids(DIGEST)
        assert second != first
        p.call(DIGEST, "echo", b"1", Limits(), no_host)
        assert p.pids(DIGEST) == second


def test_unregistered_digest_is_refused(pool: WorkerPool) -> None:
    with pytest.raises(WorkerCrashedError, match="not registered"):
        pool.call("sha256:00", "echo", b"1", Limits(), no_host)


def test_concurrent_calls_each_get_a_worker() -> None:
    cfg = dict(pool_size=2)
    with worker_pool(probe=True, **cfg) as p:
        p.register(DIGEST, b"")
        p.wait_ready(DIGEST)
        results: list[bytes] = []
        threads = [threading.Thread(target=lambda i=i: results.append(
            p.call(DIGEST, "echo", orjson.dumps(i), Limits(), no_host).output)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(int(r) for r in results) == list(range(6))


@pytest.mark.skipif(not oslock.barrier_status().complete, reason="kernel lacks barriers")
def test_require_os_sandbox_reports_applied_barriers() -> None:
    with worker_pool(probe=True, pool_size=1, require_os_sandbox=True) as p:
        p.register(DIGEST, b"")
        p.wait_ready(DIGEST)
        barriers = p.barriers()
        assert barriers is not None and barriers["applied"] and barriers["complete"]


@pytest.mark.parametrize(
    "name", ["PolicyDeniedError", "ConfigError", "VakError", "KeyError", "WorkerCrashedError"],
)
def test_worker_cannot_choose_arbitrary_error_classes(name: str) -> None:
    from vak.errors import HostCallLimitError as Hcl
    from vak.errors import SkillTrapError

    err = error_from_wire({"class": name, "message": "m", "details": {}}, (SkillTrapError, Hcl))
    assert type(err) is WorkerCrashedError


def test_error_wire_round_trip() -> None:
    err = error_from_wire(error_to_wire(ABIError("bad ptr", export="x")))
    assert type(err) is ABIError and err.details == {"export": "x"}


@pytest.mark.parametrize("size", [100, 200_000], ids=["over_output_limit", "over_frame_limit"])
def test_oversized_output_from_worker_is_refused(pool: WorkerPool, size: int) -> None:
    with pytest.raises(WorkerCrashedError):
        call(pool, "echo", "x" * size, max_output_bytes=10, max_memory_pages=1)
    pool.wait_ready(DIGEST)


def test_require_os_sandbox_refuses_loudly_without_barriers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vak.errors import OSSandboxUnavailableError
    from vak.sandbox import pool as pool_mod

    missing = oslock.BarrierStatus(
        platform="linux-x86_64", arch_supported=True, no_new_privs=True, seccomp=True,
        seccomp_tsync=True, landlock_abi=0, landlock_fs=False, landlock_net=False,
        landlock_scopes=(), missing=("landlock_fs",),
    )
    monkeypatch.setattr(pool_mod, "barrier_status", lambda: missing)
    with pytest.raises(OSSandboxUnavailableError, match="landlock_fs"):
        worker_pool(probe=True, require_os_sandbox=True)


def test_unexpected_worker_exception_keeps_its_cause() -> None:
    err = error_from_wire(error_to_wire(KeyError("boom")))
    assert type(err) is WorkerCrashedError
    assert "KeyError" in err.message and err.details["cause"] == "KeyError"


def _degraded(monkeypatch: pytest.MonkeyPatch) -> None:
    from vak.sandbox import pool as pool_mod

    missing = oslock.BarrierStatus(
        platform="linux-x86_64", arch_supported=True, no_new_privs=True, seccomp=False,
        seccomp_tsync=False, landlock_abi=0, landlock_fs=False, landlock_net=False,
        landlock_scopes=(), missing=("seccomp", "landlock_fs"),
    )
    monkeypatch.setattr(pool_mod, "barrier_status", lambda: missing)
    monkeypatch.setattr(oslock, "barrier_status", lambda: missing)


def test_untrusted_skills_refused_on_a_host_without_barriers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from vak.errors import OSSandboxUnavailableError

    _degraded(monkeypatch)
    with worker_pool(probe=True) as p, pytest.raises(OSSandboxUnavailableError) as info:
        p.register(DIGEST, b"")
    assert "allow_unsandboxed" in info.value.message
    report = oslock.sandbox_report(allow_unsandboxed=False)
    assert report["degraded"] and report["untrusted"] == "refused"
    assert report["missing"] == ["seccomp", "landlock_fs"]


def test_operator_may_opt_out_of_the_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    _degraded(monkeypatch)
    with worker_pool(probe=True, pool_size=1, allow_unsandboxed=True) as p:
        p.register(DIGEST, b"")
        p.wait_ready(DIGEST)
        assert call(p, "echo", 3) == b"3"
    assert oslock.sandbox_report(allow_unsandboxed=True)["untrusted"] == "unsandboxed"


def test_sandbox_report_on_this_host() -> None:
    report = oslock.sandbox_report(allow_unsandboxed=False)
    assert report["degraded"] is (not oslock.barrier_status().complete)
    assert report["untrusted"] in ("sandboxed", "refused")
