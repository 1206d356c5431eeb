"""The ``skill.yaml`` data model.

These frozen dataclasses are what the rest of the kernel sees of a skill: the
sandbox reads ``limits``, the host mediation reads ``capabilities`` (the
ceiling of what any policy may allow), the kernel reads ``exports``. They are
only ever built from a manifest that passed the JSON Schema in
``vak/identity/schemas/`` (see ``load_manifest``), so their invariants hold:

* ``name`` and every export name match ``[a-z][a-z0-9_-]{0,30}``, so the wire
  name ``<skill>__<export>`` is at most 64 characters of ``[A-Za-z0-9_-]``;
* ``module.path`` is relative and stays inside the skill directory;
* export names are unique; every schema is itself a valid JSON Schema.

Example::

    >>> m = load_manifest("skills/calculator")          # doctest: +SKIP
    >>> m.name, [e.name for e in m.exports]              # doctest: +SKIP
    ('calculator', ['execute'])

Loading never trusts the file: the YAML must be one mapping without duplicate
keys, every value must be inside the canonical JSON profile (``vak.canonical``:
no floats, no dates), and every failure is a :class:`~vak.errors.ManifestError`
whose ``details`` name the ``file``, the ``field`` path (``exports[1].name``)
and what would be ``valid``. Loading does **not** check the signature or the
module digest; that is :func:`vak.identity.signing.verify_skill`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import yaml

from vak.canonical import CanonicalError, canonical_bytes
from vak.errors import ManifestError

__all__ = [
    "MANIFEST_FILE",
    "MAX_DEPTH",
    "MAX_MANIFEST_BYTES",
    "Capabilities",
    "ExportSpec",
    "Limits",
    "Manifest",
    "ModuleRef",
    "SignatureBlock",
    "dump_manifest_yaml",
    "load_manifest",
    "load_yaml_mapping",
    "manifest_schema",
    "parse_manifest",
    "read_manifest_bytes",
    "resolve_module_path",
]

#: the manifest's file name inside a skill directory
MANIFEST_FILE = "skill.yaml"
#: deeper nesting is refused (JSON Schemas need far less; recursion stays bounded)
MAX_DEPTH = 64
#: a manifest larger than this is refused before parsing (fail closed on huge input)
MAX_MANIFEST_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class ModuleRef:
    """The skill's wasm module: a path relative to the skill dir and its digest."""

    path: str
    sha256: str | None  # lowercase hex; None only before `vak-skill-sign sign`


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the skill declares it needs. Anything not declared is denied.

    fs paths are guest-visible absolute paths (``/workspace/notes``) that the
    kernel's ``fs_mounts`` map onto host directories; http entries are
    ``host`` or ``host:port`` patterns (``*.example.com`` allowed).
    """

    fs_read: tuple[str, ...] = ()
    fs_write: tuple[str, ...] = ()
    http: tuple[str, ...] = ()
    kv: bool = False
    secrets: tuple[str, ...] = ()
    log: bool = False
    clock: bool = False
    random: bool = False


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-call resource limits, enforced by the sandbox and the mediation."""

    max_memory_pages: int = 256  # 64 KiB pages -> 16 MiB
    max_execution_time_ms: int = 1000
    max_fuel: int = 100_000_000
    max_output_bytes: int = 1 << 20
    max_host_calls: int = 64


@dataclass(frozen=True, slots=True)
class ExportSpec:
    """One tool the skill offers: a wasm export plus its JSON Schemas."""

    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SignatureBlock:
    """The Ed25519 signature over the canonical manifest minus this block."""

    algorithm: str  # "ed25519"
    key_id: str
    value: str  # base64 of the 64-byte signature


@dataclass(frozen=True, slots=True)
class Manifest:
    """A parsed, schema-valid ``skill.yaml``."""

    name: str
    version: str
    description: str
    author: str
    license: str
    module: ModuleRef
    capabilities: Capabilities
    limits: Limits
    exports: tuple[ExportSpec, ...]
    signature: SignatureBlock | None = None
    #: the raw mapping as loaded (what gets canonicalised and signed)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def export(self, name: str) -> ExportSpec | None:
        """The export called ``name``, or None."""
        for spec in self.exports:
            if spec.name == name:
                return spec
        return None


# --------------------------------------------------------------------------- YAML


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that keeps to JSON: duplicate keys are an error, dates stay strings.

    YAML 1.1's ``yes``/``on``/``off`` booleans are not recognised either, so
    what an author reads is what gets signed. Aliases are refused: they add
    nothing a manifest needs and let a small file expand exponentially.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
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
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping  # type: ignore[arg-type]
)

