"""The values the kernel hands out: ``ToolSpec``, ``LoadedSkill``, ``RefusedSkill``,
``Principal``, ``Invocation``.

They are frozen so a caller can keep them (in a trace, a cache, a test) without
the kernel changing them underneath; schemas are read-only mappings for the
same reason. ``Invocation`` carries the audit evidence of the call (the
sequence numbers of its entries, the leaf hash of the ``invocation_finished``
entry and a receipt, checkpoint + inclusion proof, fetched from the log on demand),
so a caller holds proof against later rewriting of the log.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: handing out values must not load the verifier stack
    from vak.identity.manifest import Manifest
    from vak.identity.ref import SkillRef
    from vak.identity.trust import Tier

__all__ = ["Invocation", "LoadedSkill", "Principal", "RefusedSkill", "ReloadResult", "ToolSpec",
           "freeze_mapping", "thaw"]


def freeze_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """A deep read-only view of a JSON-shaped mapping (dicts become proxies, lists tuples)."""
    frozen: Mapping[str, Any] = _freeze(value)
    return frozen


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """A fresh, mutable, JSON-ready deep copy of a frozen value (for frameworks)."""
    if isinstance(value, Mapping):
        return {str(k): thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One model-callable tool: a skill export under its wire name ``skill__export``.

    ``input_schema`` / ``output_schema`` come from the *signed* manifest, so
    what a model is shown is exactly what the signer approved.
    """

    name: str
    skill: str
    export: str
    description: str
    input_schema: Mapping[str, Any]
    output_schema: Mapping[str, Any]
    skill_version: str = ""
    module_sha256: str = ""
    signer_key_id: str = ""
    tier: str = "trusted"


@dataclass(frozen=True, slots=True)
class LoadedSkill:
    """A verified, compiled skill as the kernel holds it (:meth:`vak.Kernel.skills`)."""

    name: str
    version: str
    manifest: Manifest
    module_sha256: str
    signer_key_id: str
    tier: Tier
    skill_dir: str
    #: runs in the OS-sandboxed worker (every tier but TRUSTED, or ``worker.force``)
    use_worker: bool
    manifest_sha256: str = ""

    @property
    def ref(self) -> SkillRef:
        """How audit entries name this skill (docs/AUDIT-FORMAT.md, ``skill``)."""
        from vak.identity.ref import SkillRef

        return SkillRef.of(self.name, self.version, self.manifest_sha256, self.signer_key_id)


@dataclass(frozen=True, slots=True)
class RefusedSkill:
    """A skill of ``config.skill_dirs`` that failed to load (:meth:`vak.Kernel.refused_skills`).

    Every text field is already bounded and escaped (a manifest or a path is
    adversarial): it can be printed or logged as it is.
    """

    #: the skill directory as configured
    path: str
    #: the error code (``bad_signature``, ``digest_mismatch``, ``manifest_invalid``, ...)
    error: str
    #: why, bounded and escaped
    message: str
    #: the skill's identity, when its manifest could be read
    skill: SkillRef | None = None
    #: the ``skill_refused`` entry that records it (None: a read-only kernel records nothing)
    audit_seq: int | None = None

    def to_audit(self) -> dict[str, Any]:
        """The fields of the ``skill_refused`` entry (docs/AUDIT-FORMAT.md)."""
        out: dict[str, Any] = {"error": self.error, "path": self.path, "message": self.message}
        if self.skill is not None:
            out["skill"] = self.skill.to_audit()
        return out


@dataclass(frozen=True, slots=True)
class Principal:
    """Who asked for a call (the agent, user or service), recorded in the audit log.

    This is *not* the Cedar principal of host calls (that is always the skill);
    it is the caller's identity, kept so an auditor can tell who triggered what.
    """

    id: str = "anonymous"
    kind: str = "agent"
    attributes: Mapping[str, str] = field(default_factory=dict)

    def to_audit(self) -> dict[str, Any]:
        """The canonical-JSON-ready form written into audit entries."""
        out: dict[str, Any] = {"id": self.id, "kind": self.kind}
        if self.attributes:
            out["attributes"] = {str(k): str(v) for k, v in self.attributes.items()}
        return out


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What :meth:`vak.kernel.Kernel.reload` installed, and where the log records it."""

    #: digest of the policy set now deciding (the new ``policy_set`` entry names it)
    policy_set: str
    #: digest of the set it replaced (equal when the files did not change)
    previous_policy_set: str
    #: seq of the ``policy_set`` entry appended before any decision used the new set
    audit_seq: int
    #: the @ids of the policies now in force, in load order
    policy_ids: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether the policy files differ from the set they replaced."""
        return self.policy_set != self.previous_policy_set


@dataclass(frozen=True, slots=True)
class Invocation:
    """The result of one successful tool call, with its audit evidence."""

    tool: str
    output: Any
    fuel_used: int
    duration_ns: int
    host_calls: int
    invocation_id: str
    session: str | None
    call_id: str | None
    #: sequence numbers of the ``invocation_started`` and ``invocation_finished`` entries
    #: (equal for the one combined entry of a ``compact_invocations`` call without host calls)
    audit_seq_started: int
    audit_seq_finished: int
    #: RFC 9162 leaf hash (hex) of the ``invocation_finished`` entry
    leaf_hash: str
    worker: bool = False
    #: where :attr:`receipt` comes from (the kernel's audit log); not compared
    receipt_source: Callable[[int], Any] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def receipt(self) -> Any:
        """Checkpoint + inclusion proof (``vak.audit.log.Receipt``) for the finished entry.

        Fetched from the audit log when asked for, not on every call: signing
        a checkpoint per call would cost more than the call. Works after the
        kernel is closed (the final checkpoint covers every entry). None when
        the invocation was built without a log.
        """
        if self.receipt_source is None:
            return None
        return self.receipt_source(self.audit_seq_finished)

    @property
    def duration_ms(self) -> float:
        """Wall time of the guest call in milliseconds (for humans)."""
        return self.duration_ns / 1e6

    @property
    def audit_seqs(self) -> tuple[int, int]:
        """``(started, finished)`` audit sequence numbers."""
        return (self.audit_seq_started, self.audit_seq_finished)
