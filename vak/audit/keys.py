"""Log signing keys: private key files, C2SP verifier keys, trust files.

Invariants: a private key file is created on first use with mode 0600 and is
refused if group/other can read it; the key id is the C2SP signed-note key
hash ``SHA-256(name || 0x0A || 0x01 || pubkey)[:4]``; the exported public file
``<key>.pub`` lists every verifier key the log has used, oldest first, so a
verifier holding it can follow rotations.

Example::

    >>> key = generate_private_key()                       # doctest: +SKIP
    >>> vkey = verifier_key("vak.local/kernel", public_bytes(key))   # doctest: +SKIP
"""

from __future__ import annotations

import base64
import contextlib
import os
import stat
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from vak.errors import KeyFileError

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


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A verifier key and what the trust file says about it."""

    name: str
    key_id: bytes
    public: bytes
    revoked: bool = False
    #: RFC 3339; checkpoints stamped later than this are not trusted
    not_after: str | None = None

    @property
    def vkey(self) -> str:
        return verifier_key(self.name, self.public)

    def verify(self, signature: bytes, message: bytes) -> None:
        """Raises ``cryptography.exceptions.InvalidSignature`` when it does not verify."""
        Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)


def key_id(name: str, public: bytes) -> bytes:
    return sha256(name.encode() + b"\n" + _ED25519 + public).digest()[:4]


def verifier_key(name: str, public: bytes) -> str:
    """C2SP note verifier key string ``name+hex(keyid)+base64(0x01||pub)``."""
    encoded = base64.b64encode(_ED25519 + public).decode()
    return f"{name}+{key_id(name, public).hex()}+{encoded}"


def parse_verifier_key(text: str) -> TrustedKey:
    """Parse ``name+keyid+key [revoked] [not-after=RFC3339]``.

    Raises:
        KeyFileError: the string is not a valid Ed25519 verifier key.
    """
    parts = text.split()
    if not parts:
        raise KeyFileError("empty verifier key")
    try:
        name, hexid, b64 = parts[0].split("+", 2)
        raw = base64.b64decode(b64, validate=True)
    except ValueError:
        raise KeyFileError(f"not a verifier key: {parts[0][:80]!r}") from None
    if len(raw) != 33 or raw[:1] != _ED25519:
        raise KeyFileError(f"verifier key {name!r} is not an Ed25519 key")
    if key_id(name, raw[1:]).hex() != hexid:
        raise KeyFileError(f"verifier key {name!r}: key id {hexid} does not match the key")
    revoked, not_after = False, None
    for flag in parts[1:]:
        if flag == "revoked":
            revoked = True
        elif flag.startswith("not-after="):
            not_after = flag.split("=", 1)[1]
        else:
            raise KeyFileError(f"verifier key {name!r}: unknown flag {flag!r}")
    return TrustedKey(name, bytes.fromhex(hexid), raw[1:], revoked, not_after)


def load_trusted_keys(path: str | Path) -> list[TrustedKey]:
    """Read a ``.pub`` or trust file: one verifier key per line, ``#`` comments.

    Raises:
        KeyFileError: unreadable file, bad line (named by number), or no key at all.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read key file: {exc.strerror}",
                           file=str(path)) from None
    keys = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            try:
                keys.append(parse_verifier_key(line))
            except KeyFileError as exc:
                raise KeyFileError(f"{path}:{n}: {exc.message}", file=str(path), line=n) from None
    if not keys:
        raise KeyFileError(f"{path}: no verifier key in file", file=str(path))
    return keys


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_path_for(key_path: str | Path) -> Path:
    key_path = Path(key_path)
    return key_path.with_name(key_path.name + ".pub")


def write_private_file(path: Path, data: bytes, *, exclusive: bool = True) -> None:
    """Create ``path`` with mode 0600 atomically (never world-readable, not even briefly).

    With ``exclusive`` an existing file wins (two processes racing to create the
    key end up sharing one), signalled by ``FileExistsError``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if not exclusive:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    finally:
        os.unlink(tmp)


def _read_private_file(path: Path) -> bytes:
    st = path.stat()
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{path}: private key file is readable by group or others",
            file=str(path), fix=f"chmod 600 {path}",
        )
    return path.read_bytes()


def load_or_create_private_key(path: str | Path) -> Ed25519PrivateKey:
    """The log key at ``path``, generated on first use.

    Raises:
        KeyFileError: the file is too permissive or is not an unencrypted Ed25519 PEM key.
    """
    path = Path(path)
    if not path.exists():
        key = generate_private_key()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        with contextlib.suppress(FileExistsError):
            write_private_file(path, pem)
    try:
        loaded = serialization.load_pem_private_key(_read_private_file(path), password=None)
    except (ValueError, TypeError, OSError) as exc:
        raise KeyFileError(f"{path}: not a usable Ed25519 private key: {exc}",
                           file=str(path)) from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: key is not Ed25519", file=str(path))
    return loaded


def retire_private_key(path: Path, new_key: Ed25519PrivateKey, old_id: bytes) -> None:
    """Keep the old key as ``<key>.retired-<id>`` (0600), then install ``new_key``."""
    os.replace(path, path.with_name(f"{path.name}.retired-{old_id.hex()}"))
    pem = new_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private_file(path, pem, exclusive=False)


def export_public(key_path: Path, vkey: str) -> Path:
    """Append ``vkey`` to ``<key>.pub`` unless present; returns the path."""
    pub = public_path_for(key_path)
    existing = pub.read_text(encoding="utf-8").split() if pub.exists() else []
    if vkey not in existing:
        with pub.open("a", encoding="utf-8") as f:
            f.write(vkey + "\n")
    return pub


def load_or_create_secret(path: str | Path, size: int = 32) -> bytes:
    """A random secret (e.g. the argument HMAC key) in a private file, made on first use.

    Raises:
        KeyFileError: the file is too permissive or too short.
    """
    path = Path(path)
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            write_private_file(path, os.urandom(size))
    data = _read_private_file(path)
    if len(data) < 16:
        raise KeyFileError(f"{path}: secret is shorter than 16 bytes", file=str(path))
    return data
