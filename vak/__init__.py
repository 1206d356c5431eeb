"""VAK, the Verifiable Agent Kernel: signed WebAssembly skills as safe agent tools.

Everything a user needs is importable from here::

    >>> import vak                                                   # doctest: +SKIP
    >>> with vak.Kernel.from_config("vak.toml") as kernel:          # doctest: +SKIP
    ...     kernel.invoke("calculator__execute", {"operation": "add", "a": 1, "b": 2})

The error tree is drawn in :mod:`vak.errors`; adapters catch only
:class:`ToolCallError`, the CLI catches :class:`VakError`.
"""

from __future__ import annotations

from vak.config import KernelConfig
from vak.errors import (
    ABIError,
    AuditError,
    AuditIntegrityError,
    AuditVerificationError,
    CapacityError,
    ConfigError,
    DigestMismatchError,
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
    WorkerCrashedError,
)
from vak.invocation import Invocation, Principal, ToolSpec
from vak.kernel import Kernel

__all__ = [
    "ABIError",
    "AuditError",
    "AuditIntegrityError",
    "AuditVerificationError",
    "CapacityError",
    "ConfigError",
    "DigestMismatchError",
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
    "WorkerCrashedError",
]
