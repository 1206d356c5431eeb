"""Entry encoding: canonical bytes match the rfc8785 oracle; kinds and fields are enforced."""

from __future__ import annotations

import re

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from vak.audit.entry import (
    KINDS,
    check_fields,
    encode_checked,
    encode_entry,
    entry_leaf_hash,
    has_float,
    rfc3339_now,
)
from vak.audit.merkle import leaf_hash
from vak.canonical import MAX_SAFE_INT, CanonicalError

_scalars = st.none() | st.booleans() | st.integers(-MAX_SAFE_INT, MAX_SAFE_INT) | st.text()
_values = st.recursive(_scalars, lambda c: st.lists(c, max_size=4)
                       | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=12)
_HEADER = {"v": 1, "origin": "o", "seq": 1, "time": "t", "kind": "heartbeat", "prev": "0" * 64}


@settings(max_examples=150)
@given(st.dictionaries(st.text(max_size=10).filter(lambda k: k not in _HEADER), _values,
                       max_size=6))
def test_lines_equal_rfc8785(fields: dict) -> None:
    line = encode_checked(fields, dict(_HEADER))
    assert line == rfc8785.dumps({**_HEADER, **fields}) + b"\n"
    assert line == encode_entry({**_HEADER, **fields})
    assert entry_leaf_hash(line) == leaf_hash(line[:-1])


@pytest.mark.parametrize("bad", [{"x": 1.0}, {"x": [{"y": 2.5}]}, {"x": 2**53}, {"x": b"b"},
                                 {"x": {1: "a"}}], ids=["float", "nested-float", "big-int",
                                                         "bytes", "int-key"])
def test_values_outside_profile_are_refused(bad: dict) -> None:
    with pytest.raises(CanonicalError):
        encode_checked(bad, dict(_HEADER))


def test_has_float() -> None:
    assert has_float({"a": [1, {"b": 0.5}]}) and not has_float({"a": [1, {"b": "0.5"}]})


def test_check_fields() -> None:
    for kind, required in KINDS.items():
        check_fields(kind, dict.fromkeys(required, "x"))
        for name in required:
            with pytest.raises(CanonicalError, match=name):
                check_fields(kind, {k: "x" for k in required if k != name})
    with pytest.raises(CanonicalError, match="unknown"):
        check_fields("nope", {})
    with pytest.raises(CanonicalError, match="set by the log"):
        check_fields("heartbeat", {"prev": "x"})


def test_time_format() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", rfc3339_now())
