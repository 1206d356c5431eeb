"""The trust store: which Ed25519 keys the operator trusts, and how far.

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
runs their skills in the OS-sandboxed worker: routing asks
``tier is not Tier.TRUSTED``, so no other value can ever run in-process.

:class:`TrustedKey` is the one trusted-key type of VAK: skill signers (from
this file) and audit log keys (from a log's ``.pub`` / trust file, see
:mod:`vak.audit.keys`, where ``name`` is the signed-note key name) alike.
Importing this module loads no YAML or JSON Schema code (the audit verifier
imports it); the YAML loader is imported when a file is read.
"""

from __future__ import annotations

import enum
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vak.errors import ConfigError, KeyFileError, ManifestError, UntrustedSignerError
from vak.identity.keys import VerifyKey, note_key_id, parse_public_key, verifier_key
from vak.identity.text import excerpt

__all__ = [
    "ENTRY_FIELDS", "MAX_TRUST_FILE_BYTES", "Tier", "TrustStore", "TrustedKey", "parse_expires",
    "parse_skills", "read_trust_file",
]

MAX_TRUST_FILE_BYTES = 4 << 20
#: the fields of one entry, in the order they are written
ENTRY_FIELDS = ("key", "tier", "skills", "comment", "expires", "revoked")
#: a skill name (the manifest schema's pattern): anything else can never match a skill
_SKILL_NAME = re.compile(r"[a-z][a-z0-9_-]{0,30}")
_FIX = "see docs/MANIFEST.md, 'Trust store', or rewrite the entry with `vak trust add`"


class Tier(enum.StrEnum):
    """How much a signer is trusted; decides where its skills run.

    The trust file holds the string values; everywhere else it is this enum.
    """

    #: skills run in-process in the kernel's wasmtime engine
    TRUSTED = "trusted"
    #: allowed, but skills run in the OS-sandboxed worker process
    UNTRUSTED = "untrusted"


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """One trusted Ed25519 key and what the operator says about it."""

    verify_key: VerifyKey
    tier: Tier = Tier.TRUSTED
    #: skill names this key may sign; None = any skill
    skills: frozenset[str] | None = None
    comment: str = ""
    #: the key is not trusted at or after this time (timezone-aware)
    expires: datetime | None = None
    revoked: bool = False
    #: signed-note key name (C2SP), set for audit log keys; "" for skill signers
    name: str = ""

    @property
    def key_id(self) -> str:
        """``ed25519:<hex>`` (see :func:`vak.identity.keys.public_key_id`)."""
        return self.verify_key.key_id

    @property
    def public(self) -> bytes:
        """The raw 32-byte public key."""
        return bytes(self.verify_key)

    @property
    def note_key_id(self) -> bytes:
        """The 4-byte signed-note key hash of ``name`` and this key."""
        return note_key_id(self.name, self.public)

    @property
    def vkey(self) -> str:
        """The signed-note verifier key string ``name+hexid+base64``."""
        return verifier_key(self.name, self.public)

    @property
    def not_after(self) -> str | None:
        """``expires`` as RFC 3339 UTC (``...Z``), or None."""
        if self.expires is None:
            return None
        return self.expires.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def verify(self, signature: bytes, message: bytes) -> None:
        """Check an Ed25519 ``signature`` over ``message`` (``cryptography``'s order).

        Raises:
            cryptography.exceptions.InvalidSignature: it does not verify.
        """
        self.verify_key.verify(message, signature)

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
    """An immutable map from key id to :class:`TrustedKey`, in file order."""

    __slots__ = ("_keys", "source")

    def __init__(self, keys: Iterable[TrustedKey], source: str = "<trust store>") -> None:
        """Build from entries.

        Raises:
            ConfigError: the same key appears twice.
        """
        self.source = source
        self._keys: dict[str, TrustedKey] = {}
        for i, entry in enumerate(keys):
            if entry.key_id in self._keys:
                raise ConfigError(
                    f"{source}: keys[{i}]: key {entry.key_id} is listed twice", file=source,
                    field=f"keys[{i}]", fix="merge the two entries into one",
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
            k if isinstance(k, TrustedKey) else TrustedKey(k, tier=tier, skills=allowed)
            for k in keys
        ]
        return cls(entries, source="<keys>")

    @classmethod
    def load(cls, path: str | Path) -> TrustStore:
        """Load a trust store YAML file.

        Raises:
            ConfigError: missing or unreadable file, invalid YAML, unknown
                fields, bad values (the message names the file, entry and field).
        """
        path = Path(path)
        return cls.from_text(read_trust_file(path), str(path))

    @classmethod
    def from_text(cls, data: bytes | str, source: str = "<trust store>") -> TrustStore:
        """Parse the text of a trust store file.

        Raises:
            ConfigError: as for :meth:`load`.
        """
        from vak.identity._yaml import load_yaml_mapping

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
                f"{source}: unknown field {_excerpt(extra[0])}", file=source,
                field=_excerpt(extra[0], quote=False),
                valid="one top-level field: keys", fix="remove it or check the spelling",
            )
        entries = doc.get("keys")
        if not isinstance(entries, list):
            raise ConfigError(
                f"{source}: keys: expected a list of key entries", file=source, field="keys",
                fix="write 'keys:' followed by '- key: ...' entries (or 'keys: []')",
            )
        return cls([_parse_entry(e, f"keys[{i}]", source) for i, e in enumerate(entries)], source)

    def lookup(self, key_id: str) -> TrustedKey:
        """The entry for ``key_id``.

        Raises:
            UntrustedSignerError: no such key in the store.
        """
        try:
            return self._keys[key_id]
        except (KeyError, TypeError):
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

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TrustStore) and self.keys == other.keys

    __hash__ = None  # type: ignore[assignment]

    @property
    def keys(self) -> tuple[TrustedKey, ...]:
        """Every entry, in file order."""
        return tuple(self._keys.values())


