"""Log signing keys: the log's private key file, C2SP verifier keys, trust files.

The key files themselves are :mod:`vak.identity.keyfile`'s (one story for
every private file: created 0600 atomically, refused when group/other can
read it) and a trusted log key is the one :class:`~vak.identity.trust.TrustedKey`
type, with ``name`` the signed-note key name. This module adds only what is
the log's own: the verifier key strings of C2SP signed notes, whose key id is
``SHA-256(name || 0x0A || 0x01 || pubkey)[:4]``; the exported public file
``<key>.pub``, which lists every verifier key the log has used, oldest first,
so a verifier holding it can follow rotations; and key retirement.

Example::

    >>> key = generate_private_key()                       # doctest: +SKIP
    >>> vkey = verifier_key("vak.local/kernel", public_bytes(key))   # doctest: +SKIP
"""

from __future__ import annotations

import base64
import binascii
import os
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vak.errors import KeyFileError
from vak.identity.keyfile import (
    load_or_create_pem_key,
    load_or_create_secret,
    read_key_file,
    replace_pem_key,
    write_private_file,
)
from vak.identity.keys import VerifyKey, note_key_id, verifier_key
from vak.identity.trust import TrustedKey

__all__ = [
    "TrustedKey",
    "export_public",
    "generate_private_key",
    "key_id",
    "load_or_create_private_key",
    "load_or_create_secret",
    "load_trusted_keys",
    "parse_verifier_key",
    "public_bytes",
    "public_path_for",
    "retire_private_key",
    "verifier_key",
    "write_private_file",
]

_ED25519 = b"\x01"
#: the longest key name a verifier key may carry (C2SP names are short origins)
_MAX_NAME = 256
#: a .pub or trust file lists every key a log has used: room for years of daily rotations
_MAX_KEY_LIST_BYTES = 16 << 20


def key_id(name: str, public: bytes) -> bytes:
    """The 4-byte signed-note key hash (see :func:`vak.identity.keys.note_key_id`)."""
    return note_key_id(name, public)


def _not_after(value: str, name: str) -> datetime:
    """``not-after=`` as an aware time: an RFC 3339 date-time or a date (midnight UTC)."""
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise KeyFileError(
            f"verifier key {name!r}: not-after={value[:40]!r} is not a time",
            valid="not-after=2027-01-01T00:00:00Z (RFC 3339) or not-after=2027-01-01",
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_verifier_key(text: str) -> TrustedKey:
    """Parse ``name+keyid+key [revoked] [not-after=RFC3339]``.

    Raises:
        KeyFileError: the string is not a valid, usable Ed25519 verifier key.
    """
    if not isinstance(text, str):
        raise KeyFileError("a verifier key must be a string")
    parts = text.split()
    if not parts:
        raise KeyFileError("empty verifier key")
    try:
        name, hexid, b64 = parts[0].split("+", 2)
        raw = base64.b64decode(b64, validate=True)
    except (ValueError, binascii.Error):
        raise KeyFileError(f"not a verifier key: {parts[0][:80]!r}") from None
    if not name or len(name) > _MAX_NAME:
        raise KeyFileError(f"verifier key name {name[:80]!r} is empty or too long")
    if len(raw) != 33 or raw[:1] != _ED25519:
        raise KeyFileError(f"verifier key {name!r} is not an Ed25519 key")
    if note_key_id(name, raw[1:]).hex() != hexid:
        raise KeyFileError(f"verifier key {name!r}: key id {hexid[:16]!r} does not match the key")
    try:
        public = VerifyKey(raw[1:])
    except ValueError:
        raise KeyFileError(
            f"verifier key {name!r} is not usable (non-canonical or of small order: a key "
            "that would accept forged signatures)",
        ) from None
    revoked, expires = _flags(parts[1:], name)
    return TrustedKey(public, revoked=revoked, expires=expires, name=name)


def _flags(flags: list[str], name: str) -> tuple[bool, datetime | None]:
    """``revoked`` and ``not-after=`` of a verifier key line."""
    revoked, expires = False, None
    for flag in flags:
        if flag == "revoked":
            revoked = True
        elif flag.startswith("not-after="):
            expires = _not_after(flag.split("=", 1)[1], name)
        else:
            raise KeyFileError(f"verifier key {name!r}: unknown flag {flag[:40]!r}",
                               valid="revoked, not-after=RFC3339")
    return revoked, expires


def load_trusted_keys(path: str | Path) -> list[TrustedKey]:
    """Read a ``.pub`` or trust file: one verifier key per line, ``#`` comments.

    Raises:
        KeyFileError: unreadable file, bad line (named by number), or no key at all.
    """
    path = Path(path)
    try:
        text = read_key_file(path, limit=_MAX_KEY_LIST_BYTES).decode("utf-8")
    except UnicodeDecodeError:
        raise KeyFileError(f"{path}: not UTF-8 text", file=str(path)) from None
    keys = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            try:
                keys.append(parse_verifier_key(line))
            except KeyFileError as exc:
                raise KeyFileError(f"{path}:{n}: {exc.message}", file=str(path), line=n,
                                   valid=exc.details.get("valid")) from None
    if not keys:
        raise KeyFileError(f"{path}: no verifier key in file", file=str(path),
                           fix="point at the log's <key>.pub (written when the log opens)")
    return keys


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_path_for(key_path: str | Path) -> Path:
    key_path = Path(key_path)
    return key_path.with_name(key_path.name + ".pub")


def load_or_create_private_key(path: str | Path) -> Ed25519PrivateKey:
    """The log key at ``path``, generated on first use.

    Raises:
        KeyFileError: the file is too permissive or is not an unencrypted Ed25519 PEM key.
    """
    return load_or_create_pem_key(path)


def retire_private_key(path: Path, new_key: Ed25519PrivateKey, old_id: bytes) -> None:
    """Keep the old key as ``<key>.retired-<id>`` (0600), then install ``new_key``."""
    os.replace(path, path.with_name(f"{path.name}.retired-{old_id.hex()}"))
    replace_pem_key(path, new_key)


def export_public(key_path: Path, vkey: str) -> Path:
    """Append ``vkey`` to ``<key>.pub`` unless present; returns the path."""
    pub = public_path_for(key_path)
    existing = pub.read_text(encoding="utf-8").split() if pub.exists() else []
    if vkey not in existing:
        with pub.open("a", encoding="utf-8") as f:
            f.write(vkey + "\n")
    return pub
