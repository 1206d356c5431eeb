"""The ``skill.yaml`` data model.

These frozen dataclasses are what the rest of the kernel sees of a skill: the
sandbox reads ``limits``, the host mediation reads ``capabilities`` (the
ceiling of what any policy may allow), the kernel reads ``exports``. They are
only ever built from a manifest that passed the JSON Schema in
``vak/schemas/`` (see ``load_manifest``), so their invariants hold:

* ``name`` and every export name match ``[a-z][a-z0-9_-]{0,30}``, so the wire
  name ``<skill>__<export>`` is at most 64 characters of ``[A-Za-z0-9_-]``;
* ``module.path`` is relative and stays inside the skill directory;
* export names are unique; every schema is itself a valid JSON Schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Capabilities",
    "ExportSpec",
    "Limits",
    "Manifest",
    "ModuleRef",
    "SignatureBlock",
]


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