def read_trust_file(path: Path) -> bytes:
    """The bytes of a trust store file, bounded.

    Raises:
        ConfigError: missing, unreadable, writable by every user, or larger
            than MAX_TRUST_FILE_BYTES.
    """
    source = str(path)
    try:
        with path.open("rb") as fh:
            if os.fstat(fh.fileno()).st_mode & stat.S_IWOTH:
                # anyone could add a key of their own: the store would vouch for nobody
                raise ConfigError(
                    f"{source}: the trust store is writable by every user", file=source,
                    fix=f"chmod o-w {source}",
                )
            data = fh.read(MAX_TRUST_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(
            f"{source}: trust store not found", file=source,
            fix="create it with `vak trust add KEY.pub --tier trusted` (see docs/MANIFEST.md,"
            " 'Trust store') or pass --key KEY.pub",
        ) from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror}", file=source) from None
    if len(data) > MAX_TRUST_FILE_BYTES:
        raise ConfigError(f"{source}: trust store too large", file=source,
                          valid=f"at most {MAX_TRUST_FILE_BYTES} bytes")
    return data


def _bad(source: str, fld: str, what: str, valid: str) -> ConfigError:
    return ConfigError(f"{source}: {fld}: {what}; valid: {valid}", file=source, field=fld,
                       valid=valid, fix=_FIX)


def _parse_entry(entry: Any, where: str, source: str) -> TrustedKey:
    if not isinstance(entry, dict):
        raise _bad(source, where, "expected a mapping", "a mapping with 'key' and 'tier'")
    for name in entry:
        if name not in ENTRY_FIELDS:
            raise _bad(source, f"{where}.{_excerpt(name, quote=False)}", "unknown field",
                       ", ".join(ENTRY_FIELDS))
    if not isinstance(entry.get("key"), str):
        raise _bad(source, f"{where}.key", "missing or not a string",
                   "a 'vak-ed25519 ...' or 'ssh-ed25519 AAAA...' public key line")
    try:
        verify_key = parse_public_key(entry["key"], f"{source}: {where}.key")
    except KeyFileError as exc:
        raise ConfigError(exc.message, file=source, field=f"{where}.key",
                          valid=exc.details.get("valid"),
                          fix=exc.details.get("fix") or _FIX) from None
    tier_name = entry.get("tier")
    if tier_name not in (Tier.TRUSTED.value, Tier.UNTRUSTED.value):
        raise _bad(source, f"{where}.tier", f"{_excerpt(tier_name)} is not a tier",
                   "trusted or untrusted")
    return TrustedKey(
        verify_key=verify_key,
        tier=Tier(tier_name),
        skills=parse_skills(entry.get("skills"), f"{where}.skills", source),
        comment=_parse_comment(entry.get("comment", ""), f"{where}.comment", source),
        expires=parse_expires(entry.get("expires"), f"{where}.expires", source),
        revoked=_parse_bool(entry.get("revoked", False), f"{where}.revoked", source),
    )


def _excerpt(value: Any, *, quote: bool = True) -> str:
    return excerpt(value, quote=quote, limit=40)


def parse_skills(value: Any, fld: str, source: str) -> frozenset[str] | None:
    """A ``skills`` value: None (any skill) or a list of valid skill names.

    Raises:
        ConfigError: not a list of strings, or a name no manifest can have.
    """
    if value is None:
        return None
    valid = "a list of skill names such as [calculator, notes]"
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise _bad(source, fld, "expected a list of skill names", valid)
    for i, name in enumerate(value):
        if not _SKILL_NAME.fullmatch(name):
            raise _bad(source, f"{fld}[{i}]", f"{_excerpt(name)} is not a skill name",
                       "1-31 characters: a lowercase letter, then a-z, 0-9, '_' or '-'")
    return frozenset(value)


def _parse_comment(value: Any, fld: str, source: str) -> str:
    if not isinstance(value, str):
        raise _bad(source, fld, "expected a string", "any text")
    return value


def _parse_bool(value: Any, fld: str, source: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(source, fld, "expected true or false", "true or false")
    return value


def parse_expires(value: Any, fld: str, source: str) -> datetime | None:
    """An ``expires`` value: an RFC 3339 date-time with a time zone, or None.

    Raises:
        ConfigError: anything else (the message names ``source`` and ``fld``).
    """
    if value is None:
        return None
    valid = "an RFC 3339 time with a zone, e.g. '2027-01-01T00:00:00Z'"
    if not isinstance(value, str):
        raise _bad(source, fld, "expected a string", valid)
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise _bad(source, fld, f"{_excerpt(value)} is not a time", valid) from None
    if parsed.tzinfo is None or "T" not in value.upper():
        raise _bad(source, fld, f"{_excerpt(value)} has no date-time with a time zone", valid)
    return parsed
