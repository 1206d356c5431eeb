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
  ``invocation_finished`` entry before the error propagates;
* the guest runs in-process (trusted tier) or in the OS-sandboxed worker pool
  (untrusted tier, or ``force_worker``), both behind the same ``Runner`` seam;
* :meth:`Kernel.invoke` is safe to call from many threads at once: the
  registry is read-mostly under a lock, each call gets its own Store, and the
  audit log serialises appends into one chain;
* with ``session_reuse`` on (opt-in), in-process calls that carry a
  ``session=`` id reuse that session's live instance of the skill, so guest
  state persists between them (:mod:`vak._session`); calls without a session,
  and calls routed to the OS-sandboxed worker, always get a fresh instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from vak import formats
from vak._registry import LoadedSkill, RegisteredTool, Registry
from vak._session import SessionTable
from vak.config import KernelConfig
from vak.errors import (
    ConfigError,
    InputValidationError,
    OutputValidationError,
    PolicyDeniedError,
    SkillLoadError,
    SkillTrapError,
    VakError,
)
from vak.identity.floor import VERSION_FLOOR_FILE, VersionFloor
from vak.identity.trust import Tier
from vak.invocation import Invocation, Principal, ToolSpec

__all__ = ["Kernel"]


class Kernel:
    """The facade: load signed skills, describe them as tools, invoke them.

    Raises (from the constructor):
        ConfigError: the configuration is unusable.
        PolicyError: a policy file does not validate against the schema.
        AuditIntegrityError: the audit log on disk is damaged.
        OSSandboxUnavailableError: ``require_os_sandbox`` with barriers missing
            (raised when the worker pool starts).
    """

    def __init__(self, config: KernelConfig) -> None:
        self.config = config
        self._registry = Registry()
        self._load_lock = threading.Lock()
        self._closed = False
        self._strict = config.audit_fsync == "strict"
        self._pool: Any = None
        self._pool_lock = threading.Lock()
        self._semaphores: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()
        self._audit: Any = None
        self._engine: Any = None
        self._mediator: Any = None
        self._sessions: SessionTable | None = None
        try:
            self._trust = _load_trust(config)
            self._floor = VersionFloor.open(config.state_dir / VERSION_FLOOR_FILE)
            self._audit = _open_audit(config)
            _record_sandbox_state(self._audit, config)
            self._engine = _make_engine(config)
            self._mediator = _make_mediator(config, self._audit)
            if config.session_reuse:
                self._sessions = _make_sessions(config, self._engine)
            if config.force_worker:
                self._worker_pool()
        except BaseException:
            self.close()
            raise
        for skill_dir in config.skill_dirs:
            self.load_skill(skill_dir)

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def from_config(cls, path: str | Path) -> Kernel:
        """A kernel configured by a ``vak.toml`` (its ``skill_dirs`` are loaded).

        Raises:
            ConfigError: the file is missing or invalid.
        """
        return cls(KernelConfig.from_toml(path))

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
            for part in (self._audit, self._mediator, self._engine, self._pool,
                         self._sessions):
                closer = getattr(part, "close", None)
                if closer is not None:
                    stack.callback(closer)

    @property
    def audit(self) -> Any:
        """The kernel's :class:`vak.audit.log.AuditLog` (read-only use, e.g. verification)."""
        return self._audit

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
        tier = verified.tier
        skill = LoadedSkill(
            name=manifest.name,
            version=manifest.version,
            manifest=manifest,
            module_sha256=verified.module_sha256,
            signer_key_id=str(verified.signer_key_id or ""),
            tier=tier,
            skill_dir=str(skill_dir),
            manifest_sha256=str(getattr(verified, "manifest_sha256", "") or ""),
            # fail closed: anything but the trusted tier runs in the OS-sandboxed worker
            use_worker=self.config.force_worker or tier is not Tier.TRUSTED,
        )
        tools = self._registry.build(skill)
        with self._load_lock:
            # compile before registering so a half-loaded skill is never callable
            try:
                _compile(self._engine, skill_dir, manifest, verified.module_bytes,
                         verified.module_sha256)
                if skill.use_worker:
                    self._worker_pool().register(verified.module_sha256, verified.module_bytes)
            except VakError:
                raise
            except Exception as exc:
                raise SkillLoadError(
                    f"{skill_dir}: cannot compile module: {exc}", skill_dir=str(skill_dir)
                ) from exc
            self._registry.add(tools)
            # recorded before load_skill returns; a skill whose load cannot be
            # recorded is not kept callable (fail closed)
            try:
                self._floor.record(verified.ref)
                self._audit.append("skill_loaded", _load_fields(skill, tools),
                                   durable=self._strict, flush=True)
            except BaseException:
                self._registry.discard(tools)
                raise
        return tuple(t.spec for t in tools)

    # ------------------------------------------------------------------ queries
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

    def sandbox_status(self) -> dict[str, Any]:
        """The sandbox as it runs (``vak status``): OS barriers and what they mean
        for untrusted skills, and which wasmtime call path the self-test chose."""
        from vak.sandbox.oslock import sandbox_report

        return {**sandbox_report(self.config.worker_allow_unsandboxed),
                "wasmtime": self._engine.fast_paths}

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
        """
        self._check_open()
        tool = self._registry.get(name)
        payload: Any = {} if input is None else input
        inv_id = os.urandom(16).hex()  # as unguessable as uuid4, cheaper
        input_json = _encode_input(name, payload)
        reuse = self._reuses(tool, session)
        fields: dict[str, Any] = {
            "invocation": inv_id,
            "skill": tool.audit_skill,
            "session": session or "",
            "call_id": call_id,
            "principal": _ANONYMOUS if principal is None else principal.to_audit(),
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
        started = self._audit.append("invocation_started", fields)
        t0 = time.perf_counter_ns()
        outcome: Any = None
        try:
            tool.input_validator.check(payload)
            outcome, output = self._run(tool, input_json, inv_id, session, reuse)
            tool.output_validator.check(output)
        except BaseException as exc:
            self._finish(tool, inv_id, session, started, outcome, t0, exc)
            raise
        finished = self._finish(tool, inv_id, session, started, outcome, t0, None)
        return Invocation(
            tool=name,
            output=output,
            fuel_used=outcome.fuel_used,
            duration_ns=outcome.duration_ns,
            host_calls=outcome.host_calls,
            invocation_id=inv_id,
            session=session,
            call_id=call_id,
            audit_seq_started=started.seq,
            audit_seq_finished=finished.seq,
            leaf_hash=finished.leaf_hash,
            receipt_source=self._receipt,
            worker=tool.skill.use_worker,
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
        if self._sessions is None:
            return 0
        return self._sessions.end(session)

    # ------------------------------------------------------------------ internals
    def _run(
        self, tool: RegisteredTool, input_json: bytes, inv_id: str, session: str | None,
        reuse: bool,
    ) -> tuple[Any, Any]:
        host = _LazyHost(self._mediator, tool, inv_id, session)
        skill = tool.skill
        if reuse:
            assert self._sessions is not None and session is not None
            outcome = self._sessions.call(
                session, skill.name, skill.module_sha256, tool.spec.export, input_json,
                skill.manifest.limits, host,
            )
        else:
            runner = self._worker_pool() if skill.use_worker else self._engine
            outcome = runner.call(
                skill.module_sha256, tool.spec.export, input_json, skill.manifest.limits, host,
            )
        scrubbed = host.scrub(outcome.output)
        if scrubbed is not outcome.output:
            # a secret the skill read must not leave through its output
            outcome = replace(outcome, output=scrubbed)
        try:
            output = orjson.loads(outcome.output)
        except orjson.JSONDecodeError as exc:
            raise OutputValidationError(
                f"{tool.spec.name}: output is not JSON: {exc}", tool=tool.spec.name
            ) from None
        return outcome, output

    def _reuses(self, tool: RegisteredTool, session: str | None) -> bool:
        """Whether this call runs on the session's kept instance (opt-in mode)."""
        return self._sessions is not None and bool(session) and not tool.skill.use_worker

    def _finish(
        self, tool: RegisteredTool, inv_id: str, session: str | None, started: Any,
        outcome: Any, t0: int, exc: BaseException | None,
    ) -> Any:
        duration_ns = outcome.duration_ns if outcome is not None else time.perf_counter_ns() - t0
        result: dict[str, Any] = {"status": "ok", "duration_us": duration_ns // 1000}
        fields: dict[str, Any] = {
            "invocation": inv_id,
            "skill": tool.audit_skill,
            "session": session or "",
            "tool": tool.spec.name,
            "started_seq": started.seq,
            "outcome": result,
        }
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
        if isinstance(exc, VakError):
            # the caller (and the model) can point an auditor at the exact entry
            exc.details.setdefault("invocation", inv_id)
            exc.details["finished_seq"] = ref.seq
        return ref

    def _receipt(self, seq: int) -> Any:
        """Checkpoint + inclusion proof for entry ``seq`` (fetched when first asked for).

        Signing a checkpoint per call would cost more than the call itself, so
        :attr:`Invocation.receipt` asks here lazily; by then the log's group
        commit has usually signed a checkpoint that covers the entry.
        """
        try:
            return self._audit.receipt(seq)
        except VakError:
            return None

    def _worker_pool(self) -> Any:
        with self._pool_lock:
            if self._pool is None:
                self._pool = _make_pool(self.config)
            return self._pool

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigError("the kernel is closed", fix="create a new Kernel")


# ---------------------------------------------------------------------- seams
# Each helper below adapts to one other room's API, so the kernel body stays
# readable and a change over there is fixed in one place here.


class _LazyHost:
    """The call's ``HostHandler``, built only when the guest makes its first host call.

    Most tool calls make none, so the per-call :class:`CallContext` and
    mediated handler are not built for them; ``scrub`` is the identity until
    a handler exists (no secret can have been revealed without one).
    """

    __slots__ = ("_deadline", "_handler", "_inv_id", "_mediator", "_session", "_tool")

    def __init__(self, mediator: Any, tool: RegisteredTool, inv_id: str,
                 session: str | None) -> None:
        self._mediator = mediator
        self._tool = tool
        self._inv_id = inv_id
        self._session = session
        self._handler: Any = None
        #: no host effect outlives the call's own time limit
        self._deadline = (time.monotonic()
                          + tool.skill.manifest.limits.max_execution_time_ms / 1000)

    def _get(self) -> Any:
        handler = self._handler
        if handler is None:
            handler = self._handler = _handler(
                self._mediator, self._tool, self._inv_id, self._session, self._deadline)
        return handler

    def __call__(self, name: str, payload: bytes) -> bytes:
        reply: bytes = self._get()(name, payload)
        return reply

    def refuse(self, function: str, policy_id: str, reason: str, /) -> BaseException:
        """Record a call the engine refused (bad span, call limit); the error to raise."""
        error: BaseException = self._get().refuse(function, policy_id, reason)
        return error

    def scrub(self, output: bytes) -> bytes:
        scrub = getattr(self._handler, "scrub", None)
        return output if scrub is None else scrub(output)


_ANONYMOUS = Principal().to_audit()


def _compile(engine: Any, skill_dir: Path, manifest: Any, data: bytes, digest: str) -> None:
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


def _encode_input(name: str, payload: Any) -> bytes:
    try:
        return orjson.dumps(payload)
    except TypeError as exc:
        raise InputValidationError(f"{name}: input is not JSON: {exc}", tool=name) from None


def _load_trust(config: KernelConfig) -> Any:
    from vak.identity.trust import TrustStore

    if config.trust_store is None:
        if config.require_signature:
            raise ConfigError(
                "require_signature is on but no trust_store is configured",
                field="trust_store", fix="set trust_store = 'trust.yaml' in vak.toml",
            )
        return None
    return TrustStore.load(config.trust_store)


def _verify(skill_dir: Path, trust: Any, config: KernelConfig) -> Any:
    from vak.identity import signing
    from vak.identity.manifest import load_manifest

    if config.require_signature:
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


def _open_audit(config: KernelConfig) -> Any:
    from vak.audit.log import AuditLog
    from vak.audit.settings import AuditSettings

    return AuditLog.open(AuditSettings(
        config.resolved("audit_log"), config.resolved("audit_key"),
        config.resolved("audit_hmac_key"), origin=config.audit_origin, fsync=config.audit_fsync,
    ))


#: composed settings field -> flat ``KernelConfig`` field, per room (until
#: ``KernelConfig`` holds the settings objects themselves)
_ENGINE_FIELDS = {name: name for name in (
    "pool_total_instances", "pool_total_memories", "pool_max_memory_bytes",
    "pool_total_tables", "pool_table_elements", "epoch_tick_ms", "wasm_stack_bytes", "fuel")}
_WORKER_FIELDS = {
    "force": "force_worker", "require_os_sandbox": "require_os_sandbox",
    "allow_unsandboxed": "worker_allow_unsandboxed", "pool_size": "worker_pool_size",
    "recycle_after": "worker_recycle_after", "cpu_seconds": "worker_cpu_seconds",
    "start_timeout_ms": "worker_start_timeout_ms", "hang_margin_ms": "worker_hang_margin_ms",
}


def _engine_settings(config: KernelConfig) -> Any:
    from vak.sandbox.settings import EngineSettings

    cache = config.resolved("module_cache_dir") if config.module_cache else None
    return EngineSettings(**{k: getattr(config, v) for k, v in _ENGINE_FIELDS.items()},
                          module_cache_dir=cache)


def _worker_settings(config: KernelConfig) -> Any:
    from vak.sandbox.settings import WorkerSettings

    return WorkerSettings(**{k: getattr(config, v) for k, v in _WORKER_FIELDS.items()})


def _host_names() -> tuple[str, ...]:
    from vak.host.catalog import HOST_FUNCTIONS

    return tuple(f.name for f in HOST_FUNCTIONS)


def _record_sandbox_state(audit: Any, config: KernelConfig) -> None:
    """Record at start that this host lacks OS barriers (untrusted skills refused
    or, by the operator's choice, run with fewer barriers)."""
    from vak.sandbox.oslock import sandbox_report

    report = sandbox_report(config.worker_allow_unsandboxed)
    if report["degraded"]:
        audit.append("sandbox_degraded", report)


def _make_engine(config: KernelConfig) -> Any:
    from vak.sandbox.engine import Engine

    return Engine(_engine_settings(config), _host_names())


def _make_mediator(config: KernelConfig, audit: Any) -> Any:
    from vak.host.mediation import Mediator
    from vak.host.secrets import FileSecretProvider
    from vak.host.settings import HostSettings
    from vak.policy.engine import PolicyEngine
    from vak.policy.settings import PolicySettings

    policies = PolicyEngine.load(PolicySettings(
        policy_dirs=config.all_policy_dirs, decision_cache_size=config.decision_cache_size))
    host = HostSettings(
        fs_mounts=config.fs_mounts, kv_path=config.resolved("kv_path"),
        secrets_file=config.secrets_file, secrets_env=config.secrets_env,
        http_max_response_bytes=config.http_max_response_bytes,
        http_timeout_ms=config.http_timeout_ms,
    )
    secrets = FileSecretProvider(config.secrets_file) if config.secrets_file else None
    return Mediator(host, policies, audit, args_digest=audit.args_digest, secrets=secrets)


def _make_sessions(config: KernelConfig, engine: Any) -> SessionTable:
    if not 0 < config.session_max_live < config.pool_total_instances:
        raise ConfigError(
            f"session_max_live={config.session_max_live} must be between 1 and "
            f"pool_total_instances-1 ({config.pool_total_instances - 1}): kept session "
            "instances must leave pooled slots for fresh calls",
            field="session_max_live", fix="lower session_max_live or raise pool_total_instances",
        )
    return SessionTable(engine, config.session_max_live)


def _make_pool(config: KernelConfig) -> Any:
    from vak.sandbox.pool import WorkerPool

    return WorkerPool(_worker_settings(config), _engine_settings(config), _host_names())


def _handler(mediator: Any, tool: RegisteredTool, inv_id: str, session: str | None,
             deadline: float) -> Any:
    from vak.host.context import CallContext

    skill = tool.skill
    return mediator.handler(CallContext(
        manifest=skill.manifest,
        manifest_digest=f"sha256:{skill.manifest_sha256}",
        module_sha256=skill.module_sha256,
        signer_key_id=skill.signer_key_id,
        trust_tier=skill.tier,
        invocation_id=inv_id,
        session_id=session or "",
        deadline=deadline,
    ))
