"""The compiled-module cache: private dir, keyed digests, restart without recompiling."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
from sandbox_helpers import HOST_NAMES, load_skill, no_host, small_settings

from vak.sandbox.cache import ModuleCache
from vak.sandbox.engine import Engine

D = "ab" * 32


def test_roundtrip_and_private_modes(tmp_path: Path) -> None:
    cache = ModuleCache(tmp_path / "c", "fp")
    assert cache.enabled
    cache.store(D, b"compiled bytes")
    assert cache.load(D) == b"compiled bytes"
    assert (tmp_path / "c").stat().st_mode & 0o777 == 0o700
    for entry in (tmp_path / "c").iterdir():
        assert entry.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("offset", [0, 5, 31, 32, 40, -1], ids=lambda o: f"byte{o}")
def test_tampered_entry_is_refused_and_removed(tmp_path: Path, offset: int) -> None:
    cache = ModuleCache(tmp_path / "c", "fp")
    cache.store(D, b"compiled bytes here")
    (entry,) = (tmp_path / "c").glob("*.cwasm")
    blob = bytearray(entry.read_bytes())
    blob[offset] ^= 1
    entry.write_bytes(bytes(blob))
    assert cache.load(D) is None
    assert not entry.exists()


def test_other_fingerprint_or_key_misses(tmp_path: Path) -> None:
    ModuleCache(tmp_path / "c", "fp1").store(D, b"x")
    assert ModuleCache(tmp_path / "c", "fp2").load(D) is None
    (tmp_path / "c" / "cache.key").write_bytes(os.urandom(32))
    assert ModuleCache(tmp_path / "c", "fp1").load(D) is None


def test_world_readable_dir_disables_cache(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir(mode=0o755)
    os.chmod(tmp_path / "c", 0o755)
    cache = ModuleCache(tmp_path / "c", "fp")
    assert not cache.enabled
    cache.store(D, b"x")
    assert cache.load(D) is None


def test_engine_restart_loads_from_cache(tmp_path: Path, built_skills: Path) -> None:
    for expect_cached in (False, True):
        with Engine(small_settings(tmp_path), HOST_NAMES) as eng:
            digest, limits = load_skill(eng, built_skills / "calculator")
            assert eng.compiled(digest).from_cache is expect_cached
            out = eng.call(digest, "execute", b'{"operation":"add","a":1,"b":2}', limits, no_host)
            assert orjson.loads(out.output) == {"result": 3}


def test_cache_can_be_turned_off(tmp_path: Path, built_skills: Path) -> None:
    for _ in range(2):
        with Engine(small_settings(tmp_path, module_cache=False), HOST_NAMES) as eng:
            assert not eng.cache_enabled
            digest, _ = load_skill(eng, built_skills / "calculator")
            assert eng.compiled(digest).from_cache is False
    assert not (tmp_path / "cache").exists()
