"""The public surface of ``vak`` is pinned here: changing it is a deliberate act."""

from __future__ import annotations

import vak
import vak.errors

EXPECTED = [
    "ABIError", "ApprovalDeniedError", "ApprovalError", "ApprovalPendingError", "AuditError",
    "AuditIntegrityError", "AuditVerificationError", "CapacityError",
    "ConfigError",
    "DigestMismatchError", "FleetError", "FleetRefusedError", "FuelExhausted", "GuestTrap",
    "HostCallLimitError",
    "InputValidationError", "Invocation", "Kernel", "KernelConfig", "KeyFileError",
    "ManifestError", "MemoryLimitExceeded", "OSSandboxUnavailableError",
    "OutputStructureError", "OutputTooLarge",
    "OutputValidationError", "PolicyDeniedError", "PolicyError", "Principal",
    "SignatureError", "SigningError", "SkillDowngradeError", "SkillLoadError", "SkillTimeout",
    "SkillTrapError",
    "StackOverflow", "ToolCallError", "ToolSpec", "UnknownToolError", "UntrustedSignerError",
    "VakError", "WitnessError", "WorkerCrashedError",
]


def test_all_is_pinned_and_sorted() -> None:
    assert vak.__all__ == EXPECTED
    assert sorted(vak.__all__) == vak.__all__


def test_every_name_resolves() -> None:
    for name in vak.__all__:
        assert getattr(vak, name) is not None, name


def test_every_error_is_exported() -> None:
    assert set(vak.errors.__all__) <= set(vak.__all__)


def test_names_resolve_lazily() -> None:
    """``import vak`` loads none of the kernel (PEP 562); a name loads its module on use."""
    import subprocess
    import sys

    code = (
        "import sys, vak\n"
        "heavy = ('vak.kernel', 'vak.config', 'wasmtime', 'cedarpy', 'jsonschema')\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "assert not loaded, loaded\n"
        "vak.ToolCallError\n"
        "assert 'vak.kernel' not in sys.modules\n"
        "vak.Kernel\n"
        "assert 'vak.kernel' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_unknown_name_is_an_attribute_error() -> None:
    import pytest

    with pytest.raises(AttributeError, match="no_such_name"):
        vak.no_such_name  # noqa: B018
    assert set(vak.__all__) <= set(dir(vak))
