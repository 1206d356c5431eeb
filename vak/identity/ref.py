"""``SkillRef``: the one shape in which the audit log names a skill.

Every audit entry that names a skill (``invocation_started``, ``host_decision``,
``invocation_finished``, ``skill_loaded``, ``skill_refused``, ``worker_crashed``)
carries ``skill = SkillRef.to_audit()``, the object docs/AUDIT-FORMAT.md
defines::

    {"id": "calculator", "version": "1.0.0",
     "manifest_digest": "sha256:<hex>", "signer": "ed25519:<hex>"}

``skill_loaded`` adds ``module_sha256`` and ``tier`` to that object (see
:meth:`SkillRef.to_audit_loaded`); no entry writes any other shape, so a
reader can follow one skill through a log by comparing ``skill`` objects.

Example::

    >>> ref = SkillRef("calculator", "1.0.0", "sha256:" + "0" * 64, "")
    >>> ref.to_audit()["id"]
    'calculator'
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SkillRef"]


@dataclass(frozen=True, slots=True)
class SkillRef:
    """A skill's identity: name, version, signed manifest digest and signer."""

    #: the manifest's ``name``
    id: str
    #: the manifest's ``version`` (semantic version 2.0.0)
    version: str
    #: ``sha256:<hex>`` of the signed canonical manifest
    manifest_digest: str
    #: the signer's key id (``ed25519:<hex>``), or "" for an unsigned development skill
    signer: str

    @classmethod
    def of(cls, name: str, version: str, manifest_sha256: str, signer: str) -> SkillRef:
        """The ref of a skill whose signed manifest has the bare hex digest ``manifest_sha256``."""
        return cls(name, version, f"sha256:{manifest_sha256}", signer)

    def to_audit(self) -> dict[str, str]:
        """The ``skill`` object of an audit entry (a new dict each call: callers may extend it)."""
        return {"id": self.id, "version": self.version,
                "manifest_digest": self.manifest_digest, "signer": self.signer}

    def to_audit_loaded(self, module_sha256: str, tier: str) -> dict[str, str]:
        """The ``skill`` object of a ``skill_loaded`` entry: also the module digest and tier.

        Args:
            module_sha256: lowercase hex sha256 of the module (written ``sha256:<hex>``).
            tier: the signer's trust tier (a :class:`~vak.identity.trust.Tier`).
        """
        return {**self.to_audit(), "module_sha256": f"sha256:{module_sha256}",
                "tier": str(tier)}
