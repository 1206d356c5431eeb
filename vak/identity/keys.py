"""Ed25519 keys for skill signing: key types, key ids and key files (``cryptography``).

Example::

    >>> key_id = generate_key_file("signer.key")                 # doctest: +SKIP
    >>> sk = load_signing_key("signer.key")                       # doctest: +SKIP
    >>> vk = load_public_key("signer.key.pub")                    # doctest: +SKIP
    >>> public_key_id(vk) == key_id                               # doctest: +SKIP
    True
    >>> vk.verify(b"message", sk.sign(b"message"))                # doctest: +SKIP

Formats (documented in docs/MANIFEST.md; unchanged since the PyNaCl days, as
the known answers in ``tests/vectors/identity/`` prove):

* **Private key** (``KEY``, mode 0600): a JSON object, ``format`` =
  ``"vak-ed25519-private-key/1"``, with the ``key_id``, the base64 ``public_key``
  and either ``seed`` (base64 of the 32-byte Ed25519 seed, unencrypted) or
  ``encrypted`` (argon2id KDF parameters + an XSalsa20-Poly1305 secretbox
  of the seed, see :mod:`vak.identity._secretbox`). An unencrypted OpenSSH
  ed25519 private key (``ssh-keygen -t ed25519 -N ''``) is accepted too.
* **Public key** (``KEY.pub``): one line ``vak-ed25519 <base64 raw key> [comment]``;
  an OpenSSH line ``ssh-ed25519 AAAA... [comment]`` is accepted wherever a
  public key is read.
* **Key id**: ``"ed25519:" + sha256(raw 32-byte public key).hexdigest()[:32]``,
  so the same key has the same id whatever file format carries it.
* **Signed-note verifier key** (the audit log's ``.pub`` lines, C2SP
  signed-note): ``name+hex(keyhash)+base64(0x01 || key)`` where the key hash
  is ``SHA-256(name || 0x0A || 0x01 || key)[:4]``.

Invariants: a :class:`VerifyKey` is never a non-canonical or small-order point
(:mod:`vak.identity._ed25519`), so no key admits a signature valid for every
message; ``verify`` raises, never returns a bool; the private key file never
holds the passphrase; errors never echo key bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from vak.errors import KeyFileError
from vak.identity import _secretbox
from vak.identity._ed25519 import is_weak_public_key
from vak.identity.keyfile import read_key_file, write_private_file

__all__ = [
    "PRIVATE_KEY_FORMAT",
    "PUBLIC_KEY_PREFIX",
    "SigningKey",
    "VerifyKey",
    "format_public_key",
    "generate_key_file",
    "load_public_key",
    "load_signing_key",
    "note_key_id",
    "parse_public_key",
    "public_key_id",
    "verifier_key",
]

PRIVATE_KEY_FORMAT = "vak-ed25519-private-key/1"
PUBLIC_KEY_PREFIX = "vak-ed25519"
_SSH_PREFIX = "ssh-ed25519"
_OPENSSH_PRIVATE = b"-----BEGIN OPENSSH PRIVATE KEY-----"
#: the signed-note algorithm byte of Ed25519
_NOTE_ED25519 = b"\x01"
_KDF = "argon2id"
_CIPHER = "xsalsa20poly1305"
#: refuse KDF parameters above these when loading (a key file must not DoS the loader)
_MAX_MEMLIMIT = 1 << 30
_MAX_OPSLIMIT = 64


class VerifyKey:
    """An Ed25519 public key that can bind a signer (checked when built).

    Raises (from the constructor):
        ValueError: not 32 bytes, not a canonical point, or a point of small order.
    """

    __slots__ = ("_key", "_raw")

    def __init__(self, raw: bytes) -> None:
        raw = bytes(raw)
        if is_weak_public_key(raw):
            raise ValueError("not a usable Ed25519 public key (wrong size, "
                             "non-canonical, or of small order)")
        self._raw = raw
        self._key = Ed25519PublicKey.from_public_bytes(raw)

    def __bytes__(self) -> bytes:
        return self._raw

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"VerifyKey({public_key_id(self)})"

    @property
    def key_id(self) -> str:
        """See :func:`public_key_id`."""
        return public_key_id(self)

    def verify(self, message: bytes, signature: bytes) -> None:
        """Check ``signature`` (64 bytes) over ``message`` (PyNaCl's argument order).

        Raises:
            cryptography.exceptions.InvalidSignature: it does not verify.
        """
        self._key.verify(signature, message)


class SigningKey:
    """An Ed25519 private key (its 32-byte seed); signatures are deterministic."""

    __slots__ = ("_key", "verify_key")

    def __init__(self, seed: bytes) -> None:
        seed = bytes(seed)
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        raw = self._key.public_key().public_bytes(serialization.Encoding.Raw,
                                                  serialization.PublicFormat.Raw)
        self.verify_key = VerifyKey(raw)

    @classmethod
    def generate(cls) -> SigningKey:
        """A new random key."""
        return cls(os.urandom(32))

    def __bytes__(self) -> bytes:
        return self._key.private_bytes_raw()

    def __repr__(self) -> str:
        return f"SigningKey({public_key_id(self.verify_key)})"

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._key.sign(message)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str, source: str, size: int | None = None) -> bytes:
    try:
        if not isinstance(text, str):
            raise ValueError
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise KeyFileError(f"{source}: {what} is not valid base64", file=source,
                           field=what) from None
    if size is not None and len(raw) != size:
        raise KeyFileError(
            f"{source}: {what} must be {size} bytes, got {len(raw)}", file=source, field=what,
        )
    return raw


def _verify_key(raw: bytes, source: str) -> VerifyKey:
    try:
        return VerifyKey(raw)
    except ValueError:
        raise KeyFileError(
            f"{source}: the public key is not usable (non-canonical or of small order: "
            "a key that would accept forged signatures)", file=source,
            fix="use a key made by vak-skill-sign keygen or ssh-keygen -t ed25519",
        ) from None


def public_key_id(key: VerifyKey) -> str:
    """The stable key id of an Ed25519 public key (see the module docstring)."""
    return "ed25519:" + hashlib.sha256(bytes(key)).hexdigest()[:32]


def note_key_id(name: str, public: bytes) -> bytes:
    """The 4-byte C2SP signed-note key hash of the Ed25519 key ``public`` named ``name``."""
    return hashlib.sha256(name.encode() + b"\n" + _NOTE_ED25519 + public).digest()[:4]


def verifier_key(name: str, public: bytes) -> str:
    """The C2SP signed-note verifier key string ``name+hex(keyhash)+base64(0x01||key)``."""
    encoded = _b64(_NOTE_ED25519 + public)
    return f"{name}+{note_key_id(name, public).hex()}+{encoded}"


def format_public_key(key: VerifyKey, comment: str = "") -> str:
    """The ``KEY.pub`` line for ``key`` (``vak-ed25519 <base64> [comment]``)."""
    line = f"{PUBLIC_KEY_PREFIX} {_b64(bytes(key))}"
    return f"{line} {comment}".rstrip() if comment else line


def parse_public_key(text: str, source: str = "<public key>") -> VerifyKey:
    """Parse a ``vak-ed25519`` or ``ssh-ed25519`` public key line.

    Raises:
        KeyFileError: the line is neither format or the key bytes are invalid.
    """
    parts = text.strip().split(None, 2)
    if len(parts) < 2 or parts[0] not in (PUBLIC_KEY_PREFIX, _SSH_PREFIX):
        raise KeyFileError(
            f"{source}: not an Ed25519 public key",
            file=source,
            valid=f"'{PUBLIC_KEY_PREFIX} <base64> [comment]' (a KEY.pub from vak-skill-sign "
            f"keygen) or '{_SSH_PREFIX} AAAA... [comment]' (an OpenSSH .pub line)",
        )
    if parts[0] == PUBLIC_KEY_PREFIX:
        return _verify_key(_unb64(parts[1], "public key", source, 32), source)
    _unb64(parts[1], "OpenSSH key blob", source)
    try:
        loaded = serialization.load_ssh_public_key(f"{_SSH_PREFIX} {parts[1]}".encode())
    except (ValueError, TypeError, UnsupportedAlgorithm):
        loaded = None
    if not isinstance(loaded, Ed25519PublicKey):
        raise KeyFileError(f"{source}: invalid ssh-ed25519 key blob", file=source)
    raw = loaded.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _verify_key(raw, source)


def load_public_key(path: str | Path) -> VerifyKey:
    """Read a public key file (``KEY.pub`` or an OpenSSH ``id_ed25519.pub``).

    A private key file (either format) is accepted too and its public half used.

    Raises:
        KeyFileError: unreadable, or not an Ed25519 public key.
    """
    path = Path(path)
    data = read_key_file(path)
    text = data.decode("utf-8", "replace").strip()
    if text.startswith("{"):
        doc = _parse_private_json(data, str(path))
        return _verify_key(_unb64(doc.get("public_key"), "public_key", str(path), 32), str(path))
    if text.encode().startswith(_OPENSSH_PRIVATE):
        return load_signing_key(path).verify_key
    return parse_public_key(text, str(path))


def _parse_private_json(data: bytes, source: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        doc = None
    if not isinstance(doc, dict) or doc.get("format") != PRIVATE_KEY_FORMAT:
        raise KeyFileError(
            f"{source}: not a VAK private key file", file=source,
            valid=f"a JSON key file with format {PRIVATE_KEY_FORMAT!r} "
            "(vak-skill-sign keygen) or an OpenSSH ed25519 private key",
        )
    return doc


def _decrypt_seed(doc: dict[str, Any], passphrase: bytes | None, source: str) -> bytes:
    enc = doc["encrypted"]
    if not isinstance(enc, dict) or enc.get("kdf") != _KDF or enc.get("cipher") != _CIPHER:
        raise KeyFileError(
            f"{source}: unsupported key encryption", file=source, field="encrypted",
            valid=f"kdf {_KDF!r} with cipher {_CIPHER!r}",
        )
    if passphrase is None:
        raise KeyFileError(
            f"{source}: the private key is passphrase-encrypted", file=source,
            fix="pass --passphrase-file FILE or --passphrase-env VAR",
        )
    ops, mem = enc.get("opslimit"), enc.get("memlimit")
    if (
        type(ops) is not int or type(mem) is not int
        or not _secretbox.OPSLIMIT_MIN <= ops <= _MAX_OPSLIMIT
        or not _secretbox.MEMLIMIT_MIN <= mem <= _MAX_MEMLIMIT
    ):
        raise KeyFileError(
            f"{source}: KDF parameters out of range", file=source, field="encrypted",
            valid=f"opslimit {_secretbox.OPSLIMIT_MIN}..{_MAX_OPSLIMIT}, memlimit "
            f"{_secretbox.MEMLIMIT_MIN}..{_MAX_MEMLIMIT}",
        )
    salt = _unb64(enc.get("salt"), "encrypted.salt", source, _secretbox.SALT_BYTES)
    box = _unb64(enc.get("ciphertext"), "encrypted.ciphertext", source)
    key = _secretbox.derive_key(passphrase, salt, ops, mem)
    try:
        return _secretbox.open_box(key, box)
    except _secretbox.BoxError:
        raise KeyFileError(
            f"{source}: wrong passphrase (or the key file is damaged)", file=source,
            fix="check the passphrase file or environment variable",
        ) from None


def load_signing_key(path: str | Path, passphrase: bytes | None = None) -> SigningKey:
    """Load a private key: VAK JSON (optionally encrypted) or OpenSSH ed25519.

    Raises:
        KeyFileError: unreadable, unknown format, not Ed25519, wrong or missing
            passphrase, or a stored public key that does not match the seed.
    """
    path = Path(path)
    source = str(path)
    data = read_key_file(path)
    if data.lstrip().startswith(_OPENSSH_PRIVATE):
        return _load_openssh(data, passphrase, source)
    doc = _parse_private_json(data, source)
    if "encrypted" in doc:
        seed = _decrypt_seed(doc, passphrase, source)
    else:
        seed = _unb64(doc.get("seed"), "seed", source, 32)
    if len(seed) != 32:
        raise KeyFileError(f"{source}: decrypted seed has the wrong length", file=source)
    key = SigningKey(seed)
    stored = doc.get("public_key")
    if stored is not None and _unb64(stored, "public_key", source, 32) != bytes(key.verify_key):
        raise KeyFileError(
            f"{source}: public_key does not match the private seed (damaged file)",
            file=source, field="public_key",
        )
    return key


def _load_openssh(data: bytes, passphrase: bytes | None, source: str) -> SigningKey:
    try:
        key = serialization.load_ssh_private_key(data, password=passphrase)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(
            f"{source}: cannot load OpenSSH private key: {type(exc).__name__}: {exc}",
            file=source,
            fix="use an unencrypted ed25519 key (ssh-keygen -t ed25519 -N '') or "
            "vak-skill-sign keygen",
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(
            f"{source}: OpenSSH key is not ed25519", file=source,
            fix="generate one with: ssh-keygen -t ed25519",
        )
    return SigningKey(key.private_bytes_raw())


def _private_doc(key: SigningKey, passphrase: bytes | None, comment: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "format": PRIVATE_KEY_FORMAT,
        "key_id": public_key_id(key.verify_key),
        "public_key": _b64(bytes(key.verify_key)),
    }
    if comment:
        doc["comment"] = comment
    seed = bytes(key)
    if passphrase is None:
        doc["seed"] = _b64(seed)
        return doc
    salt = os.urandom(_secretbox.SALT_BYTES)
    ops, mem = _secretbox.OPSLIMIT_INTERACTIVE, _secretbox.MEMLIMIT_INTERACTIVE
    box_key = _secretbox.derive_key(passphrase, salt, ops, mem)
    sealed = _secretbox.seal(box_key, os.urandom(_secretbox.NONCE_BYTES), seed)
    doc["encrypted"] = {
        "kdf": _KDF, "opslimit": ops, "memlimit": mem, "salt": _b64(salt),
        "cipher": _CIPHER, "ciphertext": _b64(sealed),
    }
    return doc


def _write_new(path: Path, data: bytes, mode: int, force: bool) -> None:
    try:
        write_private_file(path, data, exclusive=not force, mode=mode)
    except FileExistsError:
        raise KeyFileError(
            f"{path}: already exists; refusing to overwrite a key", file=str(path),
            fix="choose another --out path or pass --force",
        ) from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot write: {exc.strerror}", file=str(path)) from None


def generate_key_file(
    out: str | Path, *, passphrase: bytes | None = None, force: bool = False, comment: str = ""
) -> str:
    """Create a new key pair: ``out`` (private, mode 0600) and ``out.pub``.

    Returns:
        the new key id.

    Raises:
        KeyFileError: either file exists (and not ``force``) or cannot be written.
    """
    out = Path(out)
    pub = out.with_name(out.name + ".pub")
    if not force:
        for p in (out, pub):
            if p.exists() or p.is_symlink():
                raise KeyFileError(
                    f"{p}: already exists; refusing to overwrite a key", file=str(p),
                    fix="choose another --out path or pass --force",
                )
    key = SigningKey.generate()
    doc = _private_doc(key, passphrase, comment)
    _write_new(out, (json.dumps(doc, indent=2) + "\n").encode(), 0o600, force)
    line = format_public_key(key.verify_key, comment or public_key_id(key.verify_key))
    _write_new(pub, (line + "\n").encode(), 0o644, force)
    return public_key_id(key.verify_key)
