"""The one mediation path every host call takes: decide, record, then act.

For each guest call ``vak.<function>(args)`` the handler returned by
:meth:`Mediator.handler` does, in this order and for every function alike:

1. count the call (saturating) and refuse past ``limits.max_host_calls``;
2. parse the JSON arguments (malformed -> :class:`~vak.errors.ABIError`);
3. let the function's family normalise them into a :class:`Prepared`
   (resource entity, context, effect); a refused target (NUL, ``file://``,
   userinfo, ...) is a Deny with policy id ``vak.invalid-target``;
4. enforce the declared-capability ceiling (``vak.capability-ceiling``):
   nothing the signed manifest did not declare is allowed, whatever a policy
   says;
5. ask the :class:`~vak.policy.engine.PolicyEngine` (fail closed);
6. append a ``host_decision`` entry to the audit sink -- ``durable=True`` for
   effectful functions, so no effect happens before its record;
7. on Deny raise :class:`~vak.errors.PolicyDeniedError` (policy ids, audit
   seq); on Allow perform the effect, append a ``host_result`` entry and
   return the JSON reply. Ordinary failures (not found, HTTP 404, DNS) are
   JSON ``{"error": code, "message": ...}`` replies, never traps.

Every call, refused or not, produces exactly one ``host_decision`` entry.
Host functions themselves never authorize or audit.

Speed without skipping a step: the per-invocation audit fields are bound once
per handler; the ``fs``/``kv`` normalisation of step 3 is memoised per handler by
the exact argument bytes (a pure function of them for a fixed skill); step 5
consults the decision cache by a key computed before any Cedar request is built.
Every call is still counted, decided, recorded (with its own args HMAC) and,
when allowed, performed and recorded with the log's keyed digest of its result.

Example::

    >>> mediator = Mediator(engine, audit_log, args_digest=audit_log.args_digest,
    ...                     fs_mounts=config.fs_mounts)             # doctest: +SKIP
    >>> handler = mediator.handler(ctx)                             # doctest: +SKIP
    >>> handler("fs_read", b'{"path": "/workspace/a.txt"}')          # doctest: +SKIP
    b'{"content":"...","truncated":false}'
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

from vak.audit.sink import AuditRef, AuditSink
from vak.config import KernelConfig
from vak.errors import ABIError, HostCallLimitError, PolicyDeniedError
from vak.host.base import HostEffectError, Prepared
from vak.host.catalog import HostFunction, host_function
from vak.host.clock import Clock, ClockFamily
from vak.host.context import COUNTER_MAX, CallContext
from vak.host.dataflow import FlowTable, LabelMap, ScrubberCache, SessionFlow, secret_label
from vak.host.fs import FsFamily
from vak.host.http import HttpFamily, Resolver
from vak.host.kv import KvFamily, KvStore
from vak.host.log import LogFamily
from vak.host.random import RandomFamily
from vak.host.secrets import NoSecrets, SecretProvider, SecretsFamily
from vak.policy.engine import Decision, PolicyEngine
from vak.policy.entities import Entity, Principal, principal_for
from vak.policy.normalize import NormalizeError
from vak.scrub import EMPTY, Scrubber, excerpt

__all__ = [
    "CAPABILITY_CEILING",
    "HOST_CALL_LIMIT",
    "INVALID_ARGS",
    "INVALID_TARGET",
    "MediatedHandler",
    "Mediator",
]

CAPABILITY_CEILING = "vak.capability-ceiling"
INVALID_TARGET = "vak.invalid-target"
INVALID_ARGS = "vak.invalid-args"
HOST_CALL_LIMIT = "vak.host-call-limit"
_MAX_ARGS = 2 << 20
_CEILING_DECISION = Decision(False, (CAPABILITY_CEILING,))
#: families whose ``prepare`` is a pure function of (function, argument bytes) for a
#: fixed skill and mediator (no DNS, no secret reveal, no scrubbing state, no clock)
_PURE_FAMILIES = frozenset({"fs", "kv"})
_MEMO_ARGS = 1024  # larger arguments (fs_write contents) are never kept
_MEMO_SIZE = 64


def _memo_put(
    memo: dict[tuple[str, bytes], Prepared], key: tuple[str, bytes], value: Prepared
) -> None:
    if len(memo) >= _MEMO_SIZE:
        memo.pop(next(iter(memo)))
    memo[key] = value

_log = logging.getLogger("vak.host")


def audit_target(resource: Entity) -> str:
    """The normalised target as docs/AUDIT-FORMAT.md logs it (path, URL, kv:ns/key, ...)."""
    if resource.type in ("Vak::File", "Vak::Dir", "Vak::Url", "Vak::Secret"):
        return resource.id
    if resource.type == "Vak::KvKey":
        return f"kv:{resource.id}"
    if resource.type == "Vak::KvNamespace":
        return f"kv:{resource.id}/"
    return "kernel"


class Mediator:
    """Built once per kernel; hands out one :class:`MediatedHandler` per call."""

    def __init__(
        self,
        engine: PolicyEngine,
        audit: AuditSink,
        *,
        args_digest: Callable[[bytes], str],
        fs_mounts: Mapping[str, Path] | None = None,
        kv_path: Path | None = None,
        secrets: SecretProvider | None = None,
        resolver: Resolver | None = None,
        http_max_response_bytes: int = 1 << 20,
        http_timeout_ms: int = 5000,
        tls_context: ssl.SSLContext | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.engine = engine
        self._audit = audit
        self._digest = args_digest
        self._kv_store = KvStore(kv_path) if kv_path is not None else None
        self._fs = FsFamily(fs_mounts or {})
        self._http = HttpFamily(
            resolver,
            max_response_bytes=http_max_response_bytes,
            timeout_ms=http_timeout_ms,
            tls_context=tls_context,
        )
        self._kv = KvFamily(self._kv_store) if self._kv_store is not None else None
        # data flow (vak.host.dataflow): labels per session, the secrets' scrubbers
        self._flows = FlowTable()
        self._label_map = LabelMap(fs_mounts or {})
        self._secrets = SecretsFamily(secrets or NoSecrets(), lambda: self._scrubbers.invalidate())
        self._scrubbers = ScrubberCache(self._secrets.values_of)
        self._log = LogFamily()
        self._clock = ClockFamily(clock)
        self._random = RandomFamily()
        self._principals: dict[tuple[str, str, str, str], Principal] = {}

    @classmethod
    def from_config(
        cls,
        config: KernelConfig,
        engine: PolicyEngine,
        audit: AuditSink,
        *,
        args_digest: Callable[[bytes], str],
        secrets: SecretProvider | None = None,
        resolver: Resolver | None = None,
    ) -> Mediator:
        """The mediator for ``config`` (fs mounts, kv path, http limits)."""
        return cls(
            engine,
            audit,
            args_digest=args_digest,
            fs_mounts=config.fs_mounts,
            kv_path=config.resolved("kv_path"),
            secrets=secrets,
            resolver=resolver,
            http_max_response_bytes=config.http_max_response_bytes,
            http_timeout_ms=config.http_timeout_ms,
        )

    def close(self) -> None:
        """Close the kv database."""
        if self._kv_store is not None:
            self._kv_store.close()

    def handler(self, ctx: CallContext) -> MediatedHandler:
        """The :class:`~vak.sandbox.types.HostHandler` for one invocation."""
        return MediatedHandler(self, ctx, self._principal(ctx))

    def scrubber_for(self, session_id: str) -> Scrubber:
        """The scrubber of ``session_id`` (for output made without a host call)."""
        flow = self._flows.get(session_id)
        return EMPTY if flow is None else flow.scrubber(self._scrubbers)

    def on_session_evicted(self, hook: Callable[[str], object]) -> None:
        """Call ``hook(session_id)`` when a labelled session's flow is evicted (the
        kernel ends the session's reused instances: their memory may hold a secret)."""
        self._flows.on_evict = hook

    def session_labels(self, session_id: str) -> frozenset[str]:
        """The data-flow labels ``session_id`` holds now."""
        flow = self._flows.get(session_id)
        return frozenset() if flow is None else flow.labels

    def end_session(self, session_id: str) -> bool:
        """Forget ``session_id``'s labels; True if it had any state."""
        return self._flows.end(session_id)

    def _principal(self, ctx: CallContext) -> Principal:
        key = (ctx.manifest_digest, ctx.module_sha256, ctx.signer_key_id, ctx.trust_tier)
        p = self._principals.get(key)
        if p is None or p.entity.id != ctx.manifest.name:
            p = principal_for(
                ctx.manifest,
                manifest_digest=ctx.manifest_digest,
                module_sha256=ctx.module_sha256,
                signer=ctx.signer_key_id,
                trust_tier=ctx.trust_tier,
            )
            self._principals[key] = p
        return p

    # -- used by MediatedHandler ------------------------------------------
    def _prepare(
        self, fn: HostFunction, args: Mapping[str, Any], handler: MediatedHandler
    ) -> Prepared:
        ctx = handler.ctx
        if fn.family == "fs":
            return self._fs.prepare(fn.name, args, ctx)
        if fn.family == "net":
            return self._http.prepare(fn.name, args, ctx)
        if fn.family == "kv":
            if self._kv is None:
                raise NormalizeError("no kv store is configured")
            return self._kv.prepare(fn.name, args, ctx, handler._flow)
        if fn.family == "secrets":
            return self._secrets.prepare(fn.name, args, ctx, handler._reveal)
        if fn.name == "log":
            return self._log.prepare(fn.name, args, ctx, handler.scrub_text)
        if fn.name == "clock_now":
            return self._clock.prepare(fn.name, args, ctx)
        return self._random.prepare(fn.name, args, ctx)


