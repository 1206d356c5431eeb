"""The version floor: the highest version of each skill, per signer, ever loaded.

A signer's old release stays validly signed forever, so a signature alone
cannot stop a rollback to a version with a known hole. The kernel therefore
keeps, in its state directory, the highest version it has loaded for each
``(skill name, signer key id)`` and refuses a lower one
(:class:`~vak.errors.SkillDowngradeError`) unless the operator sets
``allow_downgrade``. The floor only ever rises: loading an older version with
downgrades allowed does not lower it.

Example::

    >>> floor = VersionFloor.open(Path(".vak") / "version-floor.json")   # doctest: +SKIP
    >>> floor.check(verified.ref)       # raises SkillDowngradeError     # doctest: +SKIP
    >>> floor.record(verified.ref)                                       # doctest: +SKIP

File (JSON, written by the kernel only)::

    {"format": "vak-version-floor/1",
     "skills": {"calculator": {"ed25519:0123...": "1.4.0"}}}

Invariants: every update is a read-modify-write under an exclusive lock
(``<file>.lock``), written to a temporary file, fsynced and renamed over the
old one, so a crash leaves the old record or the new one, never a torn file,
and kernels sharing a state directory never lose each other's updates. A
file that is not exactly this format (wrong types, unknown fields, duplicate
keys, a bad name, signer or version, too large, too deep) is refused with a
:class:`~vak.errors.ConfigError` naming the file and field: downgrade
protection fails closed, it never silently restarts from nothing. Unsigned
development skills (signer ``""``) have no identity to protect and are not
recorded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from vak.errors import ConfigError, SkillDowngradeError
from vak.identity.keyfile import file_lock, write_file_atomic
from vak.identity.ref import SkillRef
from vak.identity.semver import Version
from vak.identity.text import excerpt

__all__ = ["FLOOR_FORMAT", "MAX_FLOOR_BYTES", "VERSION_FLOOR_FILE", "VersionFloor"]

#: the record's file name inside the kernel's state directory
VERSION_FLOOR_FILE = "version-floor.json"
FLOOR_FORMAT = "vak-version-floor/1"
MAX_FLOOR_BYTES = 4 << 20
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,30}")
_SIGNER = re.compile(r"ed25519:[0-9a-f]{32}")
_Floors = dict[str, dict[str, str]]


class VersionFloor:
    """The version-floor record at one path (see the module docstring)."""

    __slots__ = ("path",)

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def open(cls, path: str | Path) -> VersionFloor:
        """The record at ``path``, checked now so a damaged file stops the kernel at start.

        Raises:
            ConfigError: the file exists but is not a valid record.
        """
        floor = cls(Path(path))
        floor.floors()
        return floor

    def floors(self) -> _Floors:
        """``{skill: {signer: version}}`` as recorded (empty when there is no file yet).

        Raises:
            ConfigError: the file is unreadable or not a valid record.
        """
        return _parse(self._read(), str(self.path))

    def check(self, ref: SkillRef, *, skill_dir: str = "") -> None:
        """Refuse ``ref`` if its version is below the floor of its name and signer.

        Raises:
            SkillDowngradeError: a higher version was loaded before.
            ConfigError: the record is damaged.
        """
        if not ref.signer:
            return
        recorded = self.floors().get(ref.id, {}).get(ref.signer)
        if recorded is None or Version.parse(ref.version) >= Version.parse(recorded):
            return
        where = f"{skill_dir}: " if skill_dir else ""
        raise SkillDowngradeError(
            f"{where}skill {ref.id!r} version {ref.version} is lower than version {recorded} "
            f"already loaded from signer {ref.signer} (recorded in {self.path})",
            skill=ref.id, version=ref.version, recorded_version=recorded, signer=ref.signer,
            file=str(self.path),
            fix=f"load {ref.id} {recorded} or later; to roll back on purpose set "
            "allow_downgrade = true in vak.toml for this load",
        )

    def record(self, ref: SkillRef) -> None:
        """Raise the floor of ``ref``'s name and signer to its version (never lower it).

        Raises:
            ConfigError: the record is damaged or cannot be written.
        """
        if not ref.signer:
            return
        version = Version.parse(ref.version)
        with file_lock(self.path, "version floor"):
            floors = self.floors()
            current = floors.get(ref.id, {}).get(ref.signer)
            if current is not None and Version.parse(current) >= version:
                return
            floors.setdefault(ref.id, {})[ref.signer] = ref.version
            self._write(floors)

    # ------------------------------------------------------------------ file
    def _read(self) -> bytes | None:
        try:
            with self.path.open("rb") as fh:
                data = fh.read(MAX_FLOOR_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read the version floor: {exc.strerror}",
                              file=str(self.path)) from None
        if len(data) > MAX_FLOOR_BYTES:
            raise _damaged(str(self.path), "$", f"larger than {MAX_FLOOR_BYTES} bytes")
        return data

    def _write(self, floors: _Floors) -> None:
        doc = {"format": FLOOR_FORMAT,
               "skills": {name: dict(sorted(by.items())) for name, by in sorted(floors.items())}}
        try:
            write_file_atomic(self.path, (json.dumps(doc, indent=1) + "\n").encode(), mode=0o600)
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot write the version floor: {exc.strerror}",
                              file=str(self.path)) from None


def _damaged(source: str, fld: str, what: str) -> ConfigError:
    return ConfigError(
        f"{source}: {fld}: {what}; the version floor is damaged or was edited",
        file=source, field=fld,
        valid=f'{{"format": "{FLOOR_FORMAT}", "skills": {{NAME: {{SIGNER: VERSION}}}}}}',
        fix="restore the file from a backup; deleting it resets downgrade protection for "
        "every skill",
    )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key[:40]!r}")
        out[key] = value
    return out


def _parse(data: bytes | None, source: str) -> _Floors:
    if data is None:
        return {}
    try:
        doc = json.loads(data, object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise _damaged(source, "$", f"not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(doc, dict) or set(doc) != {"format", "skills"}:
        raise _damaged(source, "$", "expected exactly the fields 'format' and 'skills'")
    if doc["format"] != FLOOR_FORMAT:
        raise _damaged(source, "format", f"expected {FLOOR_FORMAT!r}")
    skills = doc["skills"]
    if not isinstance(skills, dict):
        raise _damaged(source, "skills", "expected a mapping of skill names")
    return {name: _parse_skill(name, by_signer, source) for name, by_signer in skills.items()}


def _parse_skill(name: str, by_signer: Any, source: str) -> dict[str, str]:
    """One skill's ``{signer: version}``, every key and value checked."""
    if not _NAME.fullmatch(name):
        raise _damaged(source, "skills", f"{excerpt(name, limit=40)} is not a skill name")
    if not isinstance(by_signer, dict):
        raise _damaged(source, f"skills.{name}", "expected a mapping of signer key ids")
    for signer, version in by_signer.items():
        fld = f"skills.{name}.{excerpt(signer, quote=False, limit=48)}"
        if not _SIGNER.fullmatch(signer):
            raise _damaged(source, fld, "not a key id (ed25519:<32 hex digits>)")
        if not isinstance(version, str):
            raise _damaged(source, fld, "expected a version string")
        try:
            Version.parse(version)
        except ValueError:
            raise _damaged(source, fld,
                           f"{excerpt(version, limit=40)} is not a semantic version") from None
    return dict(by_signer)
