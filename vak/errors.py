"""One error hierarchy for everything VAK can refuse or fail at.

Every failure a user can see is a named subclass of :class:`VakError` whose
message says *what* went wrong, *where* (file, field, entry, export) and, when
there is one, the *fix*. The split that matters to callers is this:

* :class:`ToolCallError` and its subclasses are failures of **one tool call**
  that an agent (and so a model) may see and recover from: bad input, a denied
  host call, a skill that trapped or ran out of time. Adapters catch only these.
* Everything else must **stop the run**: bad configuration, a manifest or
  signature that does not verify, an invalid policy, a broken audit chain. The
  CLI catches :class:`VakError` once and exits non-zero with its message.

The tree::

    VakError
    ├── ConfigError                     bad KernelConfig / vak.toml
    ├── ManifestError                   skill.yaml invalid (file, field path)
    ├── SigningError
    │   ├── KeyFileError                key file unreadable / wrong format / passphrase
    │   ├── SignatureError              signature missing or does not verify
    │   ├── DigestMismatchError         module bytes do not match the signed digest
    │   └── UntrustedSignerError        signer unknown to the trust store / not allowed
    ├── SkillLoadError                  compile failure, wire-name collision
    │   └── SkillDowngradeError         version below one already loaded from that signer
    ├── PolicyError                     Cedar schema/policy invalid at startup
    ├── AuditError
    │   ├── AuditIntegrityError         log on disk is damaged; refuse to start
    │   └── AuditVerificationError      a proof/receipt/checkpoint does not verify
    ├── OSSandboxUnavailableError       require_os_sandbox set but barriers missing
    └── ToolCallError                   one call failed; the kernel keeps serving
        ├── UnknownToolError
        ├── InputValidationError
        ├── OutputValidationError
        ├── PolicyDeniedError           host call denied (policy ids, audit seq)
        ├── HostCallLimitError          max_host_calls exceeded
        ├── CapacityError               every pooled instance slot is in use (retry later)
        ├── WorkerCrashedError          OS-sandboxed worker died / misbehaved
        └── SkillTrapError             the guest itself failed
            ├── SkillTimeout            epoch deadline reached
            ├── FuelExhausted
            ├── MemoryLimitExceeded
            ├── StackOverflow
            ├── GuestTrap               any other trap, with the wasm backtrace
            ├── ABIError                bad pointer/length/JSON, missing export
            │   └── OutputStructureError  JSON too deep / a string or container too large
            └── OutputTooLarge          output over max_output_bytes
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
    "KeyFileError",
    "ManifestError",
    "MemoryLimitExceeded",
    "OSSandboxUnavailableError",
    "OutputStructureError",
    "OutputTooLarge",
    "OutputValidationError",
    "PolicyDeniedError",
    "PolicyError",
    "SignatureError",
    "SigningError",
    "SkillDowngradeError",
    "SkillLoadError",
    "SkillTimeout",
    "SkillTrapError",
    "StackOverflow",
    "ToolCallError",
    "UnknownToolError",
    "UntrustedSignerError",
    "VakError",
    "WorkerCrashedError",
]


class VakError(Exception):
    """Root of every error VAK raises on purpose.

    ``details`` carries machine-readable context (file, field, seq, ...) that
    ``--json`` output and adapters can forward without parsing the message.
    """

    #: short stable code for machines (``--json``, tool results, exit mapping)
    code: str = "vak_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details)

    def diagnostics(self) -> str:
        """A multi-line, human-oriented explanation (message plus details)."""
        lines = [self.message]
        for key, value in self.details.items():
            if value is not None:
                lines.append(f"  {key}: {value}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"error": code, "message": ..., **details}``."""
        out: dict[str, Any] = {"error": self.code, "message": self.message}
        out.update({k: _jsonable(v) for k, v in self.details.items()})
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


class ConfigError(VakError):
    """The kernel configuration (``KernelConfig`` / ``vak.toml``) is invalid."""

    code = "config_error"


class ManifestError(VakError):
    """A ``skill.yaml`` is malformed; details name the file and the field path."""

    code = "manifest_invalid"


class SigningError(VakError):
    """Base for key, signature, digest and trust failures."""

    code = "signing_error"


class KeyFileError(SigningError):
    """A key file cannot be read, parsed or decrypted."""

    code = "key_file_error"


class SignatureError(SigningError):
    """The manifest is unsigned or its signature does not verify."""

    code = "bad_signature"


