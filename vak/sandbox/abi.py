"""Guest-memory access for the VAK ABI: packed i64 values and checked copies.

Every pointer and length that comes from a guest is untrusted. The rules:

* a packed value is ``(ptr << 32) | len`` with both halves unsigned 32-bit;
* a span ``[ptr, ptr + len)`` must lie inside the memory's current size, read
  *at the moment of the access* (the guest may have grown memory meanwhile);
* failures raise :class:`vak.errors.ABIError` naming what was wrong.

    >>> pack(16, 5)
    68719476741
    >>> unpack(pack(16, 5))
    (16, 5)
    >>> check_span(16, 5, 64, "input")
    >>> check_span(60, 5, 64, "input")
    Traceback (most recent call last):
    ...
    vak.errors.ABIError: input: span [60, 65) outside guest memory of 64 bytes
"""

from __future__ import annotations

import ctypes
from typing import Any

from vak.errors import ABIError
from vak.sandbox import fastcall

__all__ = ["GuestMemory", "check_span", "pack", "unpack"]

_U32 = 0xFFFF_FFFF
_U64 = 0xFFFF_FFFF_FFFF_FFFF


def pack(ptr: int, length: int) -> int:
    """``(ptr << 32) | length`` as an unsigned 64-bit value.

    Raises:
        ABIError: either half does not fit in 32 bits.
    """
    if not (0 <= ptr <= _U32 and 0 <= length <= _U32):
        raise ABIError(f"cannot pack ptr={ptr} len={length} into an i64")
    return (ptr << 32) | length


def unpack(value: int) -> tuple[int, int]:
    """Split a (possibly signed, as wasm returns it) i64 into ``(ptr, len)``."""
    value &= _U64
    return value >> 32, value & _U32


def check_span(ptr: int, length: int, size: int, what: str) -> None:
    """Raise unless ``[ptr, ptr + length)`` lies inside a memory of ``size`` bytes.

    Raises:
        ABIError: the span is negative or reaches past the end of memory.
    """
    if ptr < 0 or length < 0 or ptr + length > size:
        raise ABIError(
            f"{what}: span [{ptr}, {ptr + length}) outside guest memory of {size} bytes",
            ptr=ptr, length=length, memory_size=size,
        )


class GuestMemory:
    """The exported ``memory`` of one instance in one store context.

    Holds no pointer into the memory between accesses: ``data`` and
    ``data_size`` are re-read each time because growth can move the base.
    """

    __slots__ = ("_context", "_memory")

    def __init__(self, context: Any, memory: Any) -> None:
        self._context = context
        self._memory = memory

    def size(self) -> int:
        return fastcall.memory_size(self._context, self._memory)

    def _base(self) -> int:
        return fastcall.memory_base(self._context, self._memory)

    def read(self, ptr: int, length: int, what: str) -> bytes:
        """Copy ``length`` bytes at ``ptr`` out of the guest.

        Raises:
            ABIError: the span is outside memory.
        """
        check_span(ptr, length, self.size(), what)
        if length == 0:
            return b""
        return ctypes.string_at(self._base() + ptr, length)

    def write(self, ptr: int, data: bytes, what: str) -> None:
        """Copy ``data`` into the guest at ``ptr``.

        Raises:
            ABIError: the span is outside memory.
        """
        check_span(ptr, len(data), self.size(), what)
        if data:
            ctypes.memmove(self._base() + ptr, data, len(data))
