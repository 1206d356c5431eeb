"""Tool input/output validation errors never quote the offending value (it may be a secret)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vak.errors import InputValidationError, OutputValidationError, VakError
from vak.identity.validation import compile_validator

SECRET = "hunter2-Sup3rS3cret"
SCHEMA = {
    "type": "object",
    "properties": {"n": {"type": "integer", "maximum": 3}, "op": {"enum": ["add", "sub"]},
                   "s": {"type": "string", "pattern": "^z", "maxLength": 4},
                   "list": {"type": "array", "items": {"const": 1}}},
    "required": ["op"],
    "additionalProperties": False,
}

CASES: dict[str, Any] = {
    "type": {"op": "add", "n": SECRET},
    "maximum": {"op": "add", "n": 10**30},
    "enum": {"op": SECRET},
    "pattern": {"op": "add", "s": SECRET},
    "extra-key": {"op": "add", SECRET: 1},
    "nested-const": {"op": "add", "list": [1, SECRET]},
    "not-object": [SECRET],
}


@pytest.mark.parametrize("direction", ["input", "output"])
@pytest.mark.parametrize("instance", CASES.values(), ids=CASES.keys())
def test_messages_name_path_and_rule_not_value(direction: str, instance: Any) -> None:
    validator = compile_validator("t__x", direction, SCHEMA)
    cls = InputValidationError if direction == "input" else OutputValidationError
    with pytest.raises(cls) as info:
        validator.check(instance)
    err = info.value
    assert SECRET not in err.message and SECRET not in str(err.details)
    assert SECRET not in err.diagnostics()
    assert err.message.startswith(f"t__x: {direction} at /")


def test_required_still_names_the_property() -> None:
    with pytest.raises(InputValidationError, match="'op' is a required property"):
        compile_validator("t__x", "input", SCHEMA).check({})


@given(st.text(max_size=30).map(lambda s: "Q7#" + s))
def test_no_string_value_is_ever_echoed(value: str) -> None:
    validator = compile_validator("t__x", "output", SCHEMA)
    for instance in ({"op": value}, {"op": "add", "n": value}, {"op": "add", "s": value * 2}):
        try:
            validator.check(instance)
        except VakError as exc:
            assert value not in exc.message
