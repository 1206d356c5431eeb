"""Canonical JSON: byte-equal to the RFC 8785 oracle within our profile, strict outside it."""

from __future__ import annotations

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from vak.canonical import MAX_SAFE_INT, CanonicalError, canonical_bytes, parse_canonical

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-MAX_SAFE_INT, max_value=MAX_SAFE_INT)
    | st.text(),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=300)
@given(json_values)
def test_matches_rfc8785_oracle(value: object) -> None:
    assert canonical_bytes(value) == rfc8785.dumps(value)


@settings(max_examples=200)
@given(json_values)
def test_parse_canonical_round_trips(value: object) -> None:
    data = canonical_bytes(value)
    assert canonical_bytes(parse_canonical(data)) == data


def test_supplementary_plane_keys_sort_by_utf16() -> None:
    value = {"\ue000": 1, "\U0001f600": 2}
    assert canonical_bytes(value) == rfc8785.dumps(value)
    assert canonical_bytes(value).index("\U0001f600".encode()) < canonical_bytes(value).index(
        "\ue000".encode()
    )


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (1.5, "floats"),
        ({"a": [0.0]}, "$.a[0]"),
        (2**53, "outside"),
        (-(2**53), "outside"),
        ({1: "x"}, "not a string"),
        ({"a": b"bytes"}, "not a JSON value"),
        ({"a": {1, 2}}, "not a JSON value"),
    ],
    ids=["float", "nested-float-path", "int-too-big", "int-too-small", "int-key", "bytes", "set"],
)
def test_rejects_values_outside_profile(value: object, fragment: str) -> None:
    with pytest.raises(CanonicalError, match=fragment.replace("[", r"\[").replace("$", r"\$")):
        canonical_bytes(value)


@pytest.mark.parametrize(
    "data",
    [b'{"b":1,"a":2}', b'{"a": 1}', b'[1,2 ]', b'"\\u0061"', b"not json", b'{"a":1.0}'],
    ids=["key-order", "space", "trailing-space", "needless-escape", "garbage", "float"],
)
def test_parse_canonical_rejects_non_canonical(data: bytes) -> None:
    with pytest.raises(CanonicalError):
        parse_canonical(data)
