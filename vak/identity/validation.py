"""Compiled JSON Schema validators for tool input and output (compiled once at load).

Compiling a validator costs far more than using one, so the kernel builds one
per export per direction when a skill loads and reuses it for every call.
Validation failures raise (never return a bool): input failures are
:class:`InputValidationError` (the guest never runs), output failures are
:class:`OutputValidationError` (the guest's answer is not passed on).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator

from vak.errors import InputValidationError, OutputValidationError, SkillLoadError
from vak.identity._schemafast import Check, compile_fast
from vak.identity._yaml import type_name
from vak.identity.text import excerpt

__all__ = ["SchemaValidator", "compile_validator"]


@dataclass(frozen=True, slots=True)
class SchemaValidator:
    """One compiled Draft 2020-12 validator and what it guards (for messages)."""

    tool: str
    direction: str  # "input" | "output"
    validator: Validator
    #: a subset checker trusted only to say "valid" (see vak.identity._schemafast), or None
    fast: Check | None = None

    def check(self, instance: Any) -> None:
        """Validate ``instance``.

        Valid input (the common case) takes the fast path: the subset checker
        or ``is_valid``; the costly ``best_match`` over every error runs only
        to explain a failure, so jsonschema always has the last word on one.

        Raises:
            InputValidationError: direction "input" and ``instance`` does not match.
            OutputValidationError: direction "output" and ``instance`` does not match.
        """
        fast = self.fast
        if fast is not None and fast(instance):
            return
        if self.validator.is_valid(instance):
            return
        error = best_match(self.validator.iter_errors(instance))
        cls = InputValidationError if self.direction == "input" else OutputValidationError
        if error is None:  # pragma: no cover - is_valid said invalid: fail closed
            raise cls(f"{self.tool}: {self.direction} does not match its schema",
                      tool=self.tool, path="/")
        where = "/" + "/".join(excerpt(p, quote=False, limit=64) for p in error.absolute_path)
        raise cls(
            f"{self.tool}: {self.direction} at {where}: {_problem(error)}",
            tool=self.tool,
            path=where,
            schema_path="/" + "/".join(str(p) for p in error.absolute_schema_path),
        )


def _problem(error: jsonschema.ValidationError) -> str:
    """What is wrong, told from the schema's side: never the offending value itself.

    The value came from the model (input) or the guest (output); it may hold a
    secret, and this message reaches the model, the CLI and the audit log.
    """
    if error.validator == "required":
        return error.message  # "'a' is a required property": the name is the schema's
    if error.validator == "type":
        return f"expected {excerpt(error.validator_value)}, got {type_name(error.instance)}"
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        return "a property the schema does not allow"
    rule = excerpt(error.validator_value, limit=80)
    wording = _WORDING.get(str(error.validator))
    if wording is not None:
        return wording.format(rule=rule)
    return f"does not satisfy {error.validator!s}: {rule}"


#: jsonschema's wording for the common keywords, minus the offending value
_WORDING = {
    "enum": "is not one of {rule}",
    "const": "{rule} was expected",
    "pattern": "does not match {rule}",
    "format": "is not a {rule}",
    "maximum": "is greater than the maximum of {rule}",
    "minimum": "is less than the minimum of {rule}",
    "exclusiveMaximum": "is greater than or equal to the maximum of {rule}",
    "exclusiveMinimum": "is less than or equal to the minimum of {rule}",
    "maxLength": "is longer than {rule} characters",
    "minLength": "is shorter than {rule} characters",
    "maxItems": "has more than {rule} items",
    "minItems": "has fewer than {rule} items",
    "maxProperties": "has more than {rule} properties",
    "minProperties": "has fewer than {rule} properties",
    "multipleOf": "is not a multiple of {rule}",
    "uniqueItems": "has non-unique items",
}


def compile_validator(tool: str, direction: str, schema: Mapping[str, Any]) -> SchemaValidator:
    """Check ``schema`` is a valid Draft 2020-12 schema and compile it.

    Raises:
        SkillLoadError: the schema itself is invalid (the signing room's loader
            should already have refused it; this is the kernel's own guard).
    """
    plain = _plain(schema)
    cls = jsonschema.validators.validator_for(plain, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(plain)
    except jsonschema.SchemaError as exc:
        raise SkillLoadError(
            f"{tool}: invalid {direction}_schema: {exc.message}", tool=tool
        ) from None
    fast = compile_fast(plain) if cls is jsonschema.Draft202012Validator else None
    return SchemaValidator(tool, direction, cls(plain), fast)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
