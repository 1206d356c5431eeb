"""A fast, conservative checker for the common subset of JSON Schema (internal).

``jsonschema``'s validator costs tens of microseconds per call even on valid
input, a large share of a warm tool call. Most tool schemas use a small
subset (``type``, ``properties``, ``required``, ``additionalProperties``,
string ``enum``, bounds), which this module compiles into plain closures.

Invariants:

* :func:`compile_fast` returns ``None`` for any schema that uses a keyword or
  value outside the subset it understands; the caller then uses jsonschema
  alone. A schema is never partly understood.
* A checker is only ever trusted to say *valid*: when it says *invalid*, the
  caller re-runs jsonschema, whose verdict (and message) wins. So the only
  property that matters for safety is "fast says valid => jsonschema says
  valid", which ``tests/test_kernel.py`` checks differentially with Hypothesis.
* Semantics follow Draft 2020-12 as jsonschema implements it: ``bool`` is
  neither ``integer`` nor ``number``; an ``integer`` may be a float with no
  fractional part; ``object`` is ``dict`` and ``array`` is ``list``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Check", "compile_fast"]

Check = Callable[[Any], bool]

_ANNOTATIONS = frozenset({"title", "description", "default", "examples", "$comment",
                          "deprecated", "readOnly", "writeOnly"})
_DRAFT_2020_12 = frozenset({"https://json-schema.org/draft/2020-12/schema",
                            "https://json-schema.org/draft/2020-12/schema#"})
_KNOWN = frozenset({
    "type", "properties", "required", "additionalProperties", "enum", "const",
    "minProperties", "maxProperties", "items", "minItems", "maxItems", "minLength",
    "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "$schema",
}) | _ANNOTATIONS
_MAX_DEPTH = 16


class _Unsupported(Exception):
    """The schema uses something outside the subset (fall back to jsonschema)."""


def compile_fast(schema: Any) -> Check | None:
    """A checker for ``schema``, or ``None`` if it is outside the supported subset."""
    try:
        return _compile(schema, 0)
    except _Unsupported:
        return None


def _is_int(x: Any) -> bool:
    t = type(x)
    return t is int or (t is float and x.is_integer())


def _is_num(x: Any) -> bool:
    t = type(x)
    return t is int or t is float


_TYPES: dict[str, Check] = {
    "object": lambda x: type(x) is dict,
    "array": lambda x: type(x) is list,
    "string": lambda x: type(x) is str,
    "integer": _is_int,
    "number": _is_num,
    "boolean": lambda x: type(x) is bool,
    "null": lambda x: x is None,
}


def _count(v: Any) -> int:
    # bounds must be non-negative ints (not bool) for the subset
    if type(v) is not int or v < 0:
        raise _Unsupported
    return v


def _number(v: Any) -> int | float:
    if type(v) not in (int, float):
        raise _Unsupported
    number: int | float = v
    return number


def _compile(schema: Any, depth: int) -> Check:
    if depth > _MAX_DEPTH:
        raise _Unsupported
    if schema is True:
        return lambda x: True
    if schema is False:
        return lambda x: False
    if type(schema) is not dict or any(type(k) is not str for k in schema):
        raise _Unsupported
    if not set(schema) <= _KNOWN:
        raise _Unsupported
    if "$schema" in schema and (depth or schema["$schema"] not in _DRAFT_2020_12):
        raise _Unsupported
    checks: list[Check] = []
    if "type" in schema:
        checks.append(_type_check(schema["type"]))
    if "enum" in schema:
        checks.append(_enum_check(schema["enum"]))
    if "const" in schema:
        checks.append(_enum_check([schema["const"]]))
    checks.extend(_object_checks(schema, depth))
    checks.extend(_array_checks(schema, depth))
    checks.extend(_scalar_checks(schema))
    return _all(checks)


def _type_check(spec: Any) -> Check:
    names = [spec] if type(spec) is str else spec
    if type(names) is not list or not names or any(
            type(n) is not str or n not in _TYPES for n in names):
        raise _Unsupported
    tests = tuple(_TYPES[n] for n in names)
    if len(tests) == 1:
        return tests[0]

    def some(x: Any) -> bool:
        for t in tests:  # noqa: SIM110 - hot path: no generator object per call
            if t(x):
                return True
        return False

    return some


def _enum_check(values: Any) -> Check:
    # strings only: jsonschema's equality has special cases (1 vs True, 1 vs 1.0)
    if type(values) is not list or not values or any(type(v) is not str for v in values):
        raise _Unsupported
    allowed = frozenset(values)
    return lambda x: type(x) is str and x in allowed


def _object_checks(schema: Mapping[str, Any], depth: int) -> list[Check]:
    props_raw = schema.get("properties", {})
    required = schema.get("required", [])
    extra_raw = schema.get("additionalProperties", True)
    if type(props_raw) is not dict or type(required) is not list or any(
            type(r) is not str for r in required):
        raise _Unsupported
    props = {k: _compile(v, depth + 1) for k, v in props_raw.items()}
    extra = _compile(extra_raw, depth + 1)
    lo = _count(schema.get("minProperties", 0))
    hi = schema.get("maxProperties")
    hi = None if hi is None else _count(hi)
    req = tuple(required)
    extra_any = extra_raw is True

    if not (props or req or not extra_any or lo or hi is not None):
        return []
    return [_object_check(props, req, extra, extra_any, lo, hi)]


def _object_check(props: Mapping[str, Check], req: tuple[str, ...], extra: Check,
                  extra_any: bool, lo: int, hi: int | None) -> Check:
    """The closure checking one object against compiled ``properties`` and bounds."""

    def check(x: Any) -> bool:
        if type(x) is not dict:
            return True  # these keywords only apply to objects
        n = len(x)
        if n < lo or (hi is not None and n > hi):
            return False
        for r in req:
            if r not in x:
                return False
        for key, value in x.items():
            sub = props.get(key)
            if sub is not None:
                if not sub(value):
                    return False
            elif not extra_any and not extra(value):
                return False
        return True

    return check


def _array_checks(schema: Mapping[str, Any], depth: int) -> list[Check]:
    if not ({"items", "minItems", "maxItems"} & set(schema)):
        return []
    items = _compile(schema.get("items", True), depth + 1)
    lo = _count(schema.get("minItems", 0))
    hi = schema.get("maxItems")
    hi = None if hi is None else _count(hi)

    def check(x: Any) -> bool:
        if type(x) is not list:
            return True
        if len(x) < lo or (hi is not None and len(x) > hi):
            return False
        return all(items(v) for v in x)

    return [check]


def _scalar_checks(schema: Mapping[str, Any]) -> list[Check]:
    out: list[Check] = []
    if "minLength" in schema or "maxLength" in schema:
        lo = _count(schema.get("minLength", 0))
        hi = schema.get("maxLength")
        hi = None if hi is None else _count(hi)
        out.append(lambda x: type(x) is not str or (
            len(x) >= lo and (hi is None or len(x) <= hi)))
    bounds = [(k, _number(schema[k])) for k in
              ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") if k in schema]
    if bounds:
        def check(x: Any) -> bool:
            if not _is_num(x):
                return True
            for key, b in bounds:
                if key == "minimum" and not x >= b:
                    return False
                if key == "maximum" and not x <= b:
                    return False
                if key == "exclusiveMinimum" and not x > b:
                    return False
                if key == "exclusiveMaximum" and not x < b:
                    return False
            return True
        out.append(check)
    return out


def _all(checks: list[Check]) -> Check:
    if not checks:
        return lambda x: True
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:  # the common "type + keywords" case, without a generator
        first, second = checks
        return lambda x: first(x) and second(x)
    tup = tuple(checks)

    def every(x: Any) -> bool:
        for c in tup:  # noqa: SIM110 - hot path: no generator object per call
            if not c(x):
                return False
        return True

    return every
