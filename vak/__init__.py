"""VAK, the Verifiable Agent Kernel: signed WebAssembly skills as safe agent tools.

Everything a user needs is importable from here::

    >>> import vak                                                   # doctest: +SKIP
    >>> with vak.Kernel.from_config("vak.toml") as kernel:          # doctest: +SKIP
    ...     kernel.invoke("calculator__execute", {"operation": "add", "a": 1, "b": 2})

The error tree is drawn in :mod:`vak.errors`; adapters catch only
:class:`ToolCallError`, the CLI catches :class:`VakError`.

Names resolve lazily (PEP 562): ``import vak`` loads nothing of the kernel,
so a reader of the format (``vak-audit verify``) that touches ``vak.errors``
never pulls in wasmtime, Cedar or the JSON Schema validator (``vak.__version__``
is the installed distribution's version). Inside ``vak/``
import from the defining module (``from vak.errors import ...``), never from
here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vak.config import KernelConfig
    from vak.errors import (
        ABIError,
        ApprovalDeniedError,
        ApprovalError,
        ApprovalPendingError,
        AuditError,
        AuditIntegrityError,
        AuditVerificationError,
        CapacityError,
        ConfigError,
        DigestMismatchError,
        FleetError,
        FleetRefusedError,
        FuelExhausted,
        GuestTrap,
        HostCallLimitError,
        InputValidationError,
        KeyFileError,
        ManifestError,
        MemoryLimitExceeded,
        OSSandboxUnavailableError,
        OutputStructureError,
        OutputTooLarge,
        OutputValidationError,
        PolicyDeniedError,
        PolicyError,
        SignatureError,
        SigningError,
        SkillDowngradeError,
        SkillLoadError,
        SkillTimeout,
        SkillTrapError,
        StackOverflow,
        ToolCallError,
        UnknownToolError,
        UntrustedSignerError,
        VakError,
        WitnessError,
        WorkerCrashedError,
    )
    from vak.invocation import Invocation, Principal, ToolSpec
    from vak.kernel import Kernel

__all__ = [
    "ABIError",
    "ApprovalDeniedError",
    "ApprovalError",
    "ApprovalPendingError",
    "AuditError",
    "AuditIntegrityError",
    "AuditVerificationError",
    "CapacityError",
    "ConfigError",
    "DigestMismatchError",
    "FleetError",
    "FleetRefusedError",
    "FuelExhausted",
    "GuestTrap",
    "HostCallLimitError",
    "InputValidationError",
    "Invocation",
    "Kernel",
    "KernelConfig",
    "KeyFileError",
    "ManifestError",
    "MemoryLimitExceeded",
    "OSSandboxUnavailableError",
    "OutputStructureError",
    "OutputTooLarge",
    "OutputValidationError",
    "PolicyDeniedError",
    "PolicyError",
    "Principal",
    "SignatureError",
    "SigningError",
    "SkillDowngradeError",
    "SkillLoadError",
    "SkillTimeout",
    "SkillTrapError",
    "StackOverflow",
    "ToolCallError",
    "ToolSpec",
    "UnknownToolError",
    "UntrustedSignerError",
    "VakError",
    "WitnessError",
    "WorkerCrashedError",
]

#: public name -> the module that defines it
_HOME = {
    "Invocation": "vak.invocation",
    "Kernel": "vak.kernel",
    "KernelConfig": "vak.config",
    "Principal": "vak.invocation",
    "ToolSpec": "vak.invocation",
}


def __getattr__(name: str) -> object:
    if name == "__version__":
        from vak._version import distribution_version

        return distribution_version()
    if name not in __all__:
        raise AttributeError(f"module 'vak' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME.get(name, "vak.errors")), name)
    globals()[name] = value  # resolved once; later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
