"""The public surface of ``vak`` is pinned here: changing it is a deliberate act."""

from __future__ import annotations

import vak
import vak.errors

EXPECTED = [
    "ABIError", "AuditError", "AuditIntegrityError", "AuditVerificationError", "CapacityError",
    "ConfigError",
    "DigestMismatchError", "FuelExhausted", "GuestTrap", "HostCallLimitError",
    "InputValidationError", "Invocation", "Kernel", "KernelConfig", "KeyFileError",
    "ManifestError", "MemoryLimitExceeded", "OSSandboxUnavailableError",
    "OutputStructureError", "OutputTooLarge",
    "OutputValidationError", "PolicyDeniedError", "PolicyError", "Principal",
    "SignatureError", "SigningError", "SkillDowngradeError", "SkillLoadError", "SkillTimeout",
    "SkillTrapError",
    "StackOverflow", "ToolCallError", "ToolSpec", "UnknownToolError", "UntrustedSignerError",
    "VakError", "WorkerCrashedError",
]


def test_all_is_pinned_and_sorted() -> None:
    assert vak.__all__ == EXPECTED
    assert sorted(vak.__all__) == vak.__all__


def test_every_name_resolves() -> None:
    for name in vak.__all__:
        assert getattr(vak, name) is not None, name


def test_every_error_is_exported() -> None:
    assert set(vak.errors.__all__) <= set(vak.__all__)