_CSafeLoader: Any = getattr(yaml, "CSafeLoader", None)
if _CSafeLoader is not None:

    class _CStrictLoader(_CSafeLoader):  # type: ignore[misc, valid-type]
        """libyaml parses and composes; the same strict resolvers and constructors build.

        Only used on documents :func:`_simple_events` has cleared (no alias,
        nesting within ``MAX_DEPTH``): libyaml's composer cannot refuse
        aliases itself and recurses in C, so anything else takes the
        pure-Python :class:`_StrictLoader`, whose checks are the reference.
        """

        yaml_implicit_resolvers = _StrictLoader.yaml_implicit_resolvers

    _CStrictLoader.add_constructor(
        yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
    )
else:  # pragma: no cover - PyYAML built without libyaml
    _CStrictLoader = None


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
        raise _too_deep(source) from None
    if not isinstance(value, dict):
        raise ManifestError(
            f"{source}: the document must be a mapping of fields, got "
            f"{_type_name(value)}",
            file=source, field="$", valid="a mapping such as 'name: my-skill'",
        )
    return value


def _too_deep(source: str) -> ManifestError:
    return ManifestError(
        f"{source}: nested too deeply", file=source, valid=f"at most {MAX_DEPTH} levels",
    )


def _depth(value: Any, limit: int) -> int:
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


# --------------------------------------------------------------------------- schema


@cache
def manifest_schema() -> dict[str, Any]:
    """The manifest's JSON Schema (Draft 2020-12), shipped in ``vak/identity/schemas``."""
    schema_file = resources.files("vak.identity").joinpath("schemas", "manifest.schema.json")
    text = schema_file.read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(manifest_schema())


def _type_name(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
             int: "an integer", float: "a float", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _field_path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "$"


def _schema_error(error: jsonschema.ValidationError, source: str) -> ManifestError:
    path = list(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    valid = schema.get("description")
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in allowed)
        field_ = _field_path([*path, extra[0]]) if extra else _field_path(path)
        return ManifestError(
            f"{source}: {field_}: unknown field {extra[0]!r}" if extra
            else f"{source}: {field_}: unknown field",
            file=source, field=field_, valid="one of: " + ", ".join(allowed),
            fix="remove the field or fix its spelling",
        )
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        field_ = _field_path([*path, missing])
        sub = schema.get("properties", {}).get(missing, {})
        return ManifestError(
            f"{source}: {field_}: required field is missing", file=source, field=field_,
            valid=sub.get("description"), fix=f"add '{missing}'",
        )
    field_ = _field_path(path)
    if error.validator == "type":
        what = f"expected {error.validator_value}, got {_type_name(error.instance)}"
    elif error.validator in ("pattern", "const", "enum"):
        what = f"{error.instance!r} is not allowed"
    else:
        what = error.message
    return ManifestError(
        f"{source}: {field_}: {what}" + (f"; valid: {valid}" if valid else ""),
        file=source, field=field_, valid=valid,
    )


def _check_module_path(path: str, source: str) -> None:
    fld = "module.path"
    bad = None
    if "\\" in path or "\x00" in path:
        bad = "contains a backslash or NUL"
    elif path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        bad = "is absolute"
    elif any(part in ("..", ".") for part in path.split("/")) or "//" in path:
        bad = "has '.', '..' or empty segments"
    elif path.endswith("/"):
        bad = "names a directory"
    if bad:
        raise ManifestError(
            f"{source}: {fld}: {path!r} {bad}; valid: a relative path inside the skill "
            "directory such as 'skill.wasm' or 'build/skill.wasm'",
            file=source, field=fld, valid="a relative path inside the skill directory",
        )


def _check_exports(exports: list[dict[str, Any]], source: str) -> None:
    seen: dict[str, int] = {}
    for i, export in enumerate(exports):
        name = export["name"]
        if name in seen:
            raise ManifestError(
                f"{source}: exports[{i}].name: duplicate export {name!r} "
                f"(also exports[{seen[name]}]); valid: unique export names",
                file=source, field=f"exports[{i}].name", valid="unique export names",
                fix="rename or remove one of the exports",
            )
        seen[name] = i
        for key in ("input_schema", "output_schema"):
            try:
                jsonschema.Draft202012Validator.check_schema(export[key])
            except jsonschema.SchemaError as exc:
                inner = _field_path(exc.absolute_path)
                where = f" at {inner}" if inner != "$" else ""
                raise ManifestError(
                    f"{source}: exports[{i}].{key}: not a valid JSON Schema{where}: "
                    f"{exc.message}",
                    file=source, field=f"exports[{i}].{key}",
                    valid="a JSON Schema (Draft 2020-12)",
                ) from None


def parse_manifest(mapping: Mapping[str, Any], source: str = "<manifest>") -> Manifest:
    """Validate a loaded ``skill.yaml`` mapping and build the :class:`Manifest`.

    Args:
        mapping: the YAML document (``load_yaml_mapping``) or an equivalent dict.
        source: file name used in error messages.

    Raises:
        ManifestError: the mapping breaks the schema, holds a value outside
            the canonical profile, has an absolute/escaping module path,
            duplicate export names, or an export schema that is not a valid
            JSON Schema. The message names ``source`` and the field path.
    """
    if not isinstance(mapping, Mapping):
        raise ManifestError(
            f"{source}: the manifest must be a mapping, got {_type_name(mapping)}",
            file=source, field="$",
        )
    raw = dict(mapping)
    if _depth(raw, MAX_DEPTH) > MAX_DEPTH:
        raise _too_deep(source)
    errors = sorted(
        _validator().iter_errors(raw),
        key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))),
    )
    if errors:
        raise _schema_error(errors[0], source)
    try:
        canonical_bytes(raw)
    except CanonicalError as exc:
        text = str(exc)
        fld = text.split(":", 1)[0].removeprefix("$").lstrip(".") or "$"
        raise ManifestError(
            f"{source}: {text.removeprefix('$.')}; valid: JSON values only "
            "(strings, integers, booleans, null, lists, mappings; no floats or dates)",
            file=source, field=fld, fix="use integers instead of floats, quote dates",
        ) from None
    _check_module_path(raw["module"]["path"], source)
    _check_exports(raw["exports"], source)
    return _build(raw)


