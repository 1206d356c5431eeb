"""The seams between the sandbox, the host mediation and the kernel.

The sandbox knows nothing of Cedar or audit: when a guest calls an import
``vak.<fn>``, the sandbox decodes and bounds-checks the guest's ``(ptr, len)``
and hands the raw JSON bytes to a :class:`HostHandler` supplied per call by the
kernel (in-process) or by the worker protocol (OS-sandboxed). The handler
returns JSON bytes to give back to the guest, or raises a
:class:`vak.errors.ToolCallError` (e.g. ``PolicyDeniedError``), which the
sandbox turns into a trap and re-raises from :meth:`Runner.call` unchanged.

The handler decides every call, including the ones the sandbox cannot serve:
the sandbox keeps only wasm-level limits (memory, fuel, epochs, pointer
spans) and counts calls for :attr:`CallOutcome.host_calls`; the handler
enforces the host-call limit. A call whose arguments the sandbox cannot read
(a span outside memory, a call during instantiation, a call re-entered from
the guest's allocator) goes to :meth:`HostHandler.refuse`, which records the
refusal and returns the error the sandbox raises as the trap.

Invariants:
* one Store per call; nothing of one call is visible to the next;
* a ``HostHandler`` is called only from the thread running that call;
* whatever the guest does, ``Runner.call`` returns a :class:`CallOutcome` or
  raises a ``ToolCallError`` subclass; it never crashes the kernel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from vak.errors import ABIError
from vak.identity.manifest import Limits

__all__ = ["START_HOST", "CallOutcome", "HostHandler", "Runner", "refusal"]


class HostHandler(Protocol):
    """Mediates one guest host call: ``function`` is the import name (``fs_read``)."""

    def __call__(self, function: str, args: bytes, /) -> bytes: ...

    def refuse(self, function: str, policy_id: str, reason: str, /) -> BaseException:
        """Record that the sandbox refused a call of ``function`` and return the
        error to raise as its trap.

        ``policy_id`` is ``"vak.invalid-args"`` (arguments the sandbox cannot
        read); ``reason`` names spans and sizes, never guest bytes. The kernel's
        mediation records exactly one ``host_decision`` deny before returning.
        """
        ...


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What one successful export call produced."""

    output: bytes  # UTF-8 JSON, already checked to be valid JSON within max_output_bytes
    fuel_used: int  # 0 when fuel metering is off
    duration_ns: int
    host_calls: int


class Runner(Protocol):
    """Runs one export call of a compiled module in a fresh, limited store.

    Implemented by ``vak.sandbox.engine.Engine`` (in-process) and by the
    OS-sandboxed worker pool; the kernel routes by trust tier.
    """

    def call(
        self,
        module_digest: str,
        export: str,
        input_json: bytes,
        limits: Limits,
        host: HostHandler,
    ) -> CallOutcome: ...


def refusal(host: HostHandler, name: str, policy_id: str, reason: str) -> BaseException:
    """Hand a refused host call to the handler, which records the decision.

    A handler without ``refuse`` (a plain callable in tests) gets the ABI's own
    error: the call is refused either way.
    """
    refuse = getattr(host, "refuse", None)
    if refuse is None:
        return ABIError(reason, host_function=name, policy_id=policy_id)
    error = refuse(name, policy_id, reason)
    if not isinstance(error, BaseException):
        return TypeError(f"HostHandler.refuse for {name} returned {type(error).__name__}")
    return error


class _StartHost:
    """The handler while an instance is made: a start function may not call the host
    (no call is being served, so there is nothing to decide it for)."""

    def __call__(self, function: str, args: bytes, /) -> bytes:
        raise self.refuse(function, "vak.invalid-args", "start function")

    def refuse(self, function: str, policy_id: str, reason: str, /) -> BaseException:
        return ABIError(f"host call {function} during instantiation (start function)",
                        host_function=function, policy_id=policy_id)


#: the handler of an instantiation outside any call (session residents)
START_HOST: HostHandler = _StartHost()
