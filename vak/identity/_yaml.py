"""Strict YAML for VAK's signed and trusted files (skill manifests, trust stores).

What an author reads must be what gets signed, and a hostile file must not
exhaust the loader, so the YAML accepted here keeps to JSON's data model:

* one mapping with unique string keys (a duplicate key is an error, never
  "the last one wins");
* no timestamps and no YAML 1.1 ``yes``/``on``/``off`` booleans (they stay
  strings), no aliases (a small file cannot expand exponentially);
* nesting at most :data:`MAX_DEPTH` levels.

libyaml parses when it is available (about 10x faster), behind a pre-pass
that sends anything unusual to the pure-Python loader, whose checks are the
reference; :func:`load_yaml_mapping` behaves the same either way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from vak.errors import ManifestError

__all__ = [
    "MAX_DEPTH", "depth", "dump_manifest_yaml", "load_yaml_mapping", "too_deep", "type_name",
]

#: deeper nesting is refused (JSON Schemas need far less; recursion stays bounded)
MAX_DEPTH = 64



class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that keeps to JSON: duplicate keys are an error, dates stay strings.

    YAML 1.1's ``yes``/``on``/``off`` booleans are not recognised either, so
    what an author reads is what gets signed. Aliases are refused: they add
    nothing a manifest needs and let a small file expand exponentially.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            peek: Any = self.peek_event  # untyped in the stubs
            event = peek()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)


_StrictLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _construct_mapping(loader: Any, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    out: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise yaml.constructor.ConstructorError(
                None, None, f"mapping key {key!r} is not a string", key_node.start_mark
            )
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        out[key] = loader.construct_object(value_node, deep=True)
    return out


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)

_CSafeLoader: Any = getattr(yaml, "CSafeLoader", None)
#: the libyaml-backed strict loader, or None when PyYAML was built without libyaml
_CStrictLoader: Any = None
if _CSafeLoader is not None:

    class _CStrict(_CSafeLoader):  # type: ignore[misc]
        """libyaml parses and composes; the same strict resolvers and constructors build.

        Only used on documents :func:`_simple_events` has cleared (no alias,
        nesting within ``MAX_DEPTH``): libyaml's composer cannot refuse
        aliases itself and recurses in C, so anything else takes the
        pure-Python :class:`_StrictLoader`, whose checks are the reference.
        """

        yaml_implicit_resolvers = _StrictLoader.yaml_implicit_resolvers

    _CStrict.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    _CStrictLoader = _CStrict


def _simple_events(text: str) -> bool:
    """Whether libyaml may compose ``text``: it parses, has no alias, nests <= MAX_DEPTH.

    libyaml's parser is iterative, so this pass is safe on any input; a
    ``False`` sends the document to the pure-Python loader, which reports
    the problem exactly as it always has.
    """
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_CSafeLoader):
            kind = type(event)
            if kind is _START_SEQ or kind is _START_MAP:
                depth += 1
                if depth > MAX_DEPTH:
                    return False
            elif kind is _END_SEQ or kind is _END_MAP:
                depth -= 1
            elif kind is yaml.events.AliasEvent:
                return False
    except yaml.YAMLError:
        return False
    return True


_START_SEQ, _START_MAP = yaml.events.SequenceStartEvent, yaml.events.MappingStartEvent
_END_SEQ, _END_MAP = yaml.events.SequenceEndEvent, yaml.events.MappingEndEvent


def load_yaml_mapping(data: bytes | str, source: str) -> dict[str, Any]:
    """Parse YAML that must be a single mapping with unique string keys.

    Raises:
        ManifestError: not UTF-8, not YAML, a duplicate or non-string key, or
            the document is not a mapping.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})",
            file=source, fix="save the file as UTF-8",
        ) from None
    # libyaml is ~10x faster; the same strictness holds either way (see _CStrictLoader)
    fast = _CStrictLoader is not None and _simple_events(text)
    try:
        value = yaml.load(text, Loader=_CStrictLoader if fast else _StrictLoader)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(
            f"{source}: invalid YAML{where}: {problem}", file=source,
            fix="fix the YAML syntax; keys must be unique strings",
        ) from None
    except RecursionError:
        raise too_deep(source) from None
    if not isinstance(value, dict):
        raise ManifestError(
            f"{source}: the document must be a mapping of fields, got "
            f"{type_name(value)}",
            file=source, field="$", valid="a mapping such as 'name: my-skill'",
        )
    return value


def too_deep(source: str) -> ManifestError:
    return ManifestError(
        f"{source}: nested too deeply", file=source, valid=f"at most {MAX_DEPTH} levels",
    )


def depth(value: Any, limit: int) -> int:
    """Nesting depth of ``value``, giving up (returning > limit) past ``limit``."""
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list | tuple):
            stack.extend((v, level + 1) for v in item)
    return deepest


def dump_manifest_yaml(mapping: Mapping[str, Any]) -> str:
    """Render a manifest mapping as block YAML, keeping the mapping's field order."""
    return yaml.safe_dump(
        dict(mapping), sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
    )


def type_name(value: Any) -> str:
    """How a message names the JSON type of ``value`` ('a mapping', 'a list', ...)."""
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
             int: "an integer", float: "a float", type(None): "null"}
    return names.get(type(value), type(value).__name__)