def _build(raw: dict[str, Any]) -> Manifest:
    caps = raw.get("capabilities", {})
    fs = caps.get("fs", {})
    sig = raw.get("signature")
    return Manifest(
        name=raw["name"],
        version=raw["version"],
        description=raw["description"],
        author=raw["author"],
        license=raw["license"],
        module=ModuleRef(path=raw["module"]["path"], sha256=raw["module"].get("sha256")),
        capabilities=Capabilities(
            fs_read=tuple(fs.get("read", ())),
            fs_write=tuple(fs.get("write", ())),
            http=tuple(caps.get("http", {}).get("hosts", ())),
            kv=caps.get("kv", False),
            secrets=tuple(caps.get("secrets", ())),
            log=caps.get("log", False),
            clock=caps.get("clock", False),
            random=caps.get("random", False),
        ),
        limits=Limits(**raw.get("limits", {})),
        exports=tuple(
            ExportSpec(e["name"], e["description"], e["input_schema"], e["output_schema"])
            for e in raw["exports"]
        ),
        signature=SignatureBlock(**sig) if sig is not None else None,
        raw=raw,
    )


def read_manifest_bytes(skill_dir: str | Path) -> tuple[Path, bytes]:
    """Read ``skill_dir/skill.yaml`` once, refusing huge files.

    Raises:
        ManifestError: the directory or file is missing, unreadable or too big.
    """
    path = Path(skill_dir) / MANIFEST_FILE
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise ManifestError(
            f"{path}: no skill manifest here", file=str(path),
            fix=f"pass a skill directory that contains {MANIFEST_FILE}",
        ) from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read: {exc.strerror}", file=str(path)) from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(
            f"{path}: larger than {MAX_MANIFEST_BYTES} bytes", file=str(path),
            valid=f"at most {MAX_MANIFEST_BYTES} bytes",
        )
    return path, data


def load_manifest(skill_dir: str | Path) -> Manifest:
    """Load and validate ``skill_dir/skill.yaml`` (signature NOT checked).

    Raises:
        ManifestError: missing/unreadable file, bad YAML, or any schema
            violation (see :func:`parse_manifest`).
    """
    path, data = read_manifest_bytes(skill_dir)
    return parse_manifest(load_yaml_mapping(data, str(path)), str(path))


def resolve_module_path(skill_dir: str | Path, manifest: Manifest) -> Path:
    """The module's real path, which must stay inside the skill directory.

    The manifest's path is already relative and free of ``..``; this also
    catches a symlink that points outside the skill directory.

    Raises:
        ManifestError: the resolved path leaves the skill directory.
    """
    root = Path(skill_dir).resolve()
    target = (root / PurePosixPath(manifest.module.path)).resolve()
    if not target.is_relative_to(root):
        src = str(Path(skill_dir) / MANIFEST_FILE)
        raise ManifestError(
            f"{src}: module.path: {manifest.module.path!r} resolves outside the skill "
            f"directory ({target})",
            file=src, field="module.path",
            valid="a file inside the skill directory (not a symlink out of it)",
        )
    return target
