"""``Kernel``: the one object an agent builder holds.

It ties the rooms together without adding policy of its own::

    >>> with Kernel.from_config("demo/vak.toml") as kernel:          # doctest: +SKIP
    ...     kernel.load_skill("demo/skills/calculator")
    ...     inv = kernel.invoke("calculator__execute",
    ...                         {"operation": "add", "a": 1, "b": 2})
    ...     inv.output, inv.audit_seqs
    ({'result': 3}, (4, 5))

Invariants:

* nothing reaches the compiler unless :func:`vak.identity.signing.verify_skill`
  accepted its signature and signer (``require_signature`` is on by default;
  unknown signers are refused);
* each module is compiled once and each export's validators are compiled once,
  at load;
* every call is bracketed by an ``invocation_started`` and an
  ``invocation_finished`` audit entry; a failed call records its error in the
  ``invocation_finished`` entry before the error propagates; with
  ``compact_invocations`` (opt-in) ``invocation_started`` is written just
  before the first host call, and a call without one is recorded by a single
  combined ``invocation_finished`` (docs/AUDIT-FORMAT.md), always before the
  output is returned;
* the guest runs in-process (trusted tier) or in the OS-sandboxed worker pool
  (untrusted tier, or ``force_worker``), both behind the same ``Runner`` seam;
* :meth:`Kernel.invoke` is safe to call from many threads at once: the
  registry is read-mostly under a lock, each call gets its own Store, and the
  audit log serialises appends into one chain;
* with ``session_reuse`` on (opt-in), in-process calls that carry a
  ``session=`` id reuse that session's live instance of the skill, so guest
  state persists between them (:mod:`vak._session`); calls without a session,
  and calls routed to the OS-sandboxed worker, always get a fresh instance;
* a skill of ``config.skill_dirs`` that fails to load is recorded as a
  ``skill_refused`` entry and the others keep serving (``strict_skills``:
  the start fails instead);
* ``Kernel(config, read_only=True)`` (``vak status``, ``vak skills list``)
  opens no audit log, takes no lock, appends and records nothing (version
  floor included), starts no worker pool and refuses :meth:`Kernel.invoke`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from vak import formats
from vak._registry import RegisteredTool, Registry
from vak._session import SessionTable
from vak.approvals.gate import CALLER_LOOP, ApprovalGate, Approver
from vak.approvals.store import ApprovalStore
from vak.audit.entry import Sealed
from vak.audit.sink import AuditRef
from vak.canonical import MAX_DEPTH, nesting_depth
from vak.config import KernelConfig
from vak.errors import (
    ConfigError,
    InputValidationError,
    ManifestError,
    OSSandboxUnavailableError,
    OutputValidationError,
    PolicyDeniedError,
    SigningError,
    SkillLoadError,
    SkillTrapError,
    UnknownToolError,
    VakError,
)
from vak.host.secrets import SecretProvider
from vak.identity.floor import VERSION_FLOOR_FILE, VersionFloor
from vak.identity.manifest import Manifest
from vak.identity.signing import VerifiedSkill
from vak.identity.trust import Tier, TrustStore
from vak.invocation import (
    Invocation,
    LoadedSkill,
    Principal,
    RefusedSkill,
    ReloadResult,
    ToolSpec,
)
from vak.sandbox.types import CallOutcome, Runner
from vak.seams import (
    KernelAudit,
    Mediation,
    ModuleEngine,
    ModuleWorkers,
    Observer,
    ScrubbingHandler,
)

if TYPE_CHECKING:
    from vak.fleet.agent import FleetAgent
    from vak.host.context import CallContext
    from vak.policy.engine import PolicyEngine
    from vak.sandbox.engine import Resident
from vak.scrub import Scrubber, excerpt, scrub_error

__all__ = ["Kernel"]


class Kernel:
    """The facade: load signed skills, describe them as tools, invoke them.

    The constructor is the one composition root: it resolves each room's
    settings from ``config``, builds the rooms and wires them through the
    Protocols of :mod:`vak.seams`. ``secrets`` replaces the provider the
    config describes (e.g. the CLI's environment-backed one).

    If construction fails at any step, everything already opened is closed
    again (engine ticker and worker threads stopped, the log's lock released)
    before the error propagates, so a new ``Kernel`` on the same state works.

    Raises (from the constructor):
        ConfigError: the configuration is unusable.
        PolicyError: a policy file does not validate against the schema.
        AuditIntegrityError: the audit log on disk is damaged.
        OSSandboxUnavailableError: ``require_os_sandbox`` with barriers missing
            (raised when the worker pool starts).
        ManifestError, SignatureError, SkillLoadError, ...: with ``strict_skills``,
            a skill of ``config.skill_dirs`` fails to load (see :meth:`load_skill`);
            without it the refusal is recorded and the kernel starts.

    ``read_only``: see the module docstring (nothing is written; invoke refused).
    ``observer``: telemetry (:class:`vak.seams.Observer`); None builds the one
    ``config.telemetry`` describes, if enabled.
    """

    def __init__(self, config: KernelConfig, *, secrets: SecretProvider | None = None,
                 approver: Approver | None = None, approval_timeout: float = 300.0,
                 read_only: bool = False, observer: Observer | None = None) -> None:
        # approver: asked (sync, or async under ainvoke) for a signed answer when a
        # @approval("required") permit allows a host call (docs/POLICY.md, 'Approvals')
        self.config = config
        self._read_only = read_only
        self._refused: list[RefusedSkill] = []
        self._observer: Observer | None = None
        self._registry = Registry()
        self._load_lock = threading.Lock()
        self._closed = False
        self._strict = config.audit.fsync == "strict"
        self._compact = config.compact_invocations
        self._sealed = False  # whether the log takes Sealed values (set once it is open)
        self._pool: ModuleWorkers | None = None
        self._pool_lock = threading.Lock()
        self._semaphores: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()
        self._audit_log: KernelAudit | None = None
        self._engine_obj: ModuleEngine[Resident] | None = None
        self._mediator_obj: Mediation | None = None
        self._policies: PolicyEngine | None = None
        self._sessions: SessionTable[Resident] | None = None
        self._fleet: FleetAgent | None = None
        try:
            self._trust = _load_trust(config)
            self._floor = VersionFloor.open(config.state_dir / VERSION_FLOOR_FILE)
            self._approval_gate = ApprovalGate(
                ApprovalStore(config.state_dir / "approvals"), self._trust, approver,
                approval_timeout)
            if read_only:
                self._engine_obj = _make_engine(config)
            else:
                self._audit_log = _open_audit(config)
                self._sealed = getattr(self._audit_log, "accepts_sealed", False) is True
                self._fleet = _start_fleet(config, self._audit_log)
                _record_sandbox_state(self._audit_log, config)
                self._observer = observer if observer is not None else _make_observer(config)
                self._engine_obj = _make_engine(config)
                self._mediator_obj, self._policies = _make_mediator(
                    config, self._audit_log, secrets, self._approval_gate, self._observer)
                if config.session_reuse:
                    self._sessions = _make_sessions(config, self._engine_obj)
                    # a session whose labels are dropped loses its instance too (fail closed)
                    self._mediator_obj.on_session_evicted(self._sessions.end)
                if config.worker.force:
                    self._worker_pool()
            for skill_dir in config.skill_dirs:
                self._load_configured(skill_dir)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def from_config(cls, path: str | Path, *, approver: Approver | None = None,
                    read_only: bool = False) -> Kernel:
        """A kernel configured by a ``vak.toml`` (its ``skill_dirs`` are loaded).

        Raises:
            ConfigError: the file is missing or invalid.
        """
        return cls(KernelConfig.from_toml(path), approver=approver, read_only=read_only)

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker pool and the engine's epoch ticker, then close the audit log.

        Idempotent. The audit log is closed last so the shutdown of the others
        can still be recorded.
        """
        if self._closed:
            return
        self._closed = True
        with contextlib.ExitStack() as stack:
            # ExitStack closes in reverse order and keeps going if one fails
            # the fleet agent closes last: the log's final checkpoint is shipped too
            for part in (self._fleet, self._audit_log, self._observer, self._mediator_obj,
                         self._engine_obj, self._pool, self._sessions):
                if part is not None:
                    stack.callback(part.close)

    @property
    def audit(self) -> KernelAudit:
        """The kernel's :class:`vak.audit.log.AuditLog` (read-only use, e.g. verification).

        Raises:
            ConfigError: the kernel is read-only, or failed to open its log.
        """
        if self._audit_log is None:
            if self._read_only:
                raise _read_only_error("has no audit log")
            raise ConfigError("the kernel has no audit log (its constructor failed)")
        return self._audit_log

    @property
    def _audit(self) -> KernelAudit:
        return self.audit

    @property
    def _engine(self) -> ModuleEngine[Resident]:
        if self._engine_obj is None:
            raise ConfigError("the kernel is closed", fix="create a new Kernel")
        return self._engine_obj

    @property
    def _mediator(self) -> Mediation:
        if self._mediator_obj is None:
            raise ConfigError("the kernel is closed", fix="create a new Kernel")
        return self._mediator_obj

    # ------------------------------------------------------------------ loading
    def load_skill(self, path: str | Path) -> tuple[ToolSpec, ...]:
        """Verify, validate and compile the skill in ``path``; return its tools.

        Raises:
            ManifestError: ``skill.yaml`` is invalid.
            SignatureError, DigestMismatchError, UntrustedSignerError: the skill
                is unsigned, tampered with, or signed by a key not trusted.
            SkillLoadError: compilation failed, the skill is already loaded, or
                a wire name collides with a loaded tool.
            SkillDowngradeError: a higher version of the skill from the same
                signer was loaded before (unless ``allow_downgrade``).
            AuditError: the ``skill_loaded`` entry could not be written (the
                skill is then not loaded).
        """
        self._check_open()
        skill_dir = Path(path)
        verified = _verify(skill_dir, self._trust, self.config)
        if not self.config.allow_downgrade:
            self._floor.check(verified.ref, skill_dir=str(skill_dir))
        manifest = verified.manifest
        skill = LoadedSkill(
            name=manifest.name,
            version=manifest.version,
            manifest=manifest,
            module_sha256=verified.module_sha256,
            signer_key_id=verified.signer_key_id,
            tier=verified.tier,
            skill_dir=str(skill_dir),
            manifest_sha256=verified.manifest_sha256,
            # fail closed: only the TRUSTED tier runs in-process, whatever else appears
            use_worker=self.config.worker.force or verified.tier is not Tier.TRUSTED,
        )
        tools = self._registry.build(skill)
        with self._load_lock:
            # compile before registering so a half-loaded skill is never callable
            _compile(self._engine, skill_dir, manifest, verified.module_bytes,
                     verified.module_sha256)
            if skill.use_worker and not self._read_only:
                self._worker_pool().register(verified.module_sha256, verified.module_bytes)
            self._registry.add(tools)
            if self._read_only:  # what it would serve, recorded nowhere
                return tuple(t.spec for t in tools)
            # recorded before load_skill returns; a skill whose load cannot be
            # recorded is not kept callable (fail closed)
            try:
                self._floor.record(verified.ref)
                fields = _load_fields(skill, tools)
                # the Cedar principal, once, so every decision naming it can be replayed
                fields["principal"] = self._mediator.principal_record(
                    _context(skill, "", None, math.inf))
                self._audit.append("skill_loaded", fields, durable=self._strict, flush=True)
            except BaseException:
                self._registry.discard(tools)
                raise
        return tuple(t.spec for t in tools)

    def _load_configured(self, skill_dir: Path) -> None:
        """Load one skill of ``config.skill_dirs``; a refusal is recorded, then the others
        load (``strict_skills``: it stops the start, except of a read-only kernel, which
        only reports). A log that cannot record stops it."""
        try:
            self.load_skill(skill_dir)
        except _SKILL_REFUSALS as exc:
            refused = _refusal(skill_dir, exc)
            if self._audit_log is not None:
                ref = self._audit_log.append("skill_refused", refused.to_audit(),
                                             durable=self._strict, flush=True)
                refused = replace(refused, audit_seq=ref.seq)
            self._refused.append(refused)
            if self.config.strict_skills and not self._read_only:  # reporting is not serving
                raise

    # ------------------------------------------------------------------ reloading
    def reload(self) -> ReloadResult:
        """Reload the policy set and the trust store from this kernel's config, atomically.

        Everything is read and validated first; nothing changes unless all of it
        is valid. Then, while no host call is between its decision and the
        decision's record (:mod:`vak.host.swap`), a ``policy_set`` entry records
        the new set and only then is it installed, with an empty decision
        cache, together with the new trust store. Calls in flight are neither
        lost nor decided by a mix of sets: each decision is made and recorded
        under one set, the one whose ``policy_set`` entry precedes it.

        Every loaded skill must still verify under the new trust store with the
        same signer and tier (a skill cannot be unloaded by a reload: restart).

        Raises:
            PolicyError: a schema or policy file is invalid (file and line named);
                the set in force stays.
            ConfigError: the trust store is missing or invalid, or a loaded skill
                no longer verifies under it; nothing changed.
            SignatureError, UntrustedSignerError, DigestMismatchError: a loaded
                skill's signature no longer verifies (nothing changed).
            AuditError: the ``policy_set`` entry could not be written (the old
                set stays in force).
        """
        from vak.policy.loader import load_policies, policy_set_record

        self._check_open()
        with self._load_lock:
            trust = _load_trust(self.config)
            for skill in self.skills():
                _recheck(skill, trust, self.config)
            loaded = load_policies(self.config.policy_settings().policy_dirs)
            policies = self._policies
            if policies is None:
                raise _read_only_error("cannot reload policies")
            audit = self._audit
            install = policies.stage(loaded)  # compiled before decisions are held
            record = policy_set_record(loaded)

            def swap() -> ReloadResult:
                previous = policies.digest
                ref = audit.append("policy_set", record, durable=self._strict, flush=True)
                install()
                self._trust = trust
                self._approval_gate.trust = trust
                return ReloadResult(loaded.digest, previous, ref.seq, tuple(loaded.ids))

            return self._mediator.swap_policies(swap)

    # ------------------------------------------------------------------ queries
    def refused_skills(self) -> tuple[RefusedSkill, ...]:
        """The skills of ``config.skill_dirs`` that failed to load, in config order."""
        return tuple(self._refused)

    @property
    def read_only(self) -> bool:
        """True for a kernel that only reads (``Kernel(config, read_only=True)``)."""
        return self._read_only

    def tools(self) -> tuple[ToolSpec, ...]:
        """Every loaded tool, sorted by wire name."""
        return self._registry.specs()

    def tool_specs(self, format: str = "mcp") -> list[dict[str, Any]]:
        """The loaded tools as ``format`` dicts (see :mod:`vak.formats`).

        Raises:
            ConfigError: ``format`` is unknown.
        """
        return formats.tool_specs(self.tools(), format)

    def skills(self) -> tuple[LoadedSkill, ...]:
        """Every loaded skill (name, version, digest, signer, tier, route)."""
        return self._registry.skills()

    @property
    def approval_gate(self) -> ApprovalGate:
        """The approval store, trust store and approver of this kernel (vak.approvals)."""
        return self._approval_gate

    def sandbox_status(self) -> dict[str, Any]:
        """The sandbox as it runs (``vak status``): OS barriers and what they mean
        for untrusted skills, and which wasmtime call path the self-test chose."""
        from vak.sandbox.oslock import sandbox_report

        return {**sandbox_report(self.config.worker.allow_unsandboxed),
                "wasmtime": dict(self._engine.fast_paths)}

    # ------------------------------------------------------------------ invoking
    def invoke(
        self,
        name: str,
        input: Mapping[str, Any] | None = None,
        *,
        principal: Principal | None = None,
        session: str | None = None,
        call_id: str | None = None,
    ) -> Invocation:
        """Call tool ``name`` with ``input`` and return the output with its evidence.

        With ``session_reuse`` on, a call carrying ``session`` runs on that
        session's live instance of the skill (created on first use, discarded
        after any error, freed by :meth:`end_session`), so the guest sees the
        state earlier calls of the session left; its ``invocation_started``
        entry says ``"instance": "session"``.

        Raises:
            UnknownToolError: no loaded skill exports ``name``.
            InputValidationError: ``input`` does not match the input schema
                (the guest never runs; an audit entry still records the refusal).
            PolicyDeniedError: a host call was denied (the call ended there).
            SkillTrapError: the guest trapped, timed out, ran out of fuel, ...
            CapacityError: every pooled instance slot is in use (retry later).
            OutputValidationError: the output does not match the output schema.
            WorkerCrashedError: the OS-sandboxed worker failed.
            ConfigError: the kernel is closed or read-only.
        """
        self._check_invocable()
        try:
            tool = self._registry.get(name)
        except UnknownToolError as exc:
            self._call_refused(exc, name, principal, session, call_id)
            raise
        payload: Any = {} if input is None else input
        inv_id = os.urandom(16).hex()  # as unguessable as uuid4, cheaper
        input_json = _encode_input(name, payload)
        reuse = self._reuses(tool, session)
        fields: dict[str, Any] = {
            "invocation": inv_id,
            "skill": (tool.sealed_skill or tool.audit_skill) if self._sealed
            else tool.audit_skill,
            "session": session or "",
            "call_id": call_id,
            "principal": (_ANONYMOUS_SEALED if self._sealed else _ANONYMOUS)
            if principal is None else principal.to_audit(),
            "tool": name,
            "export": tool.spec.export,
            # keyed digest: a low-entropy input (a PIN, a name) cannot be
            # recovered from the log by guessing, yet equal inputs still match
            "input_digest": self._audit.args_digest(input_json),
            "route": "worker" if tool.skill.use_worker else "engine",
        }
        if reuse:
            # an auditor must be able to tell this call saw state of earlier ones
            fields["instance"] = "session"
        audit = self._audit
        # compact_invocations: invocation_started waits for the first host call (the
        # first possible effect); a call without one is recorded by one combined
        # invocation_finished entry, written before its output is returned
        opened: AuditRef | None = None if self._compact else audit.append(
            "invocation_started", fields)
        t0 = time.perf_counter_ns()
        outcome: CallOutcome | None = None
        host = _LazyHost(self._mediator, tool, inv_id, session,
                         None if opened is not None else (audit, fields), principal)
        try:
            tool.input_validator.check(payload)
            outcome, output = self._run(tool, input_json, session, reuse, host)
            tool.output_validator.check(output)
        except BaseException as exc:
            # nothing the session's secrets are in leaves in a message (vak.scrub)
            scrub_error(exc, host.scrubber())
            self._finish(tool, inv_id, session, opened or host.started, fields, outcome, t0,
                         exc)
            raise
        started = opened or host.started
        finished = self._finish(tool, inv_id, session, started, fields, outcome, t0, None)
        assert outcome is not None  # _run returned
        return _invocation(
            name, output, outcome.fuel_used, outcome.duration_ns, outcome.host_calls, inv_id,
            session, call_id, finished.seq if started is None else started.seq, finished.seq,
            finished.leaf_hash, tool.skill.use_worker, self._receipt,
        )

    async def ainvoke(
        self,
        name: str,
        input: Mapping[str, Any] | None = None,
        *,
        principal: Principal | None = None,
        session: str | None = None,
        call_id: str | None = None,
    ) -> Invocation:
        """:meth:`invoke` on a worker thread, at most ``max_concurrency`` at once.

        Cancelling the awaiting task does not stop the guest: its epoch
        deadline does, and the call is still audited to completion (its slot
        in the limiter is released at cancellation, so the limit bounds
        awaiting callers, not threads still finishing a cancelled call).

        Raises:
            The same errors as :meth:`invoke`.
        """
        loop = asyncio.get_running_loop()
        with self._pool_lock:
            sem = self._semaphores.get(loop)
            if sem is None:
                # one limiter per event loop: an asyncio.Semaphore binds to its loop
                sem = self._semaphores[loop] = asyncio.Semaphore(
                    max(1, self.config.max_concurrency))
        CALLER_LOOP.set(loop)  # an async approver runs on this loop (copied to the thread)
        async with sem:
            return await asyncio.to_thread(
                self.invoke, name, input,
                principal=principal, session=session, call_id=call_id,
            )

    def end_session(self, session: str) -> int:
        """Free the instances kept for ``session`` (``session_reuse`` mode).

        The session's next call starts from a fresh instance. A no-op (0)
        when reuse is off or the session holds no instance.

        Returns:
            How many instances (one per skill used in the session) were closed.
        """
        if self._mediator_obj is not None:
            self._mediator_obj.end_session(session)  # its data-flow labels end with it
        if self._sessions is None:
            return 0
        return self._sessions.end(session)

    # ------------------------------------------------------------------ internals
    def _run(
        self, tool: RegisteredTool, input_json: bytes, session: str | None,
        reuse: bool, host: _LazyHost,
    ) -> tuple[CallOutcome, object]:
        skill = tool.skill
        if reuse:
            assert self._sessions is not None and session is not None
            outcome = self._sessions.call(
                session, skill.name, skill.module_sha256, tool.spec.export, input_json,
                skill.manifest.limits, host,
            )
        else:
            runner: Runner = self._worker_pool() if skill.use_worker else self._engine
            outcome = runner.call(
                skill.module_sha256, tool.spec.export, input_json, skill.manifest.limits, host,
            )
        scrubbed = host.scrubber().output(outcome.output)
        if scrubbed is not outcome.output:
            # a secret the session holds must not leave through the output, however
            # it is spelled (checked after decoding), even with no host call in this
            # invocation (a reused instance may keep it in memory)
            outcome = replace(outcome, output=scrubbed)
        return outcome, _decode_output(tool.spec.name, outcome.output)

    def _reuses(self, tool: RegisteredTool, session: str | None) -> bool:
        """Whether this call runs on the session's kept instance (opt-in mode)."""
        return self._sessions is not None and bool(session) and not tool.skill.use_worker

    def _finish(
        self, tool: RegisteredTool, inv_id: str, session: str | None, started: AuditRef | None,
        start_fields: dict[str, Any], outcome: CallOutcome | None, t0: int,
        exc: BaseException | None,
    ) -> AuditRef:
        """Append ``invocation_finished``; with ``started`` None, the combined entry
        that also carries ``start_fields`` (``compact_invocations``, no host call)."""
        duration_ns = outcome.duration_ns if outcome is not None else time.perf_counter_ns() - t0
        result: dict[str, Any] = {"status": "ok", "duration_us": duration_ns // 1000}
        if started is None:
            fields = start_fields  # ours alone: the started entry was never written
        else:
            fields = {
                "invocation": inv_id,
                "skill": start_fields["skill"],
                "session": session or "",
                "tool": tool.spec.name,
                "started_seq": started.seq,
            }
        fields["outcome"] = result
        if outcome is not None:
            fields["fuel"] = outcome.fuel_used
            fields["host_calls"] = outcome.host_calls
            fields["output_digest"] = self._audit.args_digest(outcome.output)
        if isinstance(exc, VakError):
            result["status"] = _status_of(exc)
            result["error"] = exc.code
            result["message"] = exc.message[:500]
            seq = exc.details.get("audit_seq")
            if isinstance(seq, int):
                result["decision_seq"] = seq
        elif exc is not None:
            result.update(status="error", error="internal_error", message=type(exc).__name__)
        # Under "strict" the caller sees a result only once its record is
        # durable; under "batched" it is at least handed to the OS (a crash of
        # this process cannot lose it) and the group commit makes it durable
        # within the batch window (no effect depends on this entry, so no wait).
        ref = self._audit.append("invocation_finished", fields, durable=self._strict,
                                 flush=True)
        if self._observer is not None:
            self._observer.invocation_finished(
                inv_id, tool.spec, result, ref.seq if started is None else started.seq, ref.seq,
                fields.get("fuel"), duration_ns)
        if isinstance(exc, VakError):
            # the caller (and the model) can point an auditor at the exact entry
            exc.details.setdefault("invocation", inv_id)
            exc.details["finished_seq"] = ref.seq
        return ref

    def _call_refused(self, exc: UnknownToolError, name: str, principal: Principal | None,
                      session: str | None, call_id: str | None) -> None:
        """Record a call that named no loaded tool (``call_refused``); its seq goes in ``exc``.

        The name and ids are the caller's text: bounded, escaped and scrubbed of the
        session's secrets before they are recorded.
        """
        scrubber = self._mediator.scrubber_for(session or "")
        fields: dict[str, Any] = {
            "tool": excerpt(str(name), scrubber, 64), "error": exc.code,
            "session": excerpt(session or "", scrubber, 128),
            "principal": _ANONYMOUS if principal is None else principal.to_audit(),
        }
        if call_id is not None:
            fields["call_id"] = excerpt(str(call_id), scrubber, 128)
        ref = self._audit.append("call_refused", fields, flush=True)
        exc.details["audit_seq"] = ref.seq

    def _receipt(self, seq: int) -> object:
        """Checkpoint + inclusion proof for entry ``seq`` (fetched when first asked for).

        Signing a checkpoint per call would cost more than the call itself, so
        :attr:`Invocation.receipt` asks here lazily; by then the log's group
        commit has usually signed a checkpoint that covers the entry.
        """
        try:
            return self._audit.receipt(seq)
        except VakError:
            return None

    def _worker_pool(self) -> ModuleWorkers:
        with self._pool_lock:
            if self._pool is None:
                self._pool = _make_pool(self.config)
            return self._pool

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigError("the kernel is closed", fix="create a new Kernel")

    def _check_invocable(self) -> None:
        if self._closed or self._read_only:
            self._check_open()
            raise _read_only_error("cannot invoke tools")


# ---------------------------------------------------------------------- seams
# Each helper below adapts to one other room's API, so the kernel body stays
# readable and a change over there is fixed in one place here.


class _LazyHost:
    """The call's ``HostHandler``, built only when the guest makes its first host call.

    Most tool calls make none, so the per-call :class:`CallContext` and
    mediated handler are not built for them. The session's scrubber comes from
    the mediator even then: under session reuse a guest may still hold, in its
    memory, a secret an earlier call of the session read.

    With ``opening`` (``compact_invocations``), the invocation's
    ``invocation_started`` entry is appended here, before the handler exists,
    so it precedes the first host call's decision (and so every effect).
    """

    __slots__ = ("_caller", "_deadline", "_handler", "_inv_id", "_mediator", "_opening",
                 "_session", "_tool", "started")

    def __init__(self, mediator: Mediation, tool: RegisteredTool, inv_id: str,
                 session: str | None,
                 opening: tuple[KernelAudit, dict[str, Any]] | None = None,
                 caller: Principal | None = None) -> None:
        self._mediator = mediator
        self._caller = caller
        self._tool = tool
        self._inv_id = inv_id
        self._session = session
        self._handler: ScrubbingHandler | None = None
        self._opening = opening
        #: the lazily written ``invocation_started`` entry (None: not written here)
        self.started: AuditRef | None = None
        #: no host effect outlives the call's own time limit
        self._deadline = (time.monotonic()
                          + tool.skill.manifest.limits.max_execution_time_ms / 1000)

    def _get(self) -> ScrubbingHandler:
        handler = self._handler
        if handler is None:
            opening = self._opening
            if opening is not None:
                audit, fields = opening
                # record first: a failed append leaves no handler, so no decision
                self.started = audit.append("invocation_started", fields)
                self._opening = None
            handler = self._handler = _handler(
                self._mediator, self._tool, self._inv_id, self._session, self._deadline,
                self._caller)
        return handler

    def __call__(self, name: str, payload: bytes, /) -> bytes:
        handler = self._get()
        try:
            reply: bytes = handler(name, payload)
        except VakError as exc:  # scrubbed before it crosses into the guest or a worker
            scrub_error(exc, handler.scrubber)
            raise
        return reply

    def refuse(self, function: str, policy_id: str, reason: str, /) -> BaseException:
        """Record a call the engine refused (bad span, call limit); the error to raise."""
        handler = self._get()
        error: BaseException = handler.refuse(function, policy_id, reason)
        return scrub_error(error, handler.scrubber)

    def scrubber(self) -> Scrubber:
        """The scrubber of the secrets this call's session holds."""
        if self._handler is not None:
            return self._handler.scrubber
        return self._mediator.scrubber_for(self._session or "")

    def scrub(self, output: bytes) -> bytes:
        return self.scrubber().output(output)


_ANONYMOUS = Principal().to_audit()
_ANONYMOUS_SEALED = Sealed(_ANONYMOUS)

#: the slot setters of Invocation in field order: filling a fresh object through
#: them builds the same frozen value as the generated __init__ at half the cost
_INVOCATION_SLOTS = tuple(getattr(Invocation, f.name).__set__ for f in dataclass_fields(Invocation))
_new_object = object.__new__


def _invocation(*values: Any) -> Invocation:
    """``Invocation(*values)`` (every field, in declaration order), on the hot path."""
    inv: Invocation = _new_object(Invocation)
    for setter, value in zip(_INVOCATION_SLOTS, values, strict=True):
        setter(inv, value)
    return inv

#: what a skill of ``config.skill_dirs`` may fail with and still leave the others serving
#: (its files, its signature, its compile, its sandbox); anything else stops the start
_SKILL_REFUSALS = (ManifestError, SigningError, SkillLoadError, OSSandboxUnavailableError)


def _read_only_error(what: str) -> ConfigError:
    return ConfigError(f"this kernel was opened read-only and {what}", field="read_only",
                       fix="open Kernel(config) without read_only=True to invoke tools")


def _refusal(skill_dir: Path, exc: VakError) -> RefusedSkill:
    """The refusal of ``skill_dir`` as recorded: text bounded and escaped, identity if known."""
    from vak.identity import signing
    from vak.identity.manifest import load_manifest
    from vak.identity.ref import SkillRef

    skill: SkillRef | None = None
    try:
        manifest = load_manifest(skill_dir)
        signer = manifest.signature.key_id if manifest.signature is not None else ""
        skill = SkillRef.of(manifest.name, manifest.version, signing.manifest_digest(manifest),
                            signer)
    except VakError:
        pass  # the manifest itself is what failed: no identity to record
    return RefusedSkill(path=excerpt(str(skill_dir), limit=300), error=exc.code,
                        message=excerpt(exc.message, limit=500), skill=skill)


def _decode_output(tool: str, data: bytes) -> object:
    """The skill's output as a value, its nesting bounded (the ABI bounds it too).

    Raises:
        OutputValidationError: not JSON, or nested deeper than ``MAX_DEPTH``
            (adapters and encoders downstream recurse; a guest must not be
            able to make them fail).
    """
    try:
        output = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise OutputValidationError(
            f"{tool}: output is not JSON: {exc}", tool=tool) from None
    if isinstance(output, dict | list) and _may_nest_deeper(data) \
            and nesting_depth(output) > MAX_DEPTH:
        raise OutputValidationError(
            f"{tool}: output nests deeper than {MAX_DEPTH} levels", tool=tool,
            max_depth=MAX_DEPTH, fix="flatten the skill's output",
        )
    return output


def _compile(engine: ModuleEngine[Resident], skill_dir: Path, manifest: Manifest, data: bytes,
             digest: str) -> None:
    """Compile the module as the kind the signed manifest names; the bytes must agree.

    Raises:
        SkillLoadError: ``module.kind`` names the other kind than the bytes are.
    """
    from vak.sandbox.kinds import binary_kind

    declared = manifest.module.kind
    actual = binary_kind(data)
    if actual == "unknown":
        actual = "core"  # not wasm at all: the engine's compile names the problem
    if declared != actual:
        raise SkillLoadError(
            f"{skill_dir}: module.kind: the manifest says {declared!r} but "
            f"{manifest.module.path} is a {actual} module; set module.kind: {actual}",
            skill_dir=str(skill_dir), field="module.kind")
    if declared == "component":
        engine.compile_component(data, digest)
    else:
        engine.compile(data, digest)


def _load_fields(skill: LoadedSkill, tools: list[RegisteredTool]) -> dict[str, Any]:
    """The ``skill_loaded`` entry's fields (docs/AUDIT-FORMAT.md)."""
    fields: dict[str, Any] = {
        "skill": skill.ref.to_audit_loaded(skill.module_sha256, skill.tier),
        "tools": [t.spec.name for t in tools],
        "route": "worker" if skill.use_worker else "engine",
        "abi": skill.manifest.module.kind,
    }
    if skill.manifest.module.kind == "component":
        from vak.sandbox.kinds import WIT_WORLD

        fields["wit"] = WIT_WORLD
    if not skill.signer_key_id:
        # loaded unsigned on the development path (require_signature = false)
        fields["dev_mode"] = True
    return fields


def _status_of(exc: VakError) -> str:
    """``outcome.status`` of a failed call: denied, trap, or error."""
    if isinstance(exc, PolicyDeniedError):
        return "denied"
    if isinstance(exc, SkillTrapError):
        return "trap"
    return "error"


def _may_nest_deeper(data: bytes) -> bool:
    """False when the JSON ``data`` cannot nest deeper than ``MAX_DEPTH``: every
    array or object opens with a bracket, so fewer brackets (those inside strings
    counted too) bound the depth without walking the decoded value."""
    return data.count(b"[") + data.count(b"{") > MAX_DEPTH


def _encode_input(name: str, payload: object) -> bytes:
    """The call's input as JSON bytes, nesting bounded like outputs.

    Raises:
        InputValidationError: not JSON-encodable, or nested deeper than ``MAX_DEPTH``.
    """
    try:
        data = orjson.dumps(payload)
    except TypeError as exc:
        raise InputValidationError(f"{name}: input is not JSON: {exc}", tool=name) from None
    if _may_nest_deeper(data) and nesting_depth(payload) > MAX_DEPTH:
        raise InputValidationError(f"{name}: input nests deeper than {MAX_DEPTH} levels",
                                   tool=name, max_depth=MAX_DEPTH)
    return data


# ------------------------------------------------------------ composition
# The one place each room is built from its settings (paths resolved here).


def _load_trust(config: KernelConfig) -> TrustStore | None:
    if config.trust_store is None:
        if config.require_signature:
            raise ConfigError(
                "require_signature is on but no trust_store is configured",
                field="trust_store", fix="set trust_store = 'trust.yaml' in vak.toml",
            )
        return None
    return TrustStore.load(config.trust_store)


def _verify(skill_dir: Path, trust: TrustStore | None, config: KernelConfig) -> VerifiedSkill:
    from vak.identity import signing
    from vak.identity.manifest import load_manifest

    if config.require_signature:
        if trust is None:  # _load_trust refuses this; never fall through to the dev path
            raise ConfigError("require_signature is on but no trust_store is configured",
                              field="trust_store")
        return signing.verify_skill(skill_dir, trust)
    manifest = load_manifest(skill_dir)
    if manifest.signature is not None and trust is not None:
        # a signed skill is still verified (and an unknown signer refused)
        return signing.verify_skill(skill_dir, trust)
    # development path (require_signature = false): an unsigned skill is
    # treated as untrusted, so it only ever runs in the OS-sandboxed worker
    data = signing.read_module(skill_dir, manifest)
    return signing.VerifiedSkill(
        manifest=manifest, module_bytes=data,
        module_sha256=hashlib.sha256(data).hexdigest(), signer_key_id="",
        tier=Tier.UNTRUSTED, skill_dir=skill_dir,
        manifest_sha256=signing.manifest_digest(manifest),
    )


def _recheck(skill: LoadedSkill, trust: TrustStore | None, config: KernelConfig) -> None:
    """A loaded skill still verifies under a reloaded trust store, as it was loaded.

    Raises:
        ConfigError: its signer, tier or module digest would differ now.
        SignatureError, UntrustedSignerError, DigestMismatchError: it no longer verifies.
    """
    verified = _verify(Path(skill.skill_dir), trust, config)
    if (verified.signer_key_id, verified.tier, verified.module_sha256) != (
            skill.signer_key_id, skill.tier, skill.module_sha256):
        raise ConfigError(
            f"{skill.skill_dir}: skill {skill.name} would load differently under the new "
            f"trust store (signer, tier or module changed); the reload changed nothing",
            skill_dir=skill.skill_dir, field="trust_store",
            fix="restart the kernel to load the skill again under the new trust store")


def _open_audit(config: KernelConfig) -> KernelAudit:
    from vak.audit.log import AuditLog

    return AuditLog.open(config.audit_settings())


def _host_names() -> tuple[str, ...]:
    from vak.host.catalog import HOST_FUNCTIONS

    return tuple(f.name for f in HOST_FUNCTIONS)


def _record_sandbox_state(audit: KernelAudit, config: KernelConfig) -> None:
    """Record at start that this host lacks OS barriers (untrusted skills refused
    or, by the operator's choice, run with fewer barriers)."""
    from vak.sandbox.oslock import sandbox_report

    report = sandbox_report(config.worker.allow_unsandboxed)
    if report["degraded"]:
        audit.append("sandbox_degraded", report)


def _start_fleet(config: KernelConfig, audit: KernelAudit) -> FleetAgent | None:
    """The background shipper / witness client; a reader of the log, never on the call path."""
    fleet = config.fleet_settings()
    if not fleet.active:
        return None
    from vak.audit.keys import public_path_for
    from vak.fleet.agent import FleetAgent

    settings = config.audit_settings()
    agent = FleetAgent.start(fleet, settings.log, public_path_for(settings.key))
    audit.add_checkpoint_listener(agent.notify)  # no wait for the next poll
    return agent


def _make_engine(config: KernelConfig) -> ModuleEngine[Resident]:
    from vak.sandbox.engine import Engine

    return Engine(config.engine_settings(), _host_names())


def _make_observer(config: KernelConfig) -> Observer | None:
    if not config.telemetry.enabled:
        return None
    from vak.telemetry.setup import observer_from_settings

    return observer_from_settings(config.telemetry)


def _make_mediator(config: KernelConfig, audit: KernelAudit, secrets: SecretProvider | None,
                   approvals: ApprovalGate, observer: Observer | None,
                   ) -> tuple[Mediation, PolicyEngine]:
    from vak.host.mediation import Mediator
    from vak.host.secrets import FileSecretProvider
    from vak.policy.engine import PolicyEngine

    policy = config.policy_settings()
    policies = PolicyEngine.load(policy)
    # the policy set decides from here on: recorded whole before any decision cites it
    audit.append("policy_set", policies.policy_set_record(), flush=True)
    host = config.host_settings()
    if secrets is None and host.secrets_file is not None:
        secrets = FileSecretProvider(host.secrets_file)
    return Mediator(host, policies, audit, args_digest=audit.args_digest, secrets=secrets,
                    approvals=approvals, observer=observer), policies


def _make_sessions(config: KernelConfig, engine: ModuleEngine[Resident]) -> SessionTable[Resident]:
    total = config.engine.pool_total_instances
    if not 0 < config.session_max_live < total:
        raise ConfigError(
            f"session_max_live={config.session_max_live} must be between 1 and "
            f"engine.pool_total_instances-1 ({total - 1}): kept session "
            "instances must leave pooled slots for fresh calls",
            field="session_max_live", fix="lower session_max_live or raise pool_total_instances",
        )
    return SessionTable(engine, config.session_max_live)


def _make_pool(config: KernelConfig) -> ModuleWorkers:
    from vak.sandbox.pool import WorkerPool

    return WorkerPool(config.worker_settings(), config.engine_settings(), _host_names())


def _handler(mediator: Mediation, tool: RegisteredTool, inv_id: str,
             session: str | None, deadline: float,
             caller: Principal | None = None) -> ScrubbingHandler:
    return mediator.handler(_context(tool.skill, inv_id, session, deadline, caller))


def _context(skill: LoadedSkill, inv_id: str, session: str | None,
             deadline: float, caller: Principal | None = None) -> CallContext:
    from vak.host.context import CallContext

    who = Principal() if caller is None else caller
    return CallContext(
        caller_id=who.id,
        caller_kind=who.kind,
        manifest=skill.manifest,
        manifest_digest=f"sha256:{skill.manifest_sha256}",
        module_sha256=skill.module_sha256,
        signer_key_id=skill.signer_key_id,
        trust_tier=skill.tier,
        invocation_id=inv_id,
        session_id=session or "",
        deadline=deadline,
    )
