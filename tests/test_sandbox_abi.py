"""Packing and span checks of the guest ABI."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vak.errors import ABIError
from vak.sandbox.abi import check_span, pack, unpack

U32 = st.integers(min_value=0, max_value=0xFFFF_FFFF)


@settings(max_examples=200)
@given(U32, U32)
def test_pack_roundtrip(ptr: int, length: int) -> None:
    assert unpack(pack(ptr, length)) == (ptr, length)


@settings(max_examples=200)
@given(U32, U32)
def test_unpack_accepts_signed_i64(ptr: int, length: int) -> None:
    value = pack(ptr, length)
    signed = value - (1 << 64) if value >= 1 << 63 else value
    assert unpack(signed) == (ptr, length)


@pytest.mark.parametrize(("ptr", "length"), [(-1, 0), (0, -1), (1 << 32, 0), (0, 1 << 32)],
                         ids=["neg-ptr", "neg-len", "big-ptr", "big-len"])
def test_pack_rejects_out_of_range(ptr: int, length: int) -> None:
    with pytest.raises(ABIError):
        pack(ptr, length)


@settings(max_examples=200)
@given(U32, U32, st.integers(min_value=0, max_value=1 << 33))
def test_check_span_iff_inside(ptr: int, length: int, size: int) -> None:
    inside = ptr + length <= size
    if inside:
        check_span(ptr, length, size, "x")
    else:
        with pytest.raises(ABIError):
            check_span(ptr, length, size, "x")