class MediatedHandler:
    """The per-invocation host handler: ``handler(function, args) -> reply``.

    Everything constant for the invocation (the audit entries' invocation,
    session and skill fields, the sink's ``append``, the digest function, the
    host-call limit) is bound once here, so a decision-cache hit costs one
    argument parse, one normalisation, one cache lookup, one args HMAC, one
    result HMAC and the two audit appends.
    """

    __slots__ = ("_append", "_digest", "_flow", "_head", "_m", "_max_calls", "_memo",
                 "_sink_append", "_skill", "ctx", "principal")

    def __init__(self, mediator: Mediator, ctx: CallContext, principal: Principal) -> None:
        self._m = mediator
        self.ctx = ctx
        self.principal = principal
        #: the session's data-flow labels (shared by all its invocations, any route)
        self._flow: SessionFlow = mediator._flows.open(ctx.session_id)
        self._skill = {
            "id": ctx.manifest.name,
            "version": ctx.manifest.version,
            "manifest_digest": ctx.manifest_digest,
            "signer": ctx.signer_key_id,
        }
        #: the audit fields every entry of this invocation shares (never mutated)
        self._head = {"invocation": ctx.invocation_id, "session": ctx.session_id,
                      "skill": self._skill}
        self._sink_append = mediator._audit.append
        self._append = self._append_scrubbed
        self._digest = mediator._digest
        self._max_calls = ctx.manifest.limits.max_host_calls
        #: normalised calls of pure families, by exact (function, argument bytes)
        self._memo: dict[tuple[str, bytes], Prepared] = {}

    def __call__(self, function: str, args: bytes, /) -> bytes:
        """Mediate one guest call.

        Raises:
            ABIError: unknown function, oversized or malformed JSON arguments.
            HostCallLimitError: more host calls than ``limits.max_host_calls``.
            PolicyDeniedError: refused (ceiling, policy, invalid target).
            AuditError: the decision could not be recorded (nothing was done).
        """
        m = self._m
        ctx = self.ctx
        fn = host_function(function)
        if fn is None:
            self._refuse(function, "", args, INVALID_ARGS, f"unknown host function {function!r}")
            raise ABIError(f"unknown host function vak.{function}", host_function=function)
        counters = ctx.counters
        calls = counters.host_calls + 1
        counters.host_calls = calls = calls if calls < COUNTER_MAX else COUNTER_MAX
        if calls > self._max_calls:
            ref = self._refuse(function, "", args, HOST_CALL_LIMIT, "max_host_calls exceeded")
            raise HostCallLimitError(
                f"skill {ctx.manifest.name} exceeded max_host_calls ({self._max_calls})",
                host_function=function,
                audit_seq=ref.seq,
            )
        memo_key = (
            (function, args)
            if fn.family in _PURE_FAMILIES and type(args) is bytes and len(args) <= _MEMO_ARGS
            else None
        )
        prepared = self._memo.get(memo_key) if memo_key is not None else None
        if prepared is None:
            prepared = self._prepare(fn, args)
            if memo_key is not None:
                _memo_put(self._memo, memo_key, prepared)

        resource = audit_target(prepared.resource)
        scrubber = self.scrubber
        if scrubber is not EMPTY:
            resource = scrubber.text(resource)
        engine = m.engine
        if prepared.ceiling_violation is not None:
            decision = _CEILING_DECISION
        else:
            used = engine.session_fields_used
            session = self._session(used) if used else {}
            decision = engine.decide_call(
                self.principal, fn.name, prepared.resource, prepared.context, session
            )
        why = prepared.ceiling_violation or ("" if decision.allowed else "denied by policy")
        fields = self._head.copy()
        fields["host_function"] = function
        fields["resource"] = resource
        fields["args_hmac"] = self._digest(args)
        labels = self._flow.labels
        if labels:
            fields["labels"] = sorted(labels)
        if why:
            fields["decision"] = self._decision_field(
                False, list(decision.policy_ids), why, decision.policy_set or engine.digest
            )
        else:  # the common case, inlined
            fields["decision"] = {
                "effect": "allow",
                "policy_ids": list(decision.policy_ids),
                "policy_set": decision.policy_set or engine.digest,
            }
        summary = prepared.summary
        if summary:
            fields["summary"] = dict(summary)  # scrubbed with every field by _append
        if decision.errors:
            fields["errors"] = list(decision.errors)
        ref = self._append("host_decision", fields, durable=fn.effectful)
        if not decision.allowed:
            raise PolicyDeniedError(
                f"host call vak.{function} on {resource} denied: {why} "
                f"(policies: {', '.join(decision.policy_ids)}; audit seq {ref.seq})",
                host_function=function,
                resource=resource,
                policy_ids=list(decision.policy_ids),
                audit_seq=ref.seq,
            )
        # marked before the data arrives: the next decision already sees the label
        adds = m._label_map.labels(function, prepared.resource)
        if adds:
            self._flow.add(adds)
        start = time.perf_counter_ns()
        reply, status, code = self._perform(prepared)
        outcome: dict[str, Any] = {
            "status": status,
            # keyed (the log's HMAC), so a small result cannot be brute-forced from the log
            "result_digest": self._digest(reply),
            "duration_us": (time.perf_counter_ns() - start) // 1000,
        }
        if code:
            outcome["error"] = code
        self._append(
            "host_result",
            {
                "invocation": ctx.invocation_id,
                "host_function": function,
                "resource": resource,
                "decision_seq": ref.seq,
                "outcome": outcome,
            },
            durable=False,
        )
        return reply

    def _session(self, used: frozenset[str]) -> dict[str, Any]:
        ctx = self.ctx
        values = {
            "session_id": ctx.session_id,
            "invocation_id": ctx.invocation_id,
            "labels": sorted(self._flow.labels),
            **ctx.counters.as_dict(),
        }
        return {k: values[k] for k in used}

    def _prepare(self, fn: HostFunction, args: bytes) -> Prepared:
        """Parse and normalise the guest's arguments; refusals are recorded, then raised."""
        function = fn.name
        try:
            if len(args) > _MAX_ARGS:
                raise ABIError("host call arguments too large", host_function=function)
            parsed = orjson.loads(args)
            if type(parsed) is not dict:
                raise ABIError("host call arguments must be a JSON object", host_function=function)
            return self._m._prepare(fn, parsed, self)
        except (orjson.JSONDecodeError, ABIError) as exc:
            self._refuse(function, "", args, INVALID_ARGS, str(exc))
            if isinstance(exc, ABIError):
                raise
            raise ABIError(
                f"host call vak.{function}: arguments are not valid JSON", host_function=function
            ) from None
        except NormalizeError as exc:
            ref = self._refuse(function, "", args, INVALID_TARGET, str(exc))
            raise PolicyDeniedError(
                # the reason may quote the guest's argument: bounded, escaped, scrubbed
                f"host call vak.{function} refused: {excerpt(str(exc), self.scrubber, 200)}",
                host_function=function,
                resource="",
                policy_ids=[INVALID_TARGET],
                audit_seq=ref.seq,
            ) from None

    def _perform(self, prepared: Prepared) -> tuple[bytes, str, str]:
        try:
            out = prepared.effect()
            return orjson.dumps(out), "ok", ""
        except HostEffectError as exc:
            return orjson.dumps({"error": exc.code, "message": exc.message}), "error", exc.code
        except Exception as exc:  # an effect bug must not crash the kernel or leak details
            _log.error("host effect failed: %s", type(exc).__name__)
            return (
                orjson.dumps({"error": "host_failure", "message": "host function failed"}),
                "error",
                "host_failure",
            )

    def _base_fields(self, function: str, resource: str, args: bytes) -> dict[str, Any]:
        fields = self._head.copy()
        fields["host_function"] = function
        fields["resource"] = resource  # scrubbed by _append (a guest may echo a secret)
        fields["args_hmac"] = self._digest(args)
        if self._flow.labels:
            fields["labels"] = sorted(self._flow.labels)
        return fields

    def _decision_field(
        self, allowed: bool, policy_ids: list[str], reason: str, policy_set: str
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "effect": "allow" if allowed else "deny",
            "policy_ids": policy_ids,
            "policy_set": policy_set,
        }
        if reason:  # may quote guest text: scrubbed whole, then bounded and escaped
            out["reason"] = excerpt(reason, self.scrubber, 300)
        return out

    def _refuse(
        self, function: str, resource: str, args: bytes, policy_id: str, reason: str
    ) -> AuditRef:
        fields = self._base_fields(function[:64], resource, args)
        fields["decision"] = self._decision_field(
            False, [policy_id], reason, self._m.engine.digest
        )
        return self._append("host_decision", fields, durable=True)

    # -- data flow and secrets scrubbing (vak.host.dataflow, vak.scrub) ----
    def _reveal(self, name: str, value: str) -> None:
        """Called by ``secret_get`` before ``value`` leaves the host: mark the session."""
        self._flow.add((secret_label(name),))

    @property
    def labels(self) -> frozenset[str]:
        """The session's data-flow labels now."""
        return self._flow.labels

    @property
    def scrubber(self) -> Scrubber:
        """The scrubber of the secrets the session holds (falsy when none)."""
        return self._flow.scrubber(self._m._scrubbers)

    def _append_scrubbed(self, kind: str, fields: dict[str, Any], *, durable: bool) -> AuditRef:
        """Every audit entry of this handler, with the session's secrets scrubbed out."""
        scrubber = self.scrubber
        return self._sink_append(
            kind, fields if scrubber is EMPTY else scrubber.fields(fields), durable=durable)

    def scrub_text(self, text: str) -> str:
        """``text`` with every value of a secret the session holds redacted."""
        return self.scrubber.text(text)

    def scrub(self, output: bytes) -> bytes:
        """Skill output (JSON bytes), checked after decoding: every string and key."""
        return self.scrubber.output(output)
