"""The trust store: which signing keys the operator trusts, and how far.

Example::

    >>> trust = TrustStore.load("trust.yaml")                       # doctest: +SKIP
    >>> trust.lookup("ed25519:0123...").tier                        # doctest: +SKIP
    <Tier.TRUSTED: 'trusted'>

File format (YAML; documented in docs/MANIFEST.md)::

    keys:
      - key: "vak-ed25519 3q2+7w...= ci-signer"     # or "ssh-ed25519 AAAA... alice@host"
        tier: trusted                               # or: untrusted
        skills: [calculator, notes]                 # optional: only these skill names
        comment: CI release key                     # optional
        expires: "2027-01-01T00:00:00Z"             # optional, RFC 3339
        revoked: false                              # optional

Invariants: a key appears at most once; ``lookup`` raises for an unknown key
(a verifier never returns "not found" for a caller to forget);
:meth:`TrustedKey.authorize` raises for a revoked or expired key or a skill
name the key may not sign. ``untrusted`` keys are *allowed*, but the kernel
runs their skills in the OS-sandboxed worker.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nacl.signing import VerifyKey

from vak.errors import ConfigError, KeyFileError, ManifestError, UntrustedSignerError
from vak.identity.keys import parse_public_key, public_key_id
from vak.identity.manifest import load_yaml_mapping

__all__ = ["Tier", "TrustStore", "TrustedKey"]

_MAX_TRUST_FILE_BYTES = 4 << 20
_ENTRY_FIELDS = ("key", "tier", "skills", "comment", "expires", "revoked")


class Tier(enum.StrEnum):
    """How much a signer is trusted; decides where its skills run."""

    #: skills run in-process in the kernel's wasmtime engine
    TRUSTED = "trusted"
    #: allowed, but skills run in the OS-sandboxed worker process
    UNTRUSTED = "untrusted"


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """One trust-store entry."""

    key_id: str
    verify_key: VerifyKey
    tier: Tier = Tier.TRUSTED
    #: skill names this key may sign; None = any skill
    skills: frozenset[str] | None = None
    comment: str = ""
    expires: datetime | None = None
    revoked: bool = False

    def authorize(self, skill_name: str, now: datetime | None = None) -> None:
        """Check that this key may vouch for ``skill_name`` at ``now``.

        Raises:
            UntrustedSignerError: the key is revoked, expired, or not allowed
                to sign ``skill_name``.
        """
        now = now or datetime.now(UTC)
        if self.revoked:
            raise UntrustedSignerError(
                f"signer {self.key_id} is revoked in the trust store", key_id=self.key_id,
                skill=skill_name, fix="re-sign the skill with a key that is not revoked",
            )
        if self.expires is not None and now >= self.expires:
            raise UntrustedSignerError(
                f"signer {self.key_id} expired at {self.expires.isoformat()}",
                key_id=self.key_id, skill=skill_name,
                fix="re-sign with a current key or extend 'expires' in the trust store",
            )
        if self.skills is not None and skill_name not in self.skills:
            raise UntrustedSignerError(
                f"signer {self.key_id} may not sign skill {skill_name!r} "
                f"(allowed: {', '.join(sorted(self.skills)) or 'none'})",
                key_id=self.key_id, skill=skill_name,
                fix="add the skill name to the key's 'skills' list in the trust store",
            )


class TrustStore:
    """An immutable map from key id to :class:`TrustedKey`."""

    __slots__ = ("_keys", "source")

    def __init__(self, keys: Iterable[TrustedKey], source: str = "<trust store>") -> None:
        """Build from entries.

        Raises:
            ConfigError: the same key appears twice.
        """
        self.source = source
        self._keys: dict[str, TrustedKey] = {}
        for entry in keys:
            if entry.key_id in self._keys:
                raise ConfigError(
                    f"{source}: key {entry.key_id} is listed twice", file=source,
                    fix="merge the two entries into one",
                )
            self._keys[entry.key_id] = entry

    @classmethod
    def from_keys(
        cls,
        *keys: VerifyKey | TrustedKey,
        tier: Tier = Tier.TRUSTED,
        skills: Iterable[str] | None = None,
    ) -> TrustStore:
        """A store of the given keys (e.g. ``--key KEY.pub``), all at ``tier``."""
        allowed = frozenset(skills) if skills is not None else None
        entries = [
            k if isinstance(k, TrustedKey)
            else TrustedKey(public_key_id(k), k, tier=tier, skills=allowed)
            for k in keys
        ]
        return cls(entries, source="<keys>")

    @classmethod
    def load(cls, path: str | Path) -> TrustStore:
        """Load a trust store YAML file.

        Raises:
            ConfigError: missing or unreadable file, invalid YAML, unknown
                fields, bad values (the message names the entry and field).
        """
        path = Path(path)
        source = str(path)
        try:
            with path.open("rb") as fh:
                data = fh.read(_MAX_TRUST_FILE_BYTES + 1)
        except FileNotFoundError:
            raise ConfigError(
                f"{source}: trust store not found", file=source,
                fix="create it (see docs/MANIFEST.md, 'Trust store') or pass --key KEY.pub",
            ) from None
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read: {exc.strerror}", file=source) from None
        if len(data) > _MAX_TRUST_FILE_BYTES:
            raise ConfigError(f"{source}: trust store too large", file=source)
        try:
            doc = load_yaml_mapping(data, source)
        except ManifestError as exc:  # the shared strict YAML loader's error
            raise ConfigError(exc.message, file=source, fix=exc.details.get("fix")) from None
        return cls.from_mapping(doc, source)

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any], source: str = "<trust store>") -> TrustStore:
        """Build from a parsed trust store document (see the module docstring).

        Raises:
            ConfigError: as for :meth:`load`.
        """
        extra = sorted(set(doc) - {"keys"})
        if extra:
            raise ConfigError(
                f"{source}: unknown field {extra[0]!r}", file=source, field=extra[0],
                valid="one top-level field: keys",
            )
        entries = doc.get("keys")
        if not isinstance(entries, list):
            raise ConfigError(
                f"{source}: keys: expected a list of key entries", file=source, field="keys",
            )
        return cls([_parse_entry(e, f"keys[{i}]", source) for i, e in enumerate(entries)], source)

    def lookup(self, key_id: str) -> TrustedKey:
        """The entry for ``key_id``.

        Raises:
            UntrustedSignerError: no such key in the store.
        """
        try:
            return self._keys[key_id]
        except KeyError:
            raise UntrustedSignerError(
                f"signer {key_id} is not in the trust store ({self.source})",
                key_id=key_id, trust_store=self.source,
                fix="add the signer's public key to the trust store (or pass --key KEY.pub)"
                " if you trust it, or re-sign the skill with a trusted key",
            ) from None

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def keys(self) -> tuple[TrustedKey, ...]:
        """Every entry, in file order."""
        return tuple(self._keys.values())


def _bad(source: str, fld: str, what: str, valid: str) -> ConfigError:
    return ConfigError(f"{source}: {fld}: {what}; valid: {valid}", file=source, field=fld,
                       valid=valid)


def _parse_entry(entry: Any, where: str, source: str) -> TrustedKey:
    if not isinstance(entry, dict):
        raise _bad(source, where, "expected a mapping", "a mapping with 'key' and 'tier'")
    for name in entry:
        if name not in _ENTRY_FIELDS:
            raise _bad(source, f"{where}.{name}", "unknown field", ", ".join(_ENTRY_FIELDS))
    if not isinstance(entry.get("key"), str):
        raise _bad(source, f"{where}.key", "missing or not a string",
                   "a 'vak-ed25519 ...' or 'ssh-ed25519 AAAA...' public key line")
    try:
        verify_key = parse_public_key(entry["key"], f"{source}: {where}.key")
    except KeyFileError as exc:
        raise ConfigError(exc.message, file=source, field=f"{where}.key",
                          valid=exc.details.get("valid")) from None
    tier_name = entry.get("tier")
    try:
        tier = Tier(tier_name)
    except ValueError:
        raise _bad(source, f"{where}.tier", f"{tier_name!r} is not a tier",
                   "trusted or untrusted") from None
    skills = entry.get("skills")
    if skills is not None and (
        not isinstance(skills, list) or not all(isinstance(s, str) for s in skills)
    ):
        raise _bad(source, f"{where}.skills", "expected a list of skill names",
                   "a list such as [calculator, notes]")
    comment = entry.get("comment", "")
    if not isinstance(comment, str):
        raise _bad(source, f"{where}.comment", "expected a string", "any text")
    revoked = entry.get("revoked", False)
    if not isinstance(revoked, bool):
        raise _bad(source, f"{where}.revoked", "expected true or false", "true or false")
    return TrustedKey(
        key_id=public_key_id(verify_key),
        verify_key=verify_key,
        tier=tier,
        skills=frozenset(skills) if skills is not None else None,
        comment=comment,
        expires=_parse_expires(entry.get("expires"), f"{where}.expires", source),
        revoked=revoked,
    )


def _parse_expires(value: Any, fld: str, source: str) -> datetime | None:
    if value is None:
        return None
    valid = "an RFC 3339 time with a zone, e.g. '2027-01-01T00:00:00Z'"
    if not isinstance(value, str):
        raise _bad(source, fld, "expected a string", valid)
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise _bad(source, fld, f"{value!r} is not a time", valid) from None
    if parsed.tzinfo is None or "T" not in value.upper():
        raise _bad(source, fld, f"{value!r} has no date-time with a time zone", valid)
    return parsed
