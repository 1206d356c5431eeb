"""The version floor: rollbacks refused, the record only rises, hostile files fail closed."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vak.errors import ConfigError, SkillDowngradeError
from vak.identity.floor import FLOOR_FORMAT, VersionFloor
from vak.identity.ref import SkillRef

SIGNER = "ed25519:" + "ab" * 16
OTHER = "ed25519:" + "cd" * 16


def ref(version: str, name: str = "calc", signer: str = SIGNER) -> SkillRef:
    return SkillRef(name, version, "sha256:" + "0" * 64, signer)


def test_lower_version_is_refused_with_names_versions_and_fix(tmp_path: Path) -> None:
    floor = VersionFloor.open(tmp_path / "floor.json")
    floor.check(ref("1.2.0"))
    floor.record(ref("1.2.0"))
    floor.check(ref("1.2.0"))
    floor.check(ref("1.2.0+other-build"))
    floor.check(ref("1.3.0-rc.1"))
    with pytest.raises(SkillDowngradeError) as info:
        floor.check(ref("1.2.0-rc.9"), skill_dir="skills/calc")
    err = info.value
    assert "skills/calc" in err.message and "'calc'" in err.message
    assert "1.2.0-rc.9" in err.message and "1.2.0 already loaded" in err.message
    assert err.details["recorded_version"] == "1.2.0" and err.details["signer"] == SIGNER
    assert "allow_downgrade" in err.details["fix"]


def test_floor_only_rises_and_is_per_name_and_signer(tmp_path: Path) -> None:
    floor = VersionFloor(tmp_path / "state" / "floor.json")
    floor.record(ref("2.0.0"))
    floor.record(ref("1.0.0"))  # a permitted downgrade does not lower the floor
    floor.record(ref("0.1.0", signer=OTHER))
    floor.record(ref("0.0.1", name="notes"))
    assert floor.floors() == {"calc": {SIGNER: "2.0.0", OTHER: "0.1.0"},
                              "notes": {SIGNER: "0.0.1"}}
    floor.check(ref("0.1.0", signer=OTHER))
    floor.check(ref("1.0.0", name="other"))
    with pytest.raises(SkillDowngradeError):
        floor.check(ref("1.9.9"))
    # a fresh reader sees the same record (it is on disk, not in memory)
    assert VersionFloor.open(floor.path).floors() == floor.floors()


def test_unsigned_skills_are_not_recorded(tmp_path: Path) -> None:
    floor = VersionFloor(tmp_path / "floor.json")
    floor.record(ref("9.0.0", signer=""))
    floor.check(ref("0.0.1", signer=""))
    assert not floor.path.exists()


def _doc(skills: object) -> str:
    return json.dumps({"format": FLOOR_FORMAT, "skills": skills})


HOSTILE = {
    "not-json": ("{", "not valid JSON"),
    "not-utf8": (b"\xff\xfe", "not valid JSON"),
    "list": ("[]", "exactly the fields"),
    "extra-field": (json.dumps({"format": FLOOR_FORMAT, "skills": {}, "x": 1}), "exactly"),
    "wrong-format": (json.dumps({"format": "other/1", "skills": {}}), "format"),
    "skills-list": (_doc([]), "skills"),
    "bad-name": (_doc({"../etc": {}}), "not a skill name"),
    "by-signer-str": (_doc({"calc": "1.0.0"}), "skills.calc"),
    "bad-signer": (_doc({"calc": {"rsa:1": "1.0.0"}}), "not a key id"),
    "version-int": (_doc({"calc": {SIGNER: 1}}), "version string"),
    "version-junk": (_doc({"calc": {SIGNER: "latest"}}), "not a semantic version"),
    "duplicate": (_doc({"calc": {}}).replace('{"calc": {}}', '{"calc": {}, "calc": {}}'),
                  "duplicate"),
    "deep": ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
    "huge": (" " * (5 << 20), "larger than"),
}


@pytest.mark.parametrize(("content", "hint"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_record_fails_closed(tmp_path: Path, content: str | bytes, hint: str) -> None:
    path = tmp_path / "floor.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ConfigError, match=hint) as info:
        VersionFloor.open(path)
    assert info.value.details["file"] == str(path) and "fix" in info.value.details
    floor = VersionFloor(path)
    with pytest.raises(ConfigError):
        floor.check(ref("1.0.0"))
    with pytest.raises(ConfigError):
        floor.record(ref("1.0.0"))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=10,
).map(lambda v: json.dumps({"format": FLOOR_FORMAT, "skills": v}).encode()))
def test_any_content_is_a_record_or_a_config_error(tmp_path_factory: pytest.TempPathFactory,
                                                   data: bytes) -> None:
    path = tmp_path_factory.mktemp("f") / "floor.json"
    path.write_bytes(data)
    try:
        floors = VersionFloor(path).floors()
    except ConfigError:
        return
    assert all(isinstance(v, str) for by in floors.values() for v in by.values())


def test_a_crash_during_write_leaves_the_old_record(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    floor = VersionFloor(tmp_path / "floor.json")
    floor.record(ref("1.0.0"))
    before = floor.path.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError(5, "simulated crash")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(ConfigError, match="cannot write"):
        floor.record(ref("2.0.0"))
    monkeypatch.undo()
    assert floor.path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["floor.json", "floor.json.lock"]


def test_concurrent_writers_lose_no_update(tmp_path: Path) -> None:
    path = tmp_path / "floor.json"
    names = [f"skill-{i}" for i in range(16)]

    def load(name: str) -> None:
        for minor in range(5):
            VersionFloor(path).record(ref(f"1.{minor}.0", name=name))

    threads = [threading.Thread(target=load, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert VersionFloor(path).floors() == {n: {SIGNER: "1.4.0"} for n in names}
