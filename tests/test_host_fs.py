"""vak.host._safeopen: symlinks are never followed, with openat2 and with the O_NOFOLLOW walk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vak.host import _safeopen
from vak.host._safeopen import open_beneath
from vak.host.base import HostEffectError


@pytest.fixture(params=["openat2", "nofollow-walk"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "nofollow-walk":
        monkeypatch.setattr(_safeopen, "_openat2_ok", False)
    return str(request.param)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "d").mkdir(parents=True)
    (r / "d" / "f.txt").write_text("ok")
    (tmp_path / "outside.txt").write_text("secret")
    os.symlink(tmp_path / "outside.txt", r / "abs")
    os.symlink("d", r / "inner-dir")
    os.symlink("../outside.txt", r / "d" / "up")
    return r


def test_regular_open(root: Path, mode: str) -> None:
    fd = open_beneath(root, "d/f.txt", os.O_RDONLY)
    try:
        assert os.read(fd, 10) == b"ok"
    finally:
        os.close(fd)


CASES = [
    ("abs", "symlink_refused"),
    ("inner-dir/f.txt", "symlink_refused"),
    ("d/up", "symlink_refused"),
    ("../outside.txt", "outside_root"),
    ("d/missing", "not_found"),
    ("d/f.txt/x", "not_a_directory"),
]


@pytest.mark.parametrize(("rel", "code"), CASES, ids=[c[0] for c in CASES])
def test_refusals(root: Path, mode: str, rel: str, code: str) -> None:
    with pytest.raises(HostEffectError) as err:
        os.close(open_beneath(root, rel, os.O_RDONLY))
    assert err.value.code == code


def test_create_through_dangling_symlink_refused(root: Path, tmp_path: Path, mode: str) -> None:
    os.symlink(tmp_path / "created-outside", root / "dangling")
    with pytest.raises(HostEffectError):
        os.close(open_beneath(root, "dangling", os.O_WRONLY | os.O_CREAT))
    assert not (tmp_path / "created-outside").exists()


def test_nul_refused(root: Path) -> None:
    with pytest.raises(HostEffectError):
        open_beneath(root, "d/f\x00", os.O_RDONLY)
