"""The one writer: I/O errors poison it, flush-before-ack, constant memory, listeners."""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
import tracemalloc
from pathlib import Path

import orjson
import pytest

import vak.audit.log as audit_log
from vak.audit.checkpoint import SignedCheckpoint, read_checkpoints
from vak.audit.keys import load_trusted_keys
from vak.audit.log import AuditLog
from vak.audit.settings import AuditSettings
from vak.audit.verify import Code, verify_log
from vak.errors import AuditError

ORIGIN = "test.vak/writer"


def _settings(root: Path, **kw: object) -> AuditSettings:
    return AuditSettings(root / "vak.log", root / "log.key", root / "args.hmac", origin=ORIGIN,
                         **kw)  # type: ignore[arg-type]


def _verify(root: Path) -> Code:
    return verify_log(root / "vak.log", load_trusted_keys(root / "log.key.pub")).result


def _failing(real: object, fail: threading.Event) -> object:
    def fn(*args: object) -> object:
        if fail.is_set():
            raise OSError(errno.EIO, "injected I/O error")
        return real(*args)  # type: ignore[operator]
    return fn


def test_open_takes_settings_and_the_path_shorthand_is_the_same(tmp_path: Path) -> None:
    log = AuditLog.open(_settings(tmp_path, fsync="batched:5"))
    assert log.settings.fsync == "batched:5" and log.fsync_policy == "batched:5"
    log.close()
    again = AuditLog.open(tmp_path / "vak.log", key_path=tmp_path / "log.key", origin=ORIGIN)
    assert again.settings == _settings(tmp_path)
    again.close()
    with pytest.raises(AuditError, match="no other options"):
        AuditLog.open(_settings(tmp_path), origin="x")
    assert _verify(tmp_path) == Code.OK


