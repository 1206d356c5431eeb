"""The kernel's tool registry: wire names, collisions, lookups (thread-safe).

A wire name is ``<skill>__<export>``, at most 64 characters of
``[A-Za-z0-9_-]`` so every agent framework accepts it. Two skills that would
expose the same wire name are refused at load (``SkillLoadError``), never
silently shadowed: a model must not be able to call a different skill than
the one the operator thinks it calls.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vak.audit.entry import Sealed
from vak.errors import SkillLoadError, UnknownToolError
from vak.identity.validation import SchemaValidator, compile_validator
from vak.invocation import LoadedSkill, ToolSpec, freeze_mapping

__all__ = [
    "WIRE_NAME_RE", "LoadedSkill", "RegisteredTool", "Registry", "wire_name",
]

WIRE_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def wire_name(skill: str, export: str) -> str:
    """``skill__export``, checked against :data:`WIRE_NAME_RE`.

    Raises:
        SkillLoadError: the result is not a valid wire name.
    """
    name = f"{skill}__{export}"
    if not WIRE_NAME_RE.match(name):
        raise SkillLoadError(
            f"wire name {name!r} is not 1-64 characters of [A-Za-z0-9_-]",
            skill=skill, export=export,
        )
    return name


@dataclass(frozen=True, slots=True)
class RegisteredTool:
    """One callable tool: its spec, its skill and its compiled validators."""

    spec: ToolSpec
    skill: LoadedSkill
    input_validator: SchemaValidator
    output_validator: SchemaValidator
    #: ``skill.ref.to_audit()``, built once (every audit entry of a call
    #: carries it; the log encodes it and never mutates or keeps it)
    audit_skill: Mapping[str, Any] = field(default_factory=dict)
    #: the same, checked and encoded once, for a sink that ``accepts_sealed``
    #: (``vak.audit.entry.Sealed``; None: use ``audit_skill``)
    sealed_skill: Sealed | None = None


class Registry:
    """Wire name → :class:`RegisteredTool`; adds are atomic per skill."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tools: dict[str, RegisteredTool] = {}
        self._skills: dict[str, LoadedSkill] = {}

    def build(self, skill: LoadedSkill) -> list[RegisteredTool]:
        """Specs and compiled validators for every export of ``skill`` (no registration).

        Raises:
            SkillLoadError: a wire name or schema is invalid.
        """
        out = []
        ref = skill.ref.to_audit()
        sealed = Sealed(ref)
        for export in skill.manifest.exports:
            name = wire_name(skill.name, export.name)
            spec = ToolSpec(
                name=name,
                skill=skill.name,
                export=export.name,
                description=export.description,
                input_schema=freeze_mapping(export.input_schema),
                output_schema=freeze_mapping(export.output_schema),
                skill_version=skill.version,
                module_sha256=skill.module_sha256,
                signer_key_id=skill.signer_key_id,
                tier=str(skill.tier),
            )
            out.append(RegisteredTool(
                spec,
                skill,
                compile_validator(name, "input", export.input_schema),
                compile_validator(name, "output", export.output_schema),
                ref,
                sealed,
            ))
        return out

    def add(self, tools: list[RegisteredTool]) -> None:
        """Register ``tools`` all at once, or none of them.

        Raises:
            SkillLoadError: a skill of that name is already loaded, or a wire
                name collides with a loaded tool (or with another in ``tools``).
        """
        with self._lock:
            seen: set[str] = set()
            for tool in tools:
                if tool.skill.name in self._skills:
                    raise SkillLoadError(
                        f"skill {tool.skill.name!r} is already loaded "
                        f"(from {self._skills[tool.skill.name].skill_dir})",
                        skill=tool.skill.name, skill_dir=tool.skill.skill_dir,
                    )
                name = tool.spec.name
                if name in self._tools or name in seen:
                    raise SkillLoadError(
                        f"wire name collision: {name!r} is already provided",
                        tool=name, skill_dir=tool.skill.skill_dir,
                        fix="rename the skill or the export",
                    )
                seen.add(name)
            for tool in tools:
                self._tools[tool.spec.name] = tool
                self._skills[tool.skill.name] = tool.skill

    def discard(self, tools: list[RegisteredTool]) -> None:
        """Unregister ``tools`` (undo an :meth:`add` whose load could not be audited)."""
        with self._lock:
            for tool in tools:
                if self._tools.get(tool.spec.name) is tool:
                    del self._tools[tool.spec.name]
                if self._skills.get(tool.skill.name) is tool.skill:
                    del self._skills[tool.skill.name]

    def get(self, name: str) -> RegisteredTool:
        """The tool called ``name``.

        Raises:
            UnknownToolError: no loaded skill exports it.
        """
        tool = self._tools.get(name)
        if tool is None:
            raise UnknownToolError(
                f"unknown tool {name!r}", tool=name, known=sorted(self._tools)[:50]
            )
        return tool

    def specs(self) -> tuple[ToolSpec, ...]:
        """Every tool's spec, sorted by wire name."""
        with self._lock:
            return tuple(self._tools[n].spec for n in sorted(self._tools))

    def skills(self) -> tuple[LoadedSkill, ...]:
        """Every loaded skill, sorted by name."""
        with self._lock:
            return tuple(self._skills[n] for n in sorted(self._skills))
