"""vak.jsonbound: bounded decoding of guest JSON, never recursion."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vak.errors import ABIError, OutputStructureError
from vak.jsonbound import DEFAULT_BOUNDS, JsonBounds, decode

SMALL = JsonBounds(max_depth=6, max_string_chars=8, max_items=5)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=7) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=7),
    max_leaves=40,
)


def _depth(v: Any) -> int:
    if isinstance(v, list):
        return 1 + max((_depth(x) for x in v), default=0)
    if isinstance(v, dict):
        return 1 + max((_depth(x) for x in v.values()), default=0)
    return 0


def _violates(v: Any, b: JsonBounds) -> bool:
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, str) and len(x) > b.max_string_chars:
            return True
        if isinstance(x, list | dict):
            if len(x) > b.max_items:
                return True
            if isinstance(x, dict):
                stack.extend(x.keys())
                stack.extend(x.values())
            else:
                stack.extend(x)
    return _depth(v) > b.max_depth


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_decode_is_orjson_within_bounds_and_typed_outside(value: Any) -> None:
    data = orjson.dumps(value)
    if _violates(value, SMALL):
        with pytest.raises(OutputStructureError):
            decode(data, SMALL, "output")
    else:
        assert decode(data, SMALL, "output") == value


@pytest.mark.parametrize("depth", [65, 300, 1000, 1024, 1025, 100_000, 1_000_000])
@pytest.mark.parametrize("open_close", [(b"[", b"]"), (b'{"a":', b"}")], ids=["array", "object"])
def test_deep_nesting_is_typed_at_any_depth(depth: int, open_close: tuple[bytes, bytes]) -> None:
    opener, closer = open_close
    inner = b"1" if opener != b"[" else b""
    data = opener * depth + inner + closer * depth
    with pytest.raises(OutputStructureError) as info:
        decode(data, DEFAULT_BOUNDS, "output")
    assert info.value.details == {"bound": "max_depth", "limit": 64}
    assert isinstance(info.value, ABIError)


def test_brackets_inside_strings_do_not_count() -> None:
    data = orjson.dumps({"s": "[" * 5000})
    assert decode(data, DEFAULT_BOUNDS, "output") == {"s": "[" * 5000}


def test_invalid_json_is_left_to_the_caller() -> None:
    with pytest.raises(orjson.JSONDecodeError):
        decode(b"{nope", DEFAULT_BOUNDS, "output")
    with pytest.raises(orjson.JSONDecodeError):  # deep but broken: still "not JSON"
        decode(b"[" * 2000 + b"x", JsonBounds(max_depth=5000), "output")


def test_caller_chooses_the_error_class() -> None:
    with pytest.raises(ABIError) as info:
        decode(b"[[[]]]", JsonBounds(max_depth=2), "arguments of log", ABIError)
    assert type(info.value) is ABIError and "arguments of log" in info.value.message


def test_long_keys_and_strings_are_bounded() -> None:
    with pytest.raises(OutputStructureError, match="string"):
        decode(orjson.dumps({"k" * 9: 1}), SMALL, "output")
    with pytest.raises(OutputStructureError, match="string"):
        decode(orjson.dumps(["v" * 9]), SMALL, "output")
