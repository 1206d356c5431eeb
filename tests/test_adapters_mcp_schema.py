"""The MCP output-schema wrapping is exact: ``{"result": v}`` passes the wrapper iff ``v``
passes the manifest's schema (Hypothesis over schemas with ``$defs``/``$ref`` and values)."""

from __future__ import annotations

from typing import Any

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from vak.adapters.mcp import WRAP_KEY, output_schema
from vak.invocation import ToolSpec, freeze_mapping

_SCALARS = st.sampled_from([{"type": "integer"}, {"type": "string"}, {"type": "boolean"},
                            {"type": "null"}, {"type": "number", "minimum": 0},
                            {"enum": [1, "a", None]}])


def _schemas() -> st.SearchStrategy[dict[str, Any]]:
    arrays = _SCALARS.map(lambda item: {"type": "array", "items": item})
    plain = st.one_of(_SCALARS, arrays)
    # the same shapes, reached through the root's $defs (they must still resolve)
    by_ref = plain.map(lambda inner: {"$defs": {"x": inner}, "$ref": "#/$defs/x"})
    items_by_ref = _SCALARS.map(lambda inner: {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": {"x": inner}, "type": "array", "items": {"$ref": "#/$defs/x"}})
    return st.one_of(plain, by_ref, items_by_ref)


_VALUES = st.recursive(st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3)
                       | st.floats(-2, 2, allow_nan=False),
                       lambda inner: st.lists(inner, max_size=3), max_leaves=6)


def _spec(schema: dict[str, Any]) -> ToolSpec:
    return ToolSpec("s__e", "s", "e", "", freeze_mapping({"type": "object"}),
                    freeze_mapping(schema))


@settings(max_examples=300, deadline=None)
@given(_schemas(), _VALUES)
def test_wrapping_accepts_exactly_what_the_manifest_schema_accepts(
        schema: dict[str, Any], value: Any) -> None:
    wrapper, wrapped = output_schema(_spec(schema))
    assert wrapped and wrapper["type"] == "object" and wrapper["x-vak-wrapped"] is True
    jsonschema.Draft202012Validator.check_schema(wrapper)
    inner_ok = jsonschema.Draft202012Validator(schema).is_valid(value)
    outer_ok = jsonschema.Draft202012Validator(wrapper).is_valid({WRAP_KEY: value})
    assert inner_ok == outer_ok
    assert not jsonschema.Draft202012Validator(wrapper).is_valid(value if isinstance(
        value, dict) else {"other": value})


def test_object_schemas_are_kept_as_they_are() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    assert output_schema(_spec(schema)) == (schema, False)


def test_the_manifest_schema_is_never_mutated() -> None:
    schema = {"$defs": {"x": {"type": "integer"}}, "$ref": "#/$defs/x"}
    spec = _spec(schema)
    output_schema(spec)
    output_schema(spec)
    assert dict(spec.output_schema["$defs"]) == {"x": {"type": "integer"}}
