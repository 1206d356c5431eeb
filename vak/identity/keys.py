"""Ed25519 key files and key ids for skill signing.

Example::

    >>> key_id = generate_key_file("signer.key")                 # doctest: +SKIP
    >>> sk = load_signing_key("signer.key")                       # doctest: +SKIP
    >>> vk = load_public_key("signer.key.pub")                    # doctest: +SKIP
    >>> public_key_id(vk) == key_id                               # doctest: +SKIP
    True

Formats (documented in docs/MANIFEST.md):

* **Private key** (``KEY``, mode 0600): a JSON object, ``format`` =
  ``"vak-ed25519-private-key/1"``, with the ``key_id``, the base64 ``public_key``
  and either ``seed`` (base64 of the 32-byte Ed25519 seed, unencrypted) or
  ``encrypted`` (argon2id KDF parameters + an XSalsa20-Poly1305 ``SecretBox``
  ciphertext of the seed). An unencrypted OpenSSH ed25519 private key
  (``ssh-keygen -t ed25519 -N ''``) is accepted too.
* **Public key** (``KEY.pub``): one line ``vak-ed25519 <base64 raw key> [comment]``;
  an OpenSSH line ``ssh-ed25519 AAAA... [comment]`` is accepted wherever a
  public key is read.
* **Key id**: ``"ed25519:" + sha256(raw 32-byte public key).hexdigest()[:32]``,
  so the same key has the same id whatever file format carries it.

The private key file never holds the passphrase; errors never echo key bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.signing import SigningKey, VerifyKey

from vak.errors import KeyFileError

__all__ = [
    "PRIVATE_KEY_FORMAT",
    "PUBLIC_KEY_PREFIX",
    "SigningKey",
    "VerifyKey",
    "format_public_key",
    "generate_key_file",
    "load_public_key",
    "load_signing_key",
    "parse_public_key",
    "public_key_id",
]

PRIVATE_KEY_FORMAT = "vak-ed25519-private-key/1"
PUBLIC_KEY_PREFIX = "vak-ed25519"
_SSH_PREFIX = "ssh-ed25519"
_KDF = "argon2id"
_CIPHER = "xsalsa20poly1305"
#: refuse KDF parameters above these when loading (a key file must not DoS the loader)
_MAX_MEMLIMIT = 1 << 30
_MAX_OPSLIMIT = 64
_MAX_KEY_FILE_BYTES = 64 << 10


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, what: str, source: str, size: int | None = None) -> bytes:
    try:
        if not isinstance(text, str):
            raise ValueError
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise KeyFileError(f"{source}: {what} is not valid base64", file=source) from None
    if size is not None and len(raw) != size:
        raise KeyFileError(
            f"{source}: {what} must be {size} bytes, got {len(raw)}", file=source
        )
    return raw


def public_key_id(key: VerifyKey) -> str:
    """The stable key id of an Ed25519 public key (see the module docstring)."""
    return "ed25519:" + hashlib.sha256(bytes(key)).hexdigest()[:32]


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
        return VerifyKey(_unb64(parts[1], "public key", source, 32))
    blob = _unb64(parts[1], "OpenSSH key blob", source)
    try:
        loaded = serialization.load_ssh_public_key(f"{_SSH_PREFIX} {parts[1]}".encode())
        raw = loaded.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    except (ValueError, TypeError, AttributeError, binascii.Error):
        raise KeyFileError(f"{source}: invalid ssh-ed25519 key blob", file=source) from None
    if len(raw) != 32 or not blob:
        raise KeyFileError(f"{source}: invalid ssh-ed25519 key blob", file=source)
    return VerifyKey(raw)


def _read_key_file(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            data = fh.read(_MAX_KEY_FILE_BYTES + 1)
    except FileNotFoundError:
        raise KeyFileError(
            f"{path}: key file not found", file=str(path),
            fix="create one with: vak-skill-sign keygen --out " + str(path).removesuffix(".pub"),
        ) from None
    except OSError as exc:
        raise KeyFileError(
            f"{path}: cannot read key file: {exc.strerror}", file=str(path)
        ) from None
    if len(data) > _MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{path}: too large to be a key file", file=str(path))
    return data


def load_public_key(path: str | Path) -> VerifyKey:
    """Read a public key file (``KEY.pub`` or an OpenSSH ``id_ed25519.pub``).

    A private key file (either format) is accepted too and its public half used.

    Raises:
        KeyFileError: unreadable, or not an Ed25519 public key.
    """
    path = Path(path)
    data = _read_key_file(path)
    text = data.decode("utf-8", "replace").strip()
    if text.startswith("{") or text.startswith("-----BEGIN OPENSSH PRIVATE KEY-----"):
        if text.startswith("{"):
            doc = _parse_private_json(data, str(path))
            return VerifyKey(_unb64(doc.get("public_key"), "public_key", str(path), 32))
        return load_signing_key(path).verify_key
    return parse_public_key(text, str(path))


def _parse_private_json(data: bytes, source: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        doc = None
    if not isinstance(doc, dict) or doc.get("format") != PRIVATE_KEY_FORMAT:
        raise KeyFileError(
            f"{source}: not a VAK private key file", file=source,
            valid=f"a JSON key file with format {PRIVATE_KEY_FORMAT!r} "
            "(vak-skill-sign keygen) or an OpenSSH ed25519 private key",
        )
    return doc


def _kdf(passphrase: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return nacl.pwhash.argon2id.kdf(
        nacl.secret.SecretBox.KEY_SIZE, passphrase, salt, opslimit=opslimit, memlimit=memlimit
    )


def _decrypt_seed(doc: dict[str, Any], passphrase: bytes | None, source: str) -> bytes:
    enc = doc["encrypted"]
    if not isinstance(enc, dict) or enc.get("kdf") != _KDF or enc.get("cipher") != _CIPHER:
        raise KeyFileError(
            f"{source}: unsupported key encryption", file=source,
            valid=f"kdf {_KDF!r} with cipher {_CIPHER!r}",
        )
    if passphrase is None:
        raise KeyFileError(
            f"{source}: the private key is passphrase-encrypted", file=source,
            fix="pass --passphrase-file FILE or --passphrase-env VAR",
        )
    ops, mem = enc.get("opslimit"), enc.get("memlimit")
    if (
        not isinstance(ops, int) or not isinstance(mem, int)
        or not nacl.pwhash.argon2id.OPSLIMIT_MIN <= ops <= _MAX_OPSLIMIT
        or not nacl.pwhash.argon2id.MEMLIMIT_MIN <= mem <= _MAX_MEMLIMIT
    ):
        raise KeyFileError(f"{source}: KDF parameters out of range", file=source)
    salt = _unb64(enc.get("salt"), "salt", source, nacl.pwhash.argon2id.SALTBYTES)
    box = nacl.secret.SecretBox(_kdf(passphrase, salt, ops, mem))
    try:
        return box.decrypt(_unb64(enc.get("ciphertext"), "ciphertext", source))
    except nacl.exceptions.CryptoError:
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
    data = _read_key_file(path)
    if data.lstrip().startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----"):
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
            file=source,
        )
    return key


def _load_openssh(data: bytes, passphrase: bytes | None, source: str) -> SigningKey:
    try:
        key = serialization.load_ssh_private_key(data, password=passphrase)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(
            f"{source}: cannot load OpenSSH private key: {exc}", file=source,
            fix="use an unencrypted ed25519 key (ssh-keygen -t ed25519 -N '') or "
            "vak-skill-sign keygen",
        ) from None
    except Exception as exc:  # e.g. UnsupportedAlgorithm for encrypted keys without bcrypt
        raise KeyFileError(
            f"{source}: cannot load OpenSSH private key: {type(exc).__name__}", file=source,
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
    salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
    ops = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
    mem = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE
    box = nacl.secret.SecretBox(_kdf(passphrase, salt, ops, mem))
    doc["encrypted"] = {
        "kdf": _KDF, "opslimit": ops, "memlimit": mem, "salt": _b64(salt),
        "cipher": _CIPHER, "ciphertext": _b64(bytes(box.encrypt(seed))),
    }
    return doc


def _write_new(path: Path, data: bytes, mode: int, force: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), mode)
    except FileExistsError:
        raise KeyFileError(
            f"{path}: already exists; refusing to overwrite a key", file=str(path),
            fix="choose another --out path or pass --force",
        ) from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot write: {exc.strerror}", file=str(path)) from None
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fh.fileno(), mode)
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


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
