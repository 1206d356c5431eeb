"""The log's keyed digest is exactly RFC 2104 HMAC-SHA256 (``hmac.digest`` is the oracle)."""

from __future__ import annotations

import hmac
from concurrent.futures import ThreadPoolExecutor

from hypothesis import given, settings
from hypothesis import strategies as st

from vak.audit.keyed import HMAC_PREFIX, KeyedDigest


@settings(max_examples=200)
@given(key=st.binary(max_size=200), data=st.binary(max_size=300))
def test_equals_hmac_sha256_for_any_key_and_data(key: bytes, data: bytes) -> None:
    # keys shorter than, equal to and longer than the 64-byte block all agree
    assert KeyedDigest(key)(data) == HMAC_PREFIX + hmac.digest(key, data, "sha256").hex()


def test_known_answer_rfc4231_case_2() -> None:
    digest = KeyedDigest(b"Jefe")(b"what do ya want for nothing?")
    assert digest == HMAC_PREFIX + (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


def test_reusable_and_thread_safe() -> None:
    keyed = KeyedDigest(b"k" * 32)
    expected = {i: HMAC_PREFIX + hmac.digest(b"k" * 32, bytes([i]) * i, "sha256").hex()
                for i in range(64)}

    def wrong(_: int) -> list[int]:
        return [i for _ in range(50) for i, want in expected.items()
                if keyed(bytes([i]) * i) != want]

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert not [i for found in pool.map(wrong, range(4)) for i in found]


def test_accepts_bytearray_and_memoryview() -> None:
    keyed = KeyedDigest(b"key")
    assert keyed(bytearray(b"abc")) == keyed(memoryview(b"xabc")[1:]) == keyed(b"abc")