@pytest.mark.parametrize("fsync", ["strict", "batched:5"])
def test_failing_fsync_poisons_the_writer_within_a_second(tmp_path: Path, fsync: str,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    log = AuditLog.open(_settings(tmp_path, fsync=fsync))
    fail = threading.Event()
    monkeypatch.setattr(audit_log, "_fsync", _failing(os.fsync, fail))
    log.append("heartbeat", {}, durable=True)
    fail.set()
    errors: list[BaseException] = []
    started = time.monotonic()

    def durable() -> None:
        try:
            log.append("heartbeat", {}, durable=True)
        except AuditError as exc:
            errors.append(exc)

    waiters = [threading.Thread(target=durable) for _ in range(4)]
    for t in waiters:
        t.start()
    for t in waiters:
        t.join(timeout=5)
    assert len(errors) == 4 and time.monotonic() - started < 1.0, errors
    assert all("injected I/O error" in e.message for e in errors)
    assert log.failed
    with pytest.raises(AuditError, match="failed"):
        log.append("heartbeat", {})  # every later append, durable or not
    with pytest.raises(AuditError):
        log.checkpoint()
    log.close()  # releases the files without writing
    fail.clear()
    again = AuditLog.open(_settings(tmp_path, fsync=fsync))  # the lock was released
    again.close()
    assert _verify(tmp_path) == Code.OK


def test_failing_write_poisons_and_the_next_append_raises(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    log = AuditLog.open(_settings(tmp_path, fsync="batched:5"))
    fail = threading.Event()
    monkeypatch.setattr(audit_log, "_write", _failing(os.write, fail))
    fail.set()
    with pytest.raises(AuditError, match="writing audit entries"):
        log.append("heartbeat", {}, flush=True)
    started = time.monotonic()
    with pytest.raises(AuditError):
        log.append("heartbeat", {})
    assert time.monotonic() - started < 1.0
    log.close()


def test_commit_thread_failure_is_not_swallowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    log = AuditLog.open(_settings(tmp_path, fsync="batched:5"))
    fail = threading.Event()
    monkeypatch.setattr(audit_log, "_fsync", _failing(os.fsync, fail))
    fail.set()
    with caplog.at_level(logging.ERROR, logger="vak.audit.log"):
        log.append("heartbeat", {})  # not durable: only the committer sees the failure
        deadline = time.monotonic() + 1.0
        while not log.failed and time.monotonic() < deadline:
            time.sleep(0.01)
    assert log.failed and "injected I/O error" in caplog.text
    with pytest.raises(AuditError):
        log.append("heartbeat", {})
    log.close()


def test_failing_checkpoint_write_poisons(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = AuditLog.open(_settings(tmp_path))
    real = os.write

    def write(fd: int, data: object) -> int:
        if fd == log._ckfd:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)  # type: ignore[arg-type]

    monkeypatch.setattr(audit_log, "_write", write)
    log.append("heartbeat", {})
    with pytest.raises(AuditError, match="No space left"):
        log.checkpoint()
    with pytest.raises(AuditError):
        log.append("heartbeat", {})
    log.close()


def test_flush_hands_the_entry_to_the_os_before_returning(tmp_path: Path) -> None:
    log = AuditLog.open(_settings(tmp_path, fsync="batched:10000"))
    time.sleep(0.05)
    before = (tmp_path / "vak.log").read_bytes()
    ref = log.append("heartbeat", {"n": 1}, flush=True)
    after = (tmp_path / "vak.log").read_bytes()
    lines = after.split(b"\n")[:-1]
    assert len(lines) == ref.seq + 1 and orjson.loads(lines[-1])["n"] == 1
    assert after.startswith(before)
    log.close()


def test_writer_memory_is_flat_and_the_frontier_logarithmic(tmp_path: Path) -> None:
    log = AuditLog.open(_settings(tmp_path, fsync="batched:5"))
    fields = {"invocation": "i", "host_function": "fs_read", "resource": "/w/a",
              "decision": {"effect": "allow"}}

    def burst(n: int) -> None:
        for _ in range(n):
            log.append("host_decision", fields)
        log.checkpoint()

    burst(5_000)
    tracemalloc.start()
    try:
        burst(2_000)
        first, _ = tracemalloc.get_traced_memory()
        burst(60_000)
        second, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 60,000 more entries: an in-memory leaf list would hold 1.9 MiB more; the writer
    # holds its bounded node buffers (at most 128 KiB) and nothing per entry
    assert second - first < 160 * 1024, (first, second)
    assert log.tree_frontier_size <= (log.size).bit_length()
    receipt = log.receipt(17)
    from vak.audit.receipt import verify_receipt

    verify_receipt(receipt, log.public_key_path)
    log.close()
    assert _verify(tmp_path) == Code.OK


def test_checkpoint_listeners_get_every_checkpoint_off_the_append_path(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = AuditLog.open(_settings(tmp_path))
    seen: list[SignedCheckpoint] = []
    threads: set[str] = set()
    got = threading.Event()

    def broken(cp: SignedCheckpoint) -> None:
        raise RuntimeError("listener defect")

    def good(cp: SignedCheckpoint) -> None:
        threads.add(threading.current_thread().name)
        seen.append(cp)
        if cp.checkpoint.size >= 2:
            got.set()

    with caplog.at_level(logging.ERROR, logger="vak.audit.log"):
        log.add_checkpoint_listener(broken)
        log.add_checkpoint_listener(good)
        log.append("heartbeat", {}, durable=True)
        log.checkpoint()
        assert got.wait(5)
    assert "listener defect" in caplog.text  # logged with its traceback, not swallowed
    failures = [r for r in caplog.records if "checkpoint listener" in r.getMessage()]
    assert len(failures) == len(seen)  # each checkpoint reaches each listener once
    assert seen[0].checkpoint.size == 1  # the newest one so far comes first
    assert [c.checkpoint.size for c in seen] == sorted(c.checkpoint.size for c in seen)
    assert threads == {"vak-audit-checkpoints"}
    log.close()


def test_torn_checkpoint_line_is_recovered_and_checkpoints_are_fsynced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(audit_log, "_fsync", lambda fd: (synced.append(fd), real(fd)))
    log = AuditLog.open(_settings(tmp_path))
    ckfd = log._ckfd
    log.close()
    assert ckfd in synced
    ckpt = tmp_path / "vak.log.ckpt"
    with ckpt.open("ab") as f:
        f.write(b'{"note":"test.vak/writer\\n9')  # a crash mid-write
    report = verify_log(tmp_path / "vak.log", load_trusted_keys(tmp_path / "log.key.pub"))
    assert report.result == Code.WARNINGS and "torn final checkpoint line" in report.render()
    AuditLog.open(_settings(tmp_path)).close()
    assert all(raw.endswith("\n") for _, _, raw in read_checkpoints(ckpt))
    entries = [orjson.loads(x) for x in (tmp_path / "vak.log").read_bytes().splitlines()]
    rec = [e for e in entries if e["kind"] == "recovered"]
    assert rec and rec[0]["file"] == "checkpoint" and rec[0]["dropped_bytes"] == 27
    assert _verify(tmp_path) == Code.OK


def test_failing_lock_poisons_a_multiprocess_writer(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl

    log = AuditLog.open(_settings(tmp_path, multiprocess=True))
    real = fcntl.flock

    def flock(fd: int, op: int) -> None:
        if fd == log._lockfd and op == fcntl.LOCK_EX:
            raise OSError(errno.ENOLCK, "No locks available")
        real(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock)
    with pytest.raises(AuditError, match="locking the log"):
        log.append("heartbeat", {})
    with pytest.raises(AuditError, match="No locks available"):
        log.append("heartbeat", {}, durable=True)
    monkeypatch.undo()
    log.close()
    assert _verify(tmp_path) == Code.OK
