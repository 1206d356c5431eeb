"""The verifier's fast path over byte ranges: any split gives the same tree, any doubt None."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import vak.audit.scan as scan
from vak.audit.log import AuditLog
from vak.audit.merkle import MerkleTree, leaf_hash


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scan")
    log = AuditLog.open(root / "vak.log", key_path=root / "log.key", origin="test.vak/scan")
    for i in range(300):
        log.append("heartbeat", {"i": i})
    log.rotate_key()
    log.close()
    return root / "vak.log"


@pytest.fixture(autouse=True)
def parallel_always(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scan, "PARALLEL_MIN_BYTES", 0)


def _scan(path: Path, origin: str | None = None, workers: int = 1) -> scan.CleanLog | None:
    with path.open("rb") as f:
        return scan.scan_log(f.fileno(), origin, workers)


@pytest.mark.parametrize("workers", [1, 2, 3, 8, 64])
def test_any_number_of_workers_gives_the_same_clean_log(log_path: Path, workers: int) -> None:
    lines = log_path.read_bytes().split(b"\n")[:-1]
    whole = MerkleTree.from_leaves(b"".join(leaf_hash(x) for x in lines))
    clean = _scan(log_path, workers=workers)
    assert clean is not None
    assert clean.size == len(lines) and clean.origin == "test.vak/scan"
    assert clean.last_raw == lines[-1] and clean.nbytes == log_path.stat().st_size
    assert [seq for seq, _ in clean.opened] == [0]
    assert [seq for seq, _, _ in clean.rotations] == [301]
    for size in (0, 1, 255, 256, 257, len(lines)):
        assert clean.tree.root(size) == whole.root(size)


def test_another_origin_or_a_torn_tail_is_not_clean(log_path: Path, tmp_path: Path) -> None:
    assert _scan(log_path, origin="test.vak/other", workers=2) is None
    torn = tmp_path / "torn.log"
    torn.write_bytes(log_path.read_bytes() + b'{"v":1')
    assert _scan(torn, workers=2) is None


def test_a_failing_worker_means_not_clean(log_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    real = scan.scan_range

    def flaky(fd: int, start: int, end: int, origin: str | None) -> scan.RangeScan | None:
        if start:
            os._exit(3)  # a worker dies mid-scan
        return real(fd, start, end, origin)

    monkeypatch.setattr(scan, "scan_range", flaky)
    assert _scan(log_path, workers=2) is None
    assert _scan(log_path, workers=1) is not None


def test_an_empty_log_is_clean_and_empty(tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    clean = _scan(empty, workers=2)
    assert clean is not None and clean.size == 0 and clean.tree.root(0) == MerkleTree().root(0)
