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

from vak.canonical import CanonicalError, canonical_bytes
from vak.errors import ManifestError
from vak.identity._yaml import (
    MAX_DEPTH,
    depth,
    dump_manifest_yaml,
    load_yaml_mapping,
    too_deep,
    type_name,
)
from vak.identity.semver import MAX_VERSION_LENGTH, Version
from vak.identity.text import excerpt

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
#: a manifest larger than this is refused before parsing (fail closed on huge input)
MAX_MANIFEST_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class ModuleRef:
    """The skill's wasm module: a path relative to the skill dir and its digest."""

    path: str
    sha256: str | None  # lowercase hex; None only before `vak-skill-sign sign`
    #: "core" (core module, ``vak.<fn>`` ABI) or "component" (``vak:skill`` WIT world)
    kind: str = "core"


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


def _field_path(parts: Any) -> str:
    """``exports[1].name``; keys from the file are escaped and bounded (they are its text)."""
    out = ""
    for part in parts:
        name = excerpt(part, quote=False, limit=64)
        out += f"[{part}]" if isinstance(part, int) else (f".{name}" if out else name)
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
            f"{source}: {field_}: unknown field {excerpt(extra[0])}" if extra
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
        what = f"expected {error.validator_value}, got {type_name(error.instance)}"
    elif error.validator in ("pattern", "const", "enum"):
        what = f"{excerpt(error.instance)} is not allowed"
    else:
        what = excerpt(error.message, quote=False)
    return ManifestError(
        f"{source}: {field_}: {what}" + (f"; valid: {valid}" if valid else ""),
        file=source, field=field_, valid=valid,
    )


def _check_version(version: str, source: str) -> None:
    """The version must be comparable (the version floor orders versions by precedence)."""
    try:
        Version.parse(version)
    except ValueError:
        raise ManifestError(
            f"{source}: version: longer than {MAX_VERSION_LENGTH} characters", file=source,
            field="version", valid=f"a semantic version of at most {MAX_VERSION_LENGTH} "
            "characters such as \"1.0.0\"",
        ) from None


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
            f"{source}: {fld}: {excerpt(path)} {bad}; valid: a relative path inside the skill "
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
            f"{source}: the manifest must be a mapping, got {type_name(mapping)}",
            file=source, field="$",
        )
    raw = dict(mapping)
    if depth(raw, MAX_DEPTH) > MAX_DEPTH:
        raise too_deep(source)
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
    _check_version(raw["version"], source)
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
        module=ModuleRef(path=raw["module"]["path"], sha256=raw["module"].get("sha256"),
                         kind=raw["module"].get("kind", "core")),
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
