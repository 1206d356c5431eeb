"""The passphrase encryption of VAK private key files: argon2id + XSalsa20-Poly1305.

Key files written before the identity package used one Ed25519 library were
sealed with libsodium's ``crypto_secretbox`` (through PyNaCl). That format is
kept byte for byte, so old files load and new ones load in old releases:

* key = ``argon2id(passphrase, salt, t=opslimit, m=memlimit/1024 KiB, p=1, 32 bytes)``
  (libsodium's ``crypto_pwhash_argon2id`` parameters; computed by ``cryptography``);
* box = ``nonce (24) || Poly1305 tag (16) || ciphertext`` where the XSalsa20
  stream's first 32 bytes key Poly1305 and the rest encrypt the message
  (NaCl's secretbox construction; Poly1305 is ``cryptography``'s).

``cryptography`` has no XSalsa20, so the stream cipher is computed here from
its specification (D. J. Bernstein, "Salsa20 specification" and "Extending
the Salsa20 nonce"). It only ever processes a 32-byte seed, and the known
answers in ``tests/vectors/identity/pynacl.json`` (written by libsodium) pin
it. Python integers are not constant-time; what is encrypted is a key file at
rest, decrypted locally, so no remote timing channel exists.
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

__all__ = [
    "KEY_BYTES",
    "MEMLIMIT_INTERACTIVE",
    "MEMLIMIT_MIN",
    "NONCE_BYTES",
    "OPSLIMIT_INTERACTIVE",
    "OPSLIMIT_MIN",
    "SALT_BYTES",
    "BoxError",
    "derive_key",
    "open_box",
    "seal",
]

KEY_BYTES = 32
NONCE_BYTES = 24
SALT_BYTES = 16
_TAG_BYTES = 16
#: libsodium's crypto_pwhash_argon2id limits and "interactive" defaults
OPSLIMIT_MIN = 1
MEMLIMIT_MIN = 8192
OPSLIMIT_INTERACTIVE = 2
MEMLIMIT_INTERACTIVE = 64 << 20

_MASK = 0xFFFFFFFF
_SIGMA = struct.unpack("<4I", b"expand 32-byte k")
_COLUMNS = ((0, 4, 8, 12), (5, 9, 13, 1), (10, 14, 2, 6), (15, 3, 7, 11))
_ROWS = ((0, 1, 2, 3), (5, 6, 7, 4), (10, 11, 8, 9), (15, 12, 13, 14))


class BoxError(ValueError):
    """The box is malformed or its tag does not verify (wrong key or damaged)."""


def derive_key(passphrase: bytes, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    """The 32-byte box key libsodium's ``crypto_pwhash_argon2id`` derives."""
    kdf = Argon2id(salt=salt, length=KEY_BYTES, iterations=opslimit, lanes=1,
                   memory_cost=memlimit // 1024)
    return kdf.derive(passphrase)


def _rotl(value: int, shift: int) -> int:
    return ((value << shift) & _MASK) | (value >> (32 - shift))


def _double_rounds(state: list[int]) -> list[int]:
    """Salsa20/20's ten double rounds (column round, then row round) on a copy."""
    x = list(state)
    for _ in range(10):
        for order in (_COLUMNS, _ROWS):
            for a, b, c, d in order:
                x[b] ^= _rotl((x[a] + x[d]) & _MASK, 7)
                x[c] ^= _rotl((x[b] + x[a]) & _MASK, 9)
                x[d] ^= _rotl((x[c] + x[b]) & _MASK, 13)
                x[a] ^= _rotl((x[d] + x[c]) & _MASK, 18)
    return x


def _state(key: bytes, middle: tuple[int, ...]) -> list[int]:
    k = struct.unpack("<8I", key)
    return [_SIGMA[0], *k[:4], _SIGMA[1], *middle, _SIGMA[2], *k[4:], _SIGMA[3]]


def _hsalsa20(key: bytes, nonce16: bytes) -> bytes:
    x = _double_rounds(_state(key, struct.unpack("<4I", nonce16)))
    return struct.pack("<8I", *(x[i] for i in (0, 5, 10, 15, 6, 7, 8, 9)))


def _xsalsa20_stream(key: bytes, nonce: bytes, size: int) -> bytes:
    subkey = _hsalsa20(key, nonce[:16])
    n0, n1 = struct.unpack("<2I", nonce[16:])
    out = bytearray()
    counter = 0
    while len(out) < size:
        state = _state(subkey, (n0, n1, counter & _MASK, counter >> 32))
        mixed = _double_rounds(state)
        out += struct.pack("<16I", *((m + s) & _MASK for m, s in zip(mixed, state, strict=True)))
        counter += 1
    return bytes(out[:size])


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def seal(key: bytes, nonce: bytes, message: bytes) -> bytes:
    """``nonce || tag || ciphertext`` of ``message`` (PyNaCl's ``SecretBox.encrypt``).

    Raises:
        ValueError: ``key`` or ``nonce`` has the wrong length.
    """
    if len(key) != KEY_BYTES or len(nonce) != NONCE_BYTES:
        raise ValueError("secretbox key must be 32 bytes and nonce 24 bytes")
    stream = _xsalsa20_stream(key, nonce, 32 + len(message))
    ciphertext = _xor(message, stream[32:])
    tag = poly1305.Poly1305.generate_tag(stream[:32], ciphertext)
    return nonce + tag + ciphertext


def open_box(key: bytes, box: bytes) -> bytes:
    """The message inside ``box`` (as written by :func:`seal` or PyNaCl).

    Raises:
        BoxError: the box is too short, the key has the wrong length, or the
            tag does not verify (wrong passphrase or damaged file).
    """
    if len(key) != KEY_BYTES or len(box) < NONCE_BYTES + _TAG_BYTES:
        raise BoxError("not a secretbox")
    nonce = box[:NONCE_BYTES]
    tag = box[NONCE_BYTES:NONCE_BYTES + _TAG_BYTES]
    ciphertext = box[NONCE_BYTES + _TAG_BYTES:]
    stream = _xsalsa20_stream(key, nonce, 32 + len(ciphertext))
    try:
        poly1305.Poly1305.verify_tag(stream[:32], ciphertext, tag)
    except InvalidSignature:
        raise BoxError("secretbox tag does not verify") from None
    return _xor(ciphertext, stream[32:])
