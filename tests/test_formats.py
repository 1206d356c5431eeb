"""vak.formats: pure ToolSpec -> framework dict converters."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vak.errors import ConfigError
from vak.formats import FORMATS, to_format, tool_specs
from vak.invocation import ToolSpec, freeze_mapping

SCHEMA_IN = {"type": "object", "properties": {"a": {"type": "number"}}, "required": ["a"]}
SCHEMA_OUT = {"type": "object", "properties": {"result": {"type": "number"}}}


def spec(**kw: object) -> ToolSpec:
    base = dict(name="calculator__execute", skill="calculator", export="execute",
                description="Add numbers.", input_schema=freeze_mapping(SCHEMA_IN),
                output_schema=freeze_mapping(SCHEMA_OUT))
    base.update(kw)
    return ToolSpec(**base)  # type: ignore[arg-type]


def test_mcp_shape() -> None:
    assert to_format(spec(), "mcp") == {
        "name": "calculator__execute", "description": "Add numbers.",
        "inputSchema": SCHEMA_IN, "outputSchema": SCHEMA_OUT,
    }


def test_mcp_omits_non_object_output_schema() -> None:
    out = to_format(spec(output_schema=freeze_mapping({"type": "string"})), "mcp")
    assert "outputSchema" not in out


def test_openai_chat_shape() -> None:
    assert to_format(spec(), "openai") == {
        "type": "function",
        "function": {"name": "calculator__execute", "description": "Add numbers.",
                     "parameters": SCHEMA_IN},
    }


def test_openai_responses_shape() -> None:
    assert to_format(spec(), "openai-responses") == {
        "type": "function", "name": "calculator__execute", "description": "Add numbers.",
        "parameters": SCHEMA_IN, "strict": False,
    }


def test_anthropic_shape() -> None:
    assert to_format(spec(), "anthropic") == {
        "name": "calculator__execute", "description": "Add numbers.", "input_schema": SCHEMA_IN,
    }


@pytest.mark.parametrize("fmt", sorted(FORMATS), ids=sorted(FORMATS))
def test_output_is_a_mutable_copy(fmt: str) -> None:
    s = spec()
    out = to_format(s, fmt)
    text = json.dumps(out)  # plain JSON types only (no mapping proxies, no tuples)
    params = out.get("inputSchema") or out.get("input_schema") or out.get("parameters") \
        or out["function"]["parameters"]
    params["properties"]["a"]["type"] = "string"
    params["required"].append("zzz")
    assert s.input_schema["properties"]["a"]["type"] == "number"
    assert tuple(s.input_schema["required"]) == ("a",)
    assert json.loads(text) == to_format(s, fmt)


def test_unknown_format_names_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        to_format(spec(), "langchain")
    assert info.value.details["valid"] == sorted(FORMATS)


def test_tool_specs_keeps_order() -> None:
    specs = [spec(name="b__x"), spec(name="a__x")]
    assert [t["name"] for t in tool_specs(specs, "anthropic")] == ["b__x", "a__x"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53 + 1, 2**53 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4),
    max_leaves=20,
)


@settings(max_examples=100)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_schema_round_trips_exactly(schema: dict[str, object]) -> None:
    s = spec(input_schema=freeze_mapping(schema))
    for fmt in FORMATS:
        out = to_format(s, fmt)
        got = out.get("inputSchema", out.get("input_schema", out.get("parameters")))
        if got is None:
            got = out["function"]["parameters"]
        assert got == schema