class DigestMismatchError(SigningError):
    """The module's SHA-256 differs from the digest bound in the signed manifest."""

    code = "digest_mismatch"


class UntrustedSignerError(SigningError):
    """The signer is not in the trust store, or may not sign this skill."""

    code = "untrusted_signer"


class SkillLoadError(VakError):
    """A verified skill still cannot be loaded (compile error, name collision)."""

    code = "skill_load_error"


class SkillDowngradeError(SkillLoadError):
    """A lower version of a skill than one already loaded from the same signer (rollback)."""

    code = "skill_downgrade"


class PolicyError(VakError):
    """A Cedar schema or policy file is invalid; the kernel refuses to start."""

    code = "policy_invalid"


class AuditError(VakError):
    """Base for audit-log failures."""

    code = "audit_error"


class AuditIntegrityError(AuditError):
    """The log on disk is damaged in a way the kernel must not paper over."""

    code = "audit_integrity"


class AuditVerificationError(AuditError):
    """A checkpoint, receipt or proof does not verify."""

    code = "audit_verification"


class OSSandboxUnavailableError(VakError):
    """``require_os_sandbox`` is set but Landlock or seccomp is not available."""

    code = "os_sandbox_unavailable"


class ToolCallError(VakError):
    """One tool call failed; the caller (and the model) may see and recover."""

    code = "tool_call_error"


class UnknownToolError(ToolCallError):
    """No loaded skill exports a tool with that wire name."""

    code = "unknown_tool"


class InputValidationError(ToolCallError):
    """The tool input does not match the export's ``input_schema``."""

    code = "invalid_input"


class OutputValidationError(ToolCallError):
    """The skill's output does not match the export's ``output_schema``."""

    code = "invalid_output"


class PolicyDeniedError(ToolCallError):
    """A host call was denied by policy (or by the skill's declared capabilities).

    ``details`` carry ``host_function``, ``resource``, ``policy_ids`` (the
    determining ``@id``s) and ``audit_seq`` of the decision entry.
    """

    code = "policy_denied"

    @property
    def policy_ids(self) -> tuple[str, ...]:
        return tuple(self.details.get("policy_ids") or ())

    @property
    def audit_seq(self) -> int | None:
        seq = self.details.get("audit_seq")
        return seq if isinstance(seq, int) else None


class HostCallLimitError(ToolCallError):
    """The skill made more host calls than its ``max_host_calls`` limit."""

    code = "host_call_limit"


class CapacityError(ToolCallError):
    """No pooled instance slot (or memory/table slot) is free for this call.

    Not the guest's fault: the kernel is at ``pool_total_instances`` live
    instances (calls in flight plus instances kept by reused sessions). The
    call may succeed when retried later; ``details`` carry wasmtime's reason.
    """

    code = "capacity_exhausted"


class WorkerCrashedError(ToolCallError):
    """The OS-sandboxed worker died, hung, or spoke garbage; it was replaced."""

    code = "worker_crashed"


class SkillTrapError(ToolCallError):
    """The guest failed; the call ended, the kernel did not."""

    code = "skill_trap"


class SkillTimeout(SkillTrapError):
    """The call ran past its epoch deadline (``max_execution_time_ms``)."""

    code = "timeout"


class FuelExhausted(SkillTrapError):
    """The call used all of its fuel (``max_fuel``)."""

    code = "fuel_exhausted"


class MemoryLimitExceeded(SkillTrapError):
    """The guest tried to grow memory past ``max_memory_pages``."""

    code = "memory_limit"


class StackOverflow(SkillTrapError):
    """The guest exhausted its wasm stack (e.g. unbounded recursion)."""

    code = "stack_overflow"


class GuestTrap(SkillTrapError):
    """Any other wasm trap; ``details['backtrace']`` holds the wasm frames."""

    code = "guest_trap"


class ABIError(SkillTrapError):
    """The guest broke the ABI: bad pointer/length, bad JSON, missing export."""

    code = "abi_error"


class OutputStructureError(ABIError):
    """Guest JSON is valid but structurally over a bound (nesting depth, string
    length, items of one array or object).

    Raised at the ABI, before anything recursive (schema validation, adapters,
    ``json.dumps``) sees the value; ``details`` name the bound and its limit,
    never the guest's text.
    """

    code = "output_structure"


class OutputTooLarge(SkillTrapError):
    """The guest's output exceeded ``max_output_bytes``."""

    code = "output_too_large"
