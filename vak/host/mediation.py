"""The one mediation path every host call takes: decide, record, then act.

For each guest call ``vak.<function>(args)`` the handler returned by
:meth:`Mediator.handler` does, in this order and for every function alike:

1. count the call (saturating) and refuse past ``min(limits.max_host_calls,
   HostSettings.max_host_calls)`` (``vak.host-call-limit``,
   :class:`~vak.errors.HostCallLimitError`);
2. parse the JSON arguments within size and depth bounds
   (:func:`vak.host.guestjson.parse_args`; malformed -> ``vak.invalid-args``,
   :class:`~vak.errors.ABIError`);
3. run the function's pure normaliser from the catalog
   (:mod:`vak.host.catalog`, :mod:`vak.host.calls`) into a
   :class:`~vak.host.base.NormalCall`; a refused target (NUL, ``file://``,
   userinfo, ...) is a Deny with policy id ``vak.invalid-target``;
4. enforce the declared-capability ceiling (:mod:`vak.host.ceiling`,
   ``vak.capability-ceiling``): nothing the signed manifest did not declare is
   allowed, whatever a policy says;
5. ask the authorizer (:class:`~vak.policy.engine.PolicyEngine`; fail closed)
   with the one Cedar context this module builds (:meth:`MediatedHandler.session`);
6. append a ``host_decision`` entry to the audit sink -- ``durable=True`` for
   effectful functions, so no effect happens before its record;
7. on Deny raise :class:`~vak.errors.PolicyDeniedError` (policy ids, audit
   seq); on Allow perform the effect through the function's family, append a
   ``host_result`` entry and return the JSON reply. Ordinary failures (not
   found, HTTP 404, DNS) are JSON ``{"error": code, "message": ...}`` replies,
   never traps.

``http_request`` naming a host is decided twice: steps 4-5 on the URL alone
(``ip_class = "unresolved"``); if that allows, a durable ``host_resolve`` entry
records it, and only then is the name resolved; steps 5-7 follow on the pinned
address and its class. A denied host never reaches the resolver.

Every call, refused or not, produces exactly one ``host_decision`` entry; this
includes refusals the engine hands over (:meth:`MediatedHandler.refuse`: a
guest span it cannot read). Host families never authorize or audit; they return
data.

Speed without skipping a step: the per-invocation audit fields are bound once
per handler; steps 2-4 are memoised per handler by the exact argument bytes
(the normaliser and the ceiling are pure functions of them for a fixed skill);
step 5 consults the decision cache by a key computed before any Cedar request
is built. Every call is still counted, decided, recorded (with its own args
HMAC) and, when allowed, performed and recorded with the log's keyed digest of
its result.

Seam for data-flow labels: ``CallContext.labels`` (the session's label set) is
sent to Cedar as ``context.session.labels`` by :meth:`MediatedHandler.session`
and recorded in decision entries; every guest-derived string that enters an
audit field or an error message passes :meth:`MediatedHandler.scrub_text`.

Example::

    >>> mediator = Mediator(HostSettings(fs_mounts={"/workspace": ws}), engine,
    ...                     audit_log, args_digest=audit_log.args_digest)  # doctest: +SKIP
    >>> handler = mediator.handler(ctx)                             # doctest: +SKIP
    >>> handler("fs_read", b'{"path": "/workspace/a.txt"}')          # doctest: +SKIP
    b'{"content":"...","truncated":false}'
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import orjson

from vak.audit.sink import AuditRef, AuditSink
from vak.errors import ABIError, HostCallLimitError, PolicyDeniedError
from vak.host.base import Family, HostEffectError, NormalCall
from vak.host.base import excerpt as _bounded
from vak.host.calls import with_addresses
from vak.host.catalog import HOST_FUNCTIONS, HostFunction, host_function
from vak.host.ceiling import ceiling_violation
from vak.host.clock import Clock, ClockFamily
from vak.host.context import COUNTER_MAX, CallContext, CallCounters
from vak.host.fs import FsFamily
from vak.host.guestjson import parse_args
from vak.host.http import HttpFamily, Resolver
from vak.host.kv import KvFamily, KvStore
from vak.host.log import LogFamily
from vak.host.normalize import NormalizeError
from vak.host.principal import principal_for
from vak.host.random import RandomFamily
from vak.host.secrets import NoSecrets, SecretProvider, SecretsFamily
from vak.host.settings import HostSettings
from vak.policy.engine import NO_SESSION, Decision
from vak.policy.entities import CedarRequest, Entity, Principal

__all__ = [
    "CAPABILITY_CEILING",
    "HOST_CALL_LIMIT",
    "INVALID_ARGS",
    "INVALID_TARGET",
    "Authorizer",
    "Explanation",
    "MediatedHandler",
    "Mediator",
    "audit_target",
]

CAPABILITY_CEILING = "vak.capability-ceiling"
INVALID_TARGET = "vak.invalid-target"
INVALID_ARGS = "vak.invalid-args"
HOST_CALL_LIMIT = "vak.host-call-limit"
#: secret values shorter than this are not scrubbed (they would mangle output)
MIN_SCRUB_LEN = 4
_CEILING_DECISION = Decision(False, (CAPABILITY_CEILING,))
_MEMO_ARGS = 1024  # larger arguments (fs_write contents) are never kept
_MEMO_SIZE = 64

_log = logging.getLogger("vak.host")


class Authorizer(Protocol):
    """What the mediation needs of the policy engine."""

    @property
    def digest(self) -> str: ...

    @property
    def session_fields_used(self) -> frozenset[str]: ...

    def decide_call(self, principal: Principal, action: str, resource: Entity,
                    context: Mapping[str, Any], session: Mapping[str, Any]) -> Decision: ...


def audit_target(resource: Entity) -> str:
    """The normalised target as docs/AUDIT-FORMAT.md logs it (path, URL, kv:ns/key, ...).

    A kv key is percent-encoded (every byte but ``A-Za-z0-9_-~``; ``.`` too), so
    a key holding ``/``, ``..``, ``\\``, ``%`` or control characters names one
    key unambiguously and can never read as a path or a forged line.
    """
    if resource.type in ("Vak::File", "Vak::Dir", "Vak::Url", "Vak::Secret"):
        return resource.id
    if resource.type == "Vak::KvKey":
        key = str(resource.attrs.get("key", "")).encode("utf-8", "surrogatepass")
        return f"kv:{resource.attrs.get('namespace', '')}/{quote(key, safe='').replace('.', '%2E')}"
    if resource.type == "Vak::KvNamespace":
        return f"kv:{resource.id}/"
    return "kernel"


@dataclass(frozen=True, slots=True)
class Explanation:
    """What would happen to one host call, and why (nothing was performed)."""

    function: str
    allowed: bool
    #: the determining policy ids of the final decision (kernel ids like
    #: ``vak.capability-ceiling`` included)
    policy_ids: tuple[str, ...]
    reason: str
    #: why the declared-capability ceiling refuses the call (None: declared)
    ceiling: str | None
    #: Cedar's own answer on the final request (also when the ceiling refuses)
    cedar: Decision
    #: the final Cedar request as replayable data
    request: Mapping[str, Any]
    #: http by name: ``[{"stage": "url", ...}, {"stage": "address", ...}]``
    stages: tuple[Mapping[str, Any], ...] = field(default=())
    #: True when a host name was not resolved (no addresses given): the address
    #: decision is still to be made
    address_pending: bool = False


class Mediator:
    """Built once per kernel; hands out one :class:`MediatedHandler` per call."""

    def __init__(
        self,
        settings: HostSettings,
        authorizer: Authorizer,
        audit: AuditSink,
        *,
        args_digest: Callable[[bytes], str],
        secrets: SecretProvider | None = None,
        resolver: Resolver | None = None,
        tls_context: ssl.SSLContext | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.engine = authorizer
        self._audit = audit
        self._digest = args_digest
        self._kv_store = KvStore(settings.kv_path) if settings.kv_path is not None else None
        self._http = HttpFamily(resolver, tls_context=tls_context)
        fs = FsFamily(settings.fs_mounts)
        kv = KvFamily(self._kv_store) if self._kv_store is not None else None
        secret = SecretsFamily(secrets or NoSecrets())
        by_family: dict[str, Family | None] = {"fs": fs, "net": self._http, "kv": kv,
                                               "secrets": secret}
        obs: dict[str, Family] = {"log": LogFamily(), "clock_now": ClockFamily(clock),
                                  "random_bytes": RandomFamily()}
        #: function name -> the family performing it (None: not configured)
        self._families: dict[str, Family | None] = {
            fn.name: obs[fn.name] if fn.family == "obs" else by_family[fn.family]
            for fn in HOST_FUNCTIONS
        }
        self._principals: dict[tuple[str, str, str, str], Principal] = {}

    def close(self) -> None:
        """Close the kv database."""
        if self._kv_store is not None:
            self._kv_store.close()

    def handler(self, ctx: CallContext) -> MediatedHandler:
        """The :class:`~vak.sandbox.types.HostHandler` for one invocation."""
        return MediatedHandler(self, ctx, self._principal(ctx))

    def explain(
        self,
        ctx: CallContext,
        function: str,
        args: Mapping[str, Any],
        *,
        addresses: tuple[str, ...] | None = None,
        extra_context: Mapping[str, Any] | None = None,
    ) -> Explanation:
        """What the mediation would decide for ``function(args)`` by ``ctx``'s skill, and why.

        Runs the same normaliser, ceiling, Cedar context and authorizer as a
        real call, but counts, records and performs nothing, and resolves no
        name: an http call naming a host is decided on ``addresses`` when given
        (the second decision), else only on its URL (``address_pending``).
        ``extra_context`` is merged over the action's Cedar context (an offline
        what-if). Cedar is asked even when the ceiling refuses, so the answer
        shows both halves.

        Raises:
            ABIError: unknown function or malformed arguments.
            NormalizeError: the target is refused (``vak.invalid-target``).
        """
        fn = host_function(function)
        if fn is None:
            raise ABIError(f"unknown host function vak.{function[:64]}", host_function=function)
        h = self.handler(ctx)
        call, ceiling = h.normalised(fn, args)
        if extra_context:
            call = NormalCall(call.resource, {**call.context, **extra_context}, call.summary,
                              call.target, call.params, call.url)
        cedar = h.authorize(fn, call)
        stages: list[Mapping[str, Any]] = []
        pending = False
        if fn.resolves and call.unresolved:
            stages.append({"stage": "url", "allowed": cedar.allowed,
                           "policy_ids": list(cedar.policy_ids)})
            if cedar.allowed and addresses is not None:
                call = with_addresses(call, addresses)
                cedar = h.authorize(fn, call)
                stages.append({"stage": "address", "allowed": cedar.allowed,
                               "policy_ids": list(cedar.policy_ids),
                               "ip": call.resource.attrs["ip"],
                               "ip_class": call.resource.attrs["ip_class"]})
            else:
                pending = cedar.allowed
        decision = _CEILING_DECISION if ceiling is not None else cedar
        reason = ceiling or ("" if decision.allowed else "denied by policy")
        request = CedarRequest(h.principal, fn.name, call.resource,
                               {"session": h.session(), **call.context})
        return Explanation(fn.name, decision.allowed, decision.policy_ids, reason, ceiling,
                           cedar, request.to_data(), tuple(stages), pending)

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


def _memo_put(memo: dict[tuple[str, bytes], tuple[NormalCall, str | None]],
              key: tuple[str, bytes], value: tuple[NormalCall, str | None]) -> None:
    if len(memo) >= _MEMO_SIZE:
        memo.pop(next(iter(memo)))
    memo[key] = value


class MediatedHandler:
    """The per-invocation host handler: ``handler(function, args) -> reply``.

    Everything constant for the invocation (the audit entries' invocation,
    session and skill fields, the sink's ``append``, the digest function, the
    host-call limit) is bound once here, so a decision-cache hit costs one
    memo lookup (or one bounded parse and normalisation), one cache lookup, one
    args HMAC, one result HMAC and the two audit appends. It is also the
    :class:`~vak.host.base.EffectScope` the families see.
    """

    __slots__ = ("_append", "_digest", "_head", "_m", "_max_calls", "_memo", "_revealed",
                 "_skill", "ctx", "principal")

    def __init__(self, mediator: Mediator, ctx: CallContext, principal: Principal) -> None:
        self._m = mediator
        self.ctx = ctx
        self.principal = principal
        self._revealed: set[str] = set()
        self._skill = ctx.skill.to_audit()
        #: the audit fields every entry of this invocation shares (never mutated)
        self._head = {"invocation": ctx.invocation_id, "session": ctx.session_id,
                      "skill": self._skill}
        self._append = mediator._audit.append
        self._digest = mediator._digest
        cap = mediator.settings.max_host_calls
        limit = ctx.manifest.limits.max_host_calls
        self._max_calls = limit if cap is None else min(limit, cap)
        #: normalised calls and their ceiling verdicts, by exact (function, argument bytes)
        self._memo: dict[tuple[str, bytes], tuple[NormalCall, str | None]] = {}

    # -- EffectScope ------------------------------------------------------------------
    @property
    def counters(self) -> CallCounters:
        return self.ctx.counters

    @property
    def deadline(self) -> float:
        return self.ctx.deadline

    def __call__(self, function: str, args: bytes, /) -> bytes:
        """Mediate one guest call.

        Raises:
            ABIError: unknown function, oversized or malformed JSON arguments.
            HostCallLimitError: more host calls than the invocation's limit.
            PolicyDeniedError: refused (ceiling, policy, invalid target).
            AuditError: the decision could not be recorded (nothing was done).
        """
        fn = host_function(function)
        if fn is None:
            raise self._refused(function, args, INVALID_ARGS, "unknown host function")
        counters = self.ctx.counters
        calls = counters.host_calls + 1
        counters.host_calls = calls = calls if calls < COUNTER_MAX else COUNTER_MAX
        if calls > self._max_calls:
            raise self._refused(function, args, HOST_CALL_LIMIT,
                                f"max_host_calls ({self._max_calls}) exceeded")
        memo_key = (function, args) if type(args) is bytes and len(args) <= _MEMO_ARGS else None
        hit = self._memo.get(memo_key) if memo_key is not None else None
        if hit is None:
            hit = self._parse_and_normalise(fn, args)
            if memo_key is not None:
                _memo_put(self._memo, memo_key, hit)
        call, ceiling = hit
        if ceiling is not None:
            decision, why = _CEILING_DECISION, ceiling
        else:
            decision = self.authorize(fn, call)
            if fn.resolves and decision.allowed and call.unresolved:
                # the URL decision allowed it: record that, and only then resolve
                self._record("host_resolve", fn, call, args, decision, "", durable=True)
                call = self._m._http.resolved(call, self)
                decision = self.authorize(fn, call)
            why = "" if decision.allowed else "denied by policy"
        ref = self._record("host_decision", fn, call, args, decision, why,
                           durable=fn.effectful)
        if not decision.allowed:
            resource = self.scrub_text(audit_target(call.resource))
            raise PolicyDeniedError(
                f"host call vak.{function} on {_bounded(resource)} denied: {why} "
                f"(policies: {', '.join(decision.policy_ids)}; audit seq {ref.seq})",
                host_function=function,
                resource=resource,
                policy_ids=list(decision.policy_ids),
                audit_seq=ref.seq,
            )
        return self._perform(fn, call, ref)

    def refuse(self, function: str, policy_id: str, reason: str, /) -> BaseException:
        """Record the deny of a call refused before mediation (engine hand-off), and
        return the error the engine raises as the trap.

        ``vak.invalid-args`` (a guest span the engine cannot read) gives
        :class:`~vak.errors.ABIError`, ``vak.host-call-limit`` gives
        :class:`~vak.errors.HostCallLimitError`, any other id a
        :class:`~vak.errors.PolicyDeniedError`. Exactly one ``host_decision``
        deny is recorded (durably) before this returns.

        Raises:
            AuditError: the refusal could not be recorded.
        """
        return self._refused(function, None, policy_id, reason)

    # -- the steps --------------------------------------------------------------------
    def normalised(self, fn: HostFunction, args: Mapping[str, Any]) -> tuple[NormalCall,
                                                                                 str | None]:
        """Steps 3-4 on parsed arguments: the normal call and the ceiling's verdict.

        Raises:
            ABIError: a malformed argument.
            NormalizeError: a refused target (or no kv store is configured).
        """
        call = fn.normalise(args, self.ctx.manifest.name, self._m.settings)
        if self._m._families[fn.name] is None:
            raise NormalizeError(f"no {fn.family} store is configured")
        return call, ceiling_violation(fn.capability, call, self.ctx.manifest.capabilities)

    def session(self) -> Mapping[str, Any]:
        """``context.session`` of this call's Cedar request: the one place it is built.

        ``labels`` (the session's data-flow labels) is always present; the ids and
        counters only when some policy mentions them (so they do not defeat the
        decision cache).
        """
        used = self._m.engine.session_fields_used
        labels = self.ctx.labels
        if not used and not labels:
            return NO_SESSION
        ctx = self.ctx
        values: dict[str, Any] = {
            "session_id": ctx.session_id,
            "invocation_id": ctx.invocation_id,
            **ctx.counters.as_dict(),
        }
        out = {k: values[k] for k in used}
        out["labels"] = sorted(labels)
        return out

    def authorize(self, fn: HostFunction, call: NormalCall) -> Decision:
        """Step 5: Cedar's decision on ``call`` (fail closed; never raises)."""
        return self._m.engine.decide_call(self.principal, fn.name, call.resource, call.context,
                                          self.session())

    def _parse_and_normalise(self, fn: HostFunction, args: bytes) -> tuple[NormalCall,
                                                                          str | None]:
        """Steps 2-4; refusals are recorded, then raised."""
        try:
            return self.normalised(fn, parse_args(args, fn.name))
        except ABIError as exc:
            raise self._refused(fn.name, args, INVALID_ARGS, str(exc)) from None
        except NormalizeError as exc:
            raise self._refused(fn.name, args, INVALID_TARGET, str(exc)) from None

    def _perform(self, fn: HostFunction, call: NormalCall, ref: AuditRef) -> bytes:
        family = self._m._families[fn.name]
        assert family is not None  # normalised() refused the call otherwise
        start = time.perf_counter_ns()
        try:
            reply, status, code = orjson.dumps(family.perform(fn.name, call, self)), "ok", ""
        except HostEffectError as exc:
            reply = orjson.dumps({"error": exc.code, "message": exc.message})
            status, code = "error", exc.code
        except Exception as exc:  # an effect bug must not crash the kernel or leak details
            _log.error("host effect %s failed: %s", fn.name, type(exc).__name__)
            reply = orjson.dumps({"error": "host_failure", "message": "host function failed"})
            status, code = "error", "host_failure"
        outcome: dict[str, Any] = {
            "status": status,
            # keyed (the log's HMAC), so a small result cannot be brute-forced from the log
            "result_digest": self._digest(reply),
            "duration_us": (time.perf_counter_ns() - start) // 1000,
        }
        if code:
            outcome["error"] = code
        resource = audit_target(call.resource)
        self._append(
            "host_result",
            {
                "invocation": self.ctx.invocation_id,
                "host_function": fn.name,
                "resource": self.scrub_text(resource) if self._revealed else resource,
                "decision_seq": ref.seq,
                "outcome": outcome,
            },
            durable=False,
        )
        return reply

    # -- recording --------------------------------------------------------------------
    def _record(self, kind: str, fn: HostFunction, call: NormalCall, args: bytes,
                decision: Decision, why: str, *, durable: bool) -> AuditRef:
        """Append the ``host_decision`` (or ``host_resolve``) entry of ``call``."""
        fields = self._fields(fn.name, audit_target(call.resource), args)
        policy_set = decision.policy_set or self._m.engine.digest
        if why:
            fields["decision"] = self._decision_field(False, list(decision.policy_ids), why,
                                                      policy_set)
        else:  # the common case, inlined
            fields["decision"] = {"effect": "allow", "policy_ids": list(decision.policy_ids),
                                  "policy_set": policy_set}
        summary = call.summary
        if summary:
            fields["summary"] = (
                {k: self.scrub_text(v) if isinstance(v, str) else v for k, v in summary.items()}
                if self._revealed
                else dict(summary)
            )
        if decision.errors:
            fields["errors"] = [self.scrub_text(e) for e in decision.errors]
        return self._append(kind, fields, durable=durable)

    def _fields(self, function: str, resource: str, args: bytes | None) -> dict[str, Any]:
        fields = self._head.copy()
        fields["host_function"] = function
        # a guest may echo a secret into a path, URL or key
        fields["resource"] = self.scrub_text(resource) if self._revealed else resource
        if args is not None:
            fields["args_hmac"] = self._digest(args)
        if self.ctx.labels:
            fields["labels"] = sorted(self.ctx.labels)
        return fields

    def _decision_field(
        self, allowed: bool, policy_ids: list[str], reason: str, policy_set: str
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "effect": "allow" if allowed else "deny",
            "policy_ids": policy_ids,
            "policy_set": policy_set,
        }
        if reason:
            out["reason"] = _bounded(self.scrub_text(reason))
        return out

    def _refused(self, function: str, args: bytes | None, policy_id: str,
                 reason: str) -> BaseException:
        """Record one ``host_decision`` deny by a kernel policy id; the error to raise."""
        name = _bounded(function, 64)
        fields = self._fields(name, "", args)
        fields["decision"] = self._decision_field(False, [policy_id], reason,
                                                  self._m.engine.digest)
        ref = self._append("host_decision", fields, durable=True)
        message = (f"host call vak.{name} refused ({policy_id}): "
                   f"{_bounded(self.scrub_text(reason))} (audit seq {ref.seq})")
        details: dict[str, Any] = {"host_function": name, "policy_ids": [policy_id],
                                   "audit_seq": ref.seq}
        if policy_id == INVALID_ARGS:
            return ABIError(message, **details)
        if policy_id == HOST_CALL_LIMIT:
            return HostCallLimitError(message, limit=self._max_calls, **details)
        return PolicyDeniedError(message, resource="", **details)

    # -- secrets scrubbing ------------------------------------------------------------
    def reveal(self, value: str, /) -> None:
        """Remember a secret value handed to the guest (it is scrubbed from then on)."""
        if len(value) >= MIN_SCRUB_LEN:
            self._revealed.add(value)

    def scrub_text(self, text: str, /) -> str:
        """``text`` with every secret value revealed in this invocation redacted."""
        for value in self._revealed:
            text = text.replace(value, "[REDACTED]")
        return text

    def scrub(self, output: bytes) -> bytes:
        """Skill output (JSON bytes) with revealed secrets redacted, raw or JSON-escaped."""
        for value in self._revealed:
            for form in {value.encode("utf-8", "surrogatepass"), orjson.dumps(value)[1:-1]}:
                output = output.replace(form, b"[REDACTED]")
        return output

