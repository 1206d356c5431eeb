"""Refuse Ed25519 public keys that cannot bind a signer: non-canonical or of small order.

libsodium (which VAK used before it moved to ``cryptography``) refuses such
keys when it verifies; OpenSSL accepts them. A key of small order (the
identity point among them) lets anybody produce a signature that verifies for
*every* message, so a trust store or log key file naming one would trust
everyone. Checking once, where a public key enters VAK, keeps the stricter
rule whatever library verifies.

Arithmetic on edwards25519 (RFC 8032, section 5.1) in affine coordinates with
Python integers; it runs once per key load, never per signature.
"""

from __future__ import annotations

__all__ = ["is_weak_public_key"]

_P = 2**255 - 19
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)

_Point = tuple[int, int]


def _decode(raw: bytes) -> _Point | None:
    """The point ``raw`` encodes, or None when it is not a canonical encoding of a point."""
    value = int.from_bytes(raw, "little")
    sign = value >> 255
    y = value & ((1 << 255) - 1)
    if y >= _P:
        return None
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    x = (u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P)) % _P
    if (v * x * x - u) % _P != 0:
        if (v * x * x + u) % _P != 0:
            return None
        x = (x * _SQRT_M1) % _P
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = _P - x
    return x, y


def _double(point: _Point) -> _Point:
    x, y = point
    xy = x * y % _P
    dxy2 = _D * xy * xy % _P
    x3 = 2 * xy * pow(1 + dxy2, _P - 2, _P) % _P
    y3 = (y * y + x * x) * pow(1 - dxy2, _P - 2, _P) % _P
    return x3, y3


def is_weak_public_key(raw: bytes) -> bool:
    """Whether ``raw`` is not 32 bytes, not a canonical point, or a point of small order.

    The small-order points are exactly those with ``[8]P`` the identity ``(0, 1)``.
    """
    if len(raw) != 32:
        return True
    point = _decode(raw)
    if point is None:
        return True
    for _ in range(3):
        point = _double(point)
    return point == (0, 1)
