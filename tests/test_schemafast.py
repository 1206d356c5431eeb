"""The fast schema subset checker agrees with jsonschema wherever it says "valid"."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vak.errors import InputValidationError
from vak.identity._schemafast import compile_fast
from vak.identity.validation import compile_validator

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-5, 5, allow_nan=False)
    | st.sampled_from(["", "a", "add", "abcdef"]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["a", "b", "op", "x"]), inner, max_size=3),
    max_leaves=8,
)
_TYPES = ["object", "array", "string", "integer", "number", "boolean", "null"]


def _leaf() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={
        "type": st.sampled_from(_TYPES) | st.lists(st.sampled_from(_TYPES), min_size=1,
                                                    max_size=3, unique=True),
        "enum": st.lists(st.sampled_from(["a", "add", "x"]), min_size=1, max_size=3),
        "minimum": st.integers(-3, 3), "maximum": st.floats(-3, 3),
        "exclusiveMinimum": st.integers(-3, 3), "exclusiveMaximum": st.integers(-3, 3),
        "minLength": st.integers(0, 3), "maxLength": st.integers(0, 3),
        "description": st.just("d"),
    })


schemas = st.recursive(
    _leaf() | st.booleans(),
    lambda inner: st.fixed_dictionaries({}, optional={
        "type": st.sampled_from(["object", "array"]),
        "properties": st.dictionaries(st.sampled_from(["a", "b", "op"]), inner, max_size=3),
        "required": st.lists(st.sampled_from(["a", "b", "op"]), max_size=2, unique=True),
        "additionalProperties": inner,
        "minProperties": st.integers(0, 2), "maxProperties": st.integers(0, 3),
        "items": inner, "minItems": st.integers(0, 2), "maxItems": st.integers(0, 3),
    }),
    max_leaves=6,
)


@settings(max_examples=200, deadline=None)
@given(schemas, st.lists(json_values, min_size=1, max_size=5))
def test_fast_valid_implies_jsonschema_valid(schema: Any, instances: list[Any]) -> None:
    fast = compile_fast(schema)
    assert fast is not None  # the generator stays inside the subset
    validator = jsonschema.Draft202012Validator(schema)
    for x in instances:
        # the safety property; and on these simple schemas the two agree fully
        assert fast(x) == validator.is_valid(x), (schema, x)


@pytest.mark.parametrize(("schema", "instance", "valid"), [
    ({"type": "number"}, True, False),
    ({"type": "integer"}, False, False),
    ({"type": "integer"}, 1.0, True),
    ({"type": "integer"}, 1.5, False),
    ({"enum": ["a"]}, ["a"], False),
    ({"type": "object"}, [], False),
    ({"type": "array"}, {}, False),
    ({"properties": {"a": {"type": "string"}}}, "not an object", True),
    ({"additionalProperties": False, "properties": {"a": True}}, {"a": 1, "b": 2}, False),
    ({"required": ["a"]}, {}, False),
    ({"maxProperties": 1}, {"a": 1, "b": 2}, False),
    ({"minimum": 0}, float("nan"), False),
], ids=["bool-not-number", "bool-not-integer", "integral-float", "fraction", "enum-type",
        "list-not-object", "dict-not-array", "properties-ignore-non-objects",
        "additional-false", "required", "max-properties", "nan"])
def test_known_answers(schema: dict[str, Any], instance: Any, valid: bool) -> None:
    fast = compile_fast(schema)
    assert fast is not None and fast(instance) is valid


@pytest.mark.parametrize("schema", [
    {"pattern": "^a"}, {"format": "email"}, {"$ref": "#/$defs/x"}, {"anyOf": [True]},
    {"enum": [1, True]}, {"const": 1}, {"minLength": 1.5}, {"minItems": True},
    {"prefixItems": [True]}, {"$schema": "http://json-schema.org/draft-07/schema#"},
    {"properties": {"a": {"oneOf": [True]}}}, {"type": "int"},
], ids=["pattern", "format", "ref", "anyOf", "mixed-enum", "number-const", "float-bound",
        "bool-bound", "prefixItems", "other-draft", "nested-unknown", "bad-type"])
def test_anything_outside_the_subset_is_left_to_jsonschema(schema: dict[str, Any]) -> None:
    assert compile_fast(schema) is None


def test_fast_failure_still_reports_jsonschema_error() -> None:
    v = compile_validator("t__x", "input", {"type": "object", "required": ["a"],
                                            "properties": {"a": {"pattern": "^z"}}})
    assert v.fast is None  # pattern: jsonschema alone
    v2 = compile_validator("t__x", "input", {"type": "object", "required": ["a"]})
    assert v2.fast is not None
    v2.check({"a": 1})
    with pytest.raises(InputValidationError, match="'a' is a required property"):
        v2.check({})
