"""The narrow collaborators the kernel is composed of, as Protocols.

:class:`vak.kernel.Kernel` builds the real parts (``Engine``, ``WorkerPool``,
``AuditLog``, ``Mediator``) in its constructor, its one composition root, but
holds and calls them only through these seams: the kernel depends on what it
uses, not on how a room implements it, and a room's change of internals never
ripples into the facade. Each Protocol lists exactly the methods the kernel
calls; nothing here imports a room's implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

from vak.audit.checkpoint import SignedCheckpoint
from vak.audit.sink import AuditSink
from vak.host.context import CallContext
from vak.identity.manifest import Limits
from vak.invocation import ToolSpec
from vak.sandbox.types import CallOutcome, HostHandler, Runner
from vak.scrub import Scrubber

__all__ = [
    "KernelAudit",
    "Mediation",
    "ModuleEngine",
    "ModuleWorkers",
    "Observer",
    "R",
    "Resident",
    "ScrubbingHandler",
]


class KernelAudit(AuditSink, Protocol):
    """The audit log as the kernel uses it: append, keyed digests, receipts, close."""

    @property
    def path(self) -> Path:
        """The log file (for ``vak-audit verify`` after the run)."""
        ...

    @property
    def public_key_path(self) -> Path:
        """The file holding the log's public key(s)."""
        ...

    def args_digest(self, args_bytes: bytes, /) -> str:
        """The keyed digest recorded for input and output bytes."""
        ...

    def receipt(self, seq: int, /) -> object:
        """Checkpoint + inclusion proof of entry ``seq``."""
        ...

    def add_checkpoint_listener(self, callback: Callable[[SignedCheckpoint], None], /) -> None:
        """Have ``callback`` called with each new signed checkpoint (off the append path)."""
        ...

    def close(self) -> None:
        """Write the final checkpoint and release the log's lock."""
        ...


class Resident(Protocol):
    """A live instance kept for one session (opt-in reuse)."""

    @property
    def closed(self) -> bool: ...

    def close(self) -> None: ...


R = TypeVar("R", bound=Resident)
_R = TypeVar("_R")


class ModuleEngine(Runner, Protocol[R]):
    """The in-process engine: compiles once, runs calls, keeps session instances."""

    def compile_component(self, component_bytes: bytes, digest: str, /) -> object:
        """Compile (or load from the cache) a component of the vak:skill world."""
        ...

    def compile(self, module_bytes: bytes, digest: str, /) -> object:
        """Compile (or load from cache) ``module_bytes`` whose sha256 is ``digest``."""
        ...

    @property
    def fast_paths(self) -> Mapping[str, object]:
        """Which wasmtime call path runs and what the start self-test found."""
        ...

    def open_resident(self, module_digest: str, limits: Limits, /) -> R: ...

    def call_resident(self, resident: R, export: str, input_json: bytes, limits: Limits,
                      host: HostHandler, /) -> CallOutcome: ...

    def close(self) -> None: ...


class ModuleWorkers(Runner, Protocol):
    """The OS-sandboxed worker pool: modules are registered, then called."""

    def register(self, digest: str, module: bytes, /) -> None: ...

    def close(self) -> None: ...


class ScrubbingHandler(HostHandler, Protocol):
    """One invocation's mediated handler; it knows which secrets it revealed."""

    def scrub(self, output: bytes, /) -> bytes:
        """``output`` with every secret value revealed to this call removed."""
        ...

    @property
    def scrubber(self) -> Scrubber:
        """The one scrubber of the secrets this call's session holds (vak.scrub)."""
        ...


class Mediation(Protocol):
    """The one chokepoint of host calls: hands out a handler per invocation."""

    def handler(self, ctx: CallContext, /) -> ScrubbingHandler: ...

    def principal_record(self, ctx: CallContext, /) -> dict[str, Any]:
        """The skill's Cedar principal, as ``skill_loaded`` records it for replay."""
        ...

    def scrubber_for(self, session_id: str, /) -> Scrubber:
        """The scrubber of a session's secrets, for output made without a host call."""
        ...

    def end_session(self, session_id: str, /) -> bool:
        """Forget a session's data-flow labels; True if it had any."""
        ...

    def on_session_evicted(self, hook: Callable[[str], object], /) -> None:
        """Have ``hook(session_id)`` called when a labelled session is evicted."""
        ...

    def swap_policies(self, swap: Callable[[], _R], /) -> _R:
        """Run ``swap`` while no decision is between being made and being recorded."""
        ...

    def close(self) -> None: ...



class Observer(Protocol):
    """Telemetry's one seam (vak.telemetry): told what the audit log was told, after it.

    The kernel and the mediation call it behind a single ``if observer is not
    None``, so a kernel without telemetry pays one attribute check per site.
    Calls come from any thread; an implementation must never raise into the
    call path and must never export an argument value (a path, a URL, a key):
    it reads only the fields named below.
    """

    def host_entry(self, invocation: str, kind: str, fields: Mapping[str, Any], seq: int,
                   /) -> None:
        """A ``host_decision``, ``host_resolve`` or ``host_result`` entry was appended.

        Only ``host_function``, ``decision.effect``, ``decision.policy_ids`` and
        ``outcome.status`` / ``outcome.error`` of ``fields`` may be read.
        """
        ...

    def invocation_finished(self, invocation: str, spec: ToolSpec, outcome: Mapping[str, Any],
                            started_seq: int, finished_seq: int, fuel: int | None,
                            duration_ns: int, /) -> None:
        """The ``invocation_finished`` entry was appended (``outcome`` is its field)."""
        ...

    def close(self) -> None:
        """Flush and shut down what the observer itself started (idempotent)."""
        ...
