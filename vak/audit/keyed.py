"""The log's keyed digest (HMAC-SHA256, RFC 2104) with the key schedule done once.

Every invocation records two keyed digests (input, output) and every host
call two more (arguments, result), so their cost is on the hot path.
``hmac.digest`` looks the hash up by name and re-derives the padded keys on
every call; here the inner and outer SHA-256 states, already fed with
``key XOR ipad`` and ``key XOR opad``, are built once and copied per digest.
The bytes are exactly RFC 2104's (``tests/test_audit_keyed.py`` checks them
against :func:`hmac.digest`).

Example::

    >>> digest = KeyedDigest(b"k" * 32)
    >>> digest(b"abc") == "hmac-sha256:" + hmac.digest(b"k" * 32, b"abc", "sha256").hex()
    True
"""

from __future__ import annotations

import hmac  # noqa: F401 - used by the doctest above
from hashlib import sha256

__all__ = ["HMAC_PREFIX", "KeyedDigest"]

#: prefix of every keyed digest in the log (``AuditLog.args_digest``)
HMAC_PREFIX = "hmac-sha256:"

_BLOCK = 64  # SHA-256 block size in bytes
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class KeyedDigest:
    """``"hmac-sha256:<hex>"`` of bytes under one secret key; thread-safe, reusable."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK:  # RFC 2104: a long key is hashed first
            key = sha256(key).digest()
        block = key.ljust(_BLOCK, b"\x00")
        self._inner = sha256(block.translate(_IPAD))
        self._outer = sha256(block.translate(_OPAD))

    def __call__(self, data: bytes | bytearray | memoryview) -> str:
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return HMAC_PREFIX + outer.hexdigest()
