"""C2SP tlog-cosignature/v1 (Ed25519, signature type 0x04): sign, parse and verify.

A cosignature is a signed-note line ``— <witness name> base64(key id ||
timestamp || signature)`` where the key id is ``SHA-256(name || 0x0A || 0x04
|| public key)[:4]``, the timestamp is 8 bytes big-endian (POSIX seconds) and
the Ed25519 signature covers::

    cosignature/v1\\n
    time <timestamp>\\n
    <the checkpoint's note body, final newline included>

A witness's verifier key is ``<name>+<hex key id>+base64(0x04 || public key)``.
Verification *raises* :class:`~vak.errors.WitnessError`; lines of unknown
keys are ignored, as the signed-note spec says.

Example::

    >>> key = Ed25519PrivateKey.generate()                          # doctest: +SKIP
    >>> line = cosign("w.example/1", key, body, 1700000000)          # doctest: +SKIP
    >>> verify_cosignatures(body, [line], [witness_key_of("w.example/1", key)], 1)  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vak.audit.keys import public_bytes
from vak.errors import KeyFileError, WitnessError

__all__ = [
    "COSIGNATURE_TYPE",
    "Cosignature",
    "WitnessKey",
    "cosign",
    "load_witness_keys",
    "parse_cosignature",
    "parse_witness_key",
    "verify_cosignatures",
    "witness_key_of",
]

COSIGNATURE_TYPE = b"\x04"
_DASH = "\u2014 "
_MAX_TIME = (1 << 63) - 1


def _key_id(name: str, public: bytes) -> bytes:
    return sha256(name.encode() + b"\n" + COSIGNATURE_TYPE + public).digest()[:4]


def _check_name(name: str) -> None:
    if not name or any(c.isspace() for c in name) or "+" in name or not name.isprintable():
        raise KeyFileError(f"witness name {name[:80]!r} must be non-empty, printable, "
                           "without spaces or '+'")


@dataclass(frozen=True, slots=True)
class WitnessKey:
    """A witness's public cosigning key."""

    name: str
    key_id: bytes
    public: bytes

    @property
    def vkey(self) -> str:
        b64 = base64.b64encode(COSIGNATURE_TYPE + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{b64}"


@dataclass(frozen=True, slots=True)
class Cosignature:
    """One parsed cosignature line."""

    name: str
    key_id: bytes
    timestamp: int
    signature: bytes

    @property
    def line(self) -> str:
        raw = self.key_id + struct.pack(">Q", self.timestamp) + self.signature
        return f"{_DASH}{self.name} {base64.b64encode(raw).decode()}\n"


def witness_key_of(name: str, key: Ed25519PrivateKey) -> WitnessKey:
    _check_name(name)
    pub = public_bytes(key)
    return WitnessKey(name, _key_id(name, pub), pub)


def parse_witness_key(text: str) -> WitnessKey:
    """Parse ``name+hexid+base64(0x04||pub)``.

    Raises:
        KeyFileError: not an Ed25519 cosignature verifier key, or the id does not match.
    """
    try:
        name, hexid, b64 = text.strip().split("+", 2)
        raw = base64.b64decode(b64, validate=True)
    except (ValueError, binascii.Error):
        raise KeyFileError(f"not a witness key: {text[:80]!r}") from None
    _check_name(name)
    if len(raw) != 33 or raw[:1] != COSIGNATURE_TYPE:
        raise KeyFileError(f"witness key {name!r} is not an Ed25519 cosignature (0x04) key")
    key = WitnessKey(name, _key_id(name, raw[1:]), raw[1:])
    if key.key_id.hex() != hexid:
        raise KeyFileError(f"witness key {name!r}: key id {hexid} does not match the key")
    return key


def load_witness_keys(path: str | Path) -> list[WitnessKey]:
    """Witness verifier keys, one per line (``#`` comments).

    Raises:
        KeyFileError: unreadable file, a bad line (named by number), or no key.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: cannot read witness key file: {exc}", file=str(path)) from None
    keys = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            try:
                keys.append(parse_witness_key(line))
            except KeyFileError as exc:
                raise KeyFileError(f"{path}:{n}: {exc.message}", file=str(path), line=n) from None
    if not keys:
        raise KeyFileError(f"{path}: no witness key in file", file=str(path))
    return keys


def _message(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


def cosign(name: str, key: Ed25519PrivateKey, body: str, timestamp: int) -> str:
    """The cosignature line of witness ``name`` over a checkpoint note ``body``."""
    _check_name(name)
    if not 0 <= timestamp <= _MAX_TIME:
        raise ValueError(f"cosignature timestamp {timestamp} out of range")
    sig = key.sign(_message(body, timestamp))
    return Cosignature(name, _key_id(name, public_bytes(key)), timestamp, sig).line


def parse_cosignature(line: str) -> Cosignature | None:
    """The cosignature in a signature line, or None for another signature type's line.

    Raises:
        WitnessError: the line is not a signed-note signature line at all.
    """
    text = line[:-1] if line.endswith("\n") else line
    if not text.startswith(_DASH):
        raise WitnessError("signature line lacks the em dash", status=400)
    try:
        name, b64 = text[len(_DASH):].split(" ")
        raw = base64.b64decode(b64, validate=True)
    except (ValueError, binascii.Error):
        raise WitnessError("signature line is malformed", status=400) from None
    if len(raw) != 4 + 8 + 64 or not name:
        return None
    (stamp,) = struct.unpack(">Q", raw[4:12])
    if stamp > _MAX_TIME:
        return None
    return Cosignature(name, raw[:4], stamp, raw[12:])


def verify_cosignatures(body: str, lines: Iterable[str], keys: Sequence[WitnessKey],
                        minimum: int) -> list[WitnessKey]:
    """The distinct witnesses of ``keys`` whose cosignature over ``body`` verifies.

    Raises:
        WitnessError: a known witness's cosignature does not verify, or fewer
            than ``minimum`` distinct witnesses cosigned.
    """
    by_id = {(k.name, k.key_id): k for k in keys}
    good: dict[str, WitnessKey] = {}  # by name: two keys of one witness count once
    for line in lines:
        cs = parse_cosignature(line)
        if cs is None:
            continue
        key = by_id.get((cs.name, cs.key_id))
        if key is None:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(key.public).verify(
                cs.signature, _message(body, cs.timestamp))
        except InvalidSignature:
            raise WitnessError(f"cosignature by witness {key.name} ({key.key_id.hex()}) does "
                               "not verify", witness=key.name) from None
        good[key.name] = key
    if len(good) < minimum:
        raise WitnessError(f"{len(good)} of the required {minimum} witness cosignatures "
                           "verify", found=len(good), required=minimum)
    return list(good.values())
