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

Data flow (:mod:`vak.host.dataflow`): the handler holds its session's
:class:`~vak.host.dataflow.SessionFlow`, shared by every invocation of the
session whatever its route (labels the kernel passes in ``CallContext.labels``
join it); an allowed call's result labels are added before the effect's data
reaches the guest; the labels go to Cedar as ``context.session.labels``
(:meth:`MediatedHandler.session`) and into every decision entry. Every audit
entry a handler appends is scrubbed of the session's secrets (:mod:`vak.scrub`,
the one scrubber), and every guest-derived string in an error message passes
it too.

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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import quote

import orjson

from vak.approvals.gate import ApprovalGate, Outcome
from vak.audit.approval import call_binding
from vak.audit.entry import Sealed, unsealed
from vak.audit.sink import AuditRef, AuditSink
from vak.errors import (
    ABIError,
    ApprovalDeniedError,
    ApprovalError,
    ApprovalPendingError,
    HostCallLimitError,
    PolicyDeniedError,
)
from vak.host.base import Family, HostEffectError, NormalCall
from vak.host.calls import with_addresses
from vak.host.catalog import HOST_FUNCTIONS, HostFunction, host_function
from vak.host.ceiling import ceiling_violation
from vak.host.clock import Clock, ClockFamily
from vak.host.context import COUNTER_MAX, CallContext, CallCounters
from vak.host.dataflow import FlowTable, LabelMap, ScrubberCache, SessionFlow
from vak.host.fs import FsFamily
from vak.host.guestjson import parse_args
from vak.host.http import HttpFamily, Resolver
from vak.host.kv import KvFamily, open_kv
from vak.host.log import LogFamily
from vak.host.normalize import NormalizeError
from vak.host.principal import principal_for
from vak.host.random import RandomFamily
from vak.host.secrets import NoSecrets, SecretProvider, SecretsFamily
from vak.host.settings import HostSettings
from vak.host.swap import SwapGuard
from vak.policy.engine import NO_SESSION, Decision
from vak.policy.entities import CedarRequest, Entity, Principal, request_record
from vak.scrub import EMPTY, Scrubber, excerpt

if TYPE_CHECKING:
    from vak.seams import Observer

__all__ = [
    "APPROVAL_UNAVAILABLE",
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
#: an Allow needing approval when no approval store is configured or a store file is bad
APPROVAL_UNAVAILABLE = "vak.approval-unavailable"
#: longest excerpt of guest-derived text in a reason or error message
_EXCERPT = 300
_CEILING_DECISION = Decision(False, (CAPABILITY_CEILING,))
_MEMO_ARGS = 1024  # larger arguments (fs_write contents) are never kept
_MEMO_SIZE = 64

_log = logging.getLogger("vak.host")
_R = TypeVar("_R")


class Authorizer(Protocol):
    """What the mediation needs of the policy engine."""

    @property
    def digest(self) -> str: ...

    @property
    def session_fields_used(self) -> frozenset[str]: ...

    @property
    def approval_policies(self) -> frozenset[str]: ...

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
    #: allowed, but by a ``@approval("required")`` permit: a person must approve it
    approval_required: bool = False


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
        approvals: ApprovalGate | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.settings = settings
        #: telemetry (vak.seams.Observer): told of every entry a handler appends
        self.observer = observer
        #: asked when an Allow was determined by a ``@approval("required")`` permit
        self.approvals = approvals
        self.engine = authorizer
        self._audit = audit
        self._digest = args_digest
        self._kv_store = open_kv(settings)
        self._http = HttpFamily(resolver, tls_context=tls_context)
        fs = FsFamily(settings.fs_mounts)
        kv = KvFamily(self._kv_store) if self._kv_store is not None else None
        secret = SecretsFamily(secrets or NoSecrets(), lambda: self._scrubbers.invalidate())
        # data flow (vak.host.dataflow): labels per session, scrubbers per secret set
        self._flows = FlowTable(settings.max_tracked_sessions)
        self._label_map = LabelMap(settings.fs_mounts)
        self._scrubbers = ScrubberCache(secret.values_of, secret.revealed)
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
        #: each skill's audit reference, checked and encoded once (vak.audit.entry.Sealed),
        #: when the sink takes such values (the real AuditLog does)
        self._sealed: dict[tuple[Any, ...], Sealed] = {}
        self._seal = getattr(audit, "accepts_sealed", False) is True
        #: orders decisions and policy-set swaps in the log (vak.host.swap)
        self._swap = SwapGuard()

    def swap_policies(self, swap: Callable[[], _R]) -> _R:
        """Run ``swap`` (record the new ``policy_set``, then install it) between decisions.

        No decision is in its decide-and-record step while ``swap`` runs, so every
        ``host_decision`` entry follows the ``policy_set`` entry of the set that
        made it (:mod:`vak.host.swap`).
        """
        return self._swap.exclusive(swap)

    def close(self) -> None:
        """Close the kv database."""
        if self._kv_store is not None:
            self._kv_store.close()

    def handler(self, ctx: CallContext) -> MediatedHandler:
        """The :class:`~vak.sandbox.types.HostHandler` for one invocation."""
        return MediatedHandler(self, ctx, self._principal(ctx))

    def scrubber_for(self, session_id: str) -> Scrubber:
        """The scrubber of ``session_id`` (for output made without a host call): the
        session's secrets and every value handed out (:class:`ScrubberCache`)."""
        flow = self._flows.get(session_id)
        if flow is None:
            return self._scrubbers.for_names(frozenset())
        return flow.scrubber(self._scrubbers)

    def session_labels(self, session_id: str) -> frozenset[str]:
        """The data-flow labels ``session_id`` holds now."""
        flow = self._flows.get(session_id)
        return frozenset() if flow is None else flow.labels

    def end_session(self, session_id: str) -> bool:
        """Forget ``session_id``'s labels; True if it had any state."""
        return self._flows.end(session_id)

    def on_session_evicted(self, hook: Callable[[str], object]) -> None:
        """Call ``hook(session_id)`` when a labelled session's flow is evicted (the
        kernel ends the session's reused instances: their memory may hold a secret)."""
        self._flows.on_evict = hook

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
        if extra_context and "caller" in extra_context:
            caller = extra_context["caller"]
            if not (isinstance(caller, Mapping) and set(caller) == {"id", "kind"}
                    and all(isinstance(v, str) for v in caller.values())):
                raise ABIError('context.caller must be {"id": "...", "kind": "..."}',
                               field="caller")
            ctx = replace(ctx, caller_id=caller["id"], caller_kind=caller["kind"])
            extra_context = {k: v for k, v in extra_context.items() if k != "caller"}
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
                               {"session": h.session(), **h.cedar_context(call)})
        return Explanation(fn.name, decision.allowed, decision.policy_ids, reason, ceiling,
                           cedar, request.to_data(), tuple(stages), pending,
                           h.needs_approval(decision))

    def principal_record(self, ctx: CallContext) -> dict[str, Any]:
        """The skill's Cedar principal as ``skill_loaded`` records it (for replay)."""
        p = self._principal(ctx)
        return {"fingerprint": p.fingerprint, "entity": p.entity.to_json()}

    def _sealed_skill(self, skill: dict[str, Any]) -> Sealed | dict[str, Any]:
        if not self._seal:
            return skill
        try:
            key = tuple(sorted(skill.items()))
            sealed = self._sealed.get(key)
        except TypeError:  # an unhashable value: not worth sealing
            return skill
        if sealed is None:
            if len(self._sealed) >= _MEMO_SIZE * 16:
                self._sealed.clear()  # bounded: skills are few, reloads rare
            sealed = self._sealed[key] = Sealed(skill)
        return sealed

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


@dataclass(frozen=True, slots=True)
class _Opened:
    """An approval request opened and its ``approval_required`` decision recorded."""

    gate: ApprovalGate
    outcome: Outcome
    ref: AuditRef
    shown: dict[str, Any]


class _Memo:
    """What is a pure function of one call's exact argument bytes, for a fixed skill:
    the normal call, the ceiling's verdict, the args HMAC and (while the policy set
    sends Cedar no per-call session fields) the request record replay needs."""

    __slots__ = ("_allow", "args_hmac", "call", "ceiling", "request")

    def __init__(self, call: NormalCall, ceiling: str | None) -> None:
        self.call = call
        self.ceiling = ceiling
        self.args_hmac: str | None = None
        #: the request record; sealed (encoded once) when it is used a second time
        self.request: dict[str, Any] | Sealed | None = None
        self._allow: tuple[Decision, str, dict[str, Any] | Sealed] | None = None

    def allowed(self, decision: Decision, policy_set: str) -> dict[str, Any] | Sealed:
        """The ``decision`` field of an Allow, sealed once the same one recurs."""
        kept = self._allow
        if kept is not None and kept[0] is decision and kept[1] == policy_set:
            value = kept[2]
            if value.__class__ is dict:
                value = Sealed(value)
                self._allow = (decision, policy_set, value)
            return value
        field: dict[str, Any] = {"effect": "allow", "policy_ids": list(decision.policy_ids),
                                 "policy_set": policy_set}
        self._allow = (decision, policy_set, field)
        return field


def _memo_put(memo: dict[tuple[str, bytes], _Memo], key: tuple[str, bytes],
              value: _Memo) -> None:
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

    __slots__ = ("_append", "_digest", "_flow", "_head", "_m", "_max_calls", "_memo",
                 "_observer", "_sink_append", "_skill", "caller", "ctx", "principal")

    def __init__(self, mediator: Mediator, ctx: CallContext, principal: Principal) -> None:
        self._m = mediator
        self.ctx = ctx
        self.principal = principal
        #: ``context.caller`` of every Cedar request of this invocation (who asked)
        self.caller = {"id": ctx.caller_id, "kind": ctx.caller_kind}
        #: the session's data-flow labels (shared by all its invocations, any route)
        self._flow: SessionFlow = mediator._flows.open(ctx.session_id)
        self._skill = ctx.skill.to_audit()
        #: the audit fields every entry of this invocation shares (never mutated)
        self._head: dict[str, Any] = {"invocation": ctx.invocation_id,
                                      "session": ctx.session_id,
                                      "skill": mediator._sealed_skill(self._skill)}
        self._sink_append = mediator._audit.append
        self._append = self._append_scrubbed
        self._observer = mediator.observer
        self._digest = mediator._digest
        cap = mediator.settings.max_host_calls
        limit = ctx.manifest.limits.max_host_calls
        self._max_calls = limit if cap is None else min(limit, cap)
        #: normalised calls and their ceiling verdicts, by exact (function, argument bytes)
        self._memo: dict[tuple[str, bytes], _Memo] = {}

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
        memo = self._memo.get(memo_key) if memo_key is not None else None
        if memo is None:
            memo = _Memo(*self._parse_and_normalise(fn, args))
            if memo_key is not None:
                _memo_put(self._memo, memo_key, memo)
        call, ceiling = memo.call, memo.ceiling
        approval: AuditRef | None = None
        if ceiling is not None:
            decision, why = _CEILING_DECISION, ceiling
            ref = self._record("host_decision", fn, call, args, decision, why,
                               durable=fn.effectful, memo=memo)
        else:
            if fn.resolves and call.unresolved:
                with self._m._swap.deciding():  # decided and recorded under one set
                    decision = self.authorize(fn, call)
                    if decision.allowed:
                        # the URL decision allowed it: record that, and only then resolve
                        self._record("host_resolve", fn, call, args, decision, "",
                                     durable=True)
                if decision.allowed:
                    call = self._m._http.resolved(call, self)
            opened: _Opened | None = None
            with self._m._swap.deciding():
                if not (fn.resolves and call.unresolved):
                    decision = self.authorize(fn, call)
                why = "" if decision.allowed else "denied by policy"
                if self.needs_approval(decision):  # recorded now, the person asked after
                    opened = self._approval_open(fn, call, args, decision)
                    ref = opened.ref
                else:
                    ref = self._record("host_decision", fn, call, args, decision, why,
                                       durable=fn.effectful,
                                       memo=memo if call is memo.call else None)
            if opened is not None:
                approval = self._approval_answer(fn, decision, opened)
        if decision.allowed:
            # marked before the data arrives: the next decision already sees the label
            adds = self._m._label_map.labels(function, call.resource)
            if adds:
                self._flow.add(adds)
        else:
            resource = self.scrub_text(audit_target(call.resource))
            raise PolicyDeniedError(
                f"host call vak.{function} on {excerpt(resource, limit=_EXCERPT)} denied: "
                f"{excerpt(why, self.scrubber, _EXCERPT)} "
                f"(policies: {', '.join(decision.policy_ids)}; audit seq {ref.seq})",
                host_function=function,
                resource=resource,
                policy_ids=list(decision.policy_ids),
                audit_seq=ref.seq,
            )
        return self._perform(fn, call, ref, approval)

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

        ``labels`` is always present (the schema requires it); it holds the
        session's data-flow labels when some policy mentions ``labels`` and is
        empty otherwise -- no policy can then tell the difference, and a label
        that accumulates must not defeat the decision cache. The ids and
        counters are sent only when some policy mentions them, for the same reason.
        """
        used = self._m.engine.session_fields_used
        if not used:
            return NO_SESSION
        ctx = self.ctx
        values: dict[str, Any] = {
            "session_id": ctx.session_id,
            "invocation_id": ctx.invocation_id,
            "labels": sorted(self.labels),
            **ctx.counters.as_dict(),
        }
        out = {k: values[k] for k in used}
        out.setdefault("labels", [])
        return out

    def cedar_context(self, call: NormalCall) -> dict[str, Any]:
        """The Cedar context of ``call`` but ``session``: the action's fields and
        ``caller``, the one place the caller enters a request (set last: no
        normaliser output can stand in for it)."""
        return {**call.context, "caller": self.caller}

    def authorize(self, fn: HostFunction, call: NormalCall) -> Decision:
        """Step 5: Cedar's decision on ``call`` (fail closed; never raises)."""
        return self._m.engine.decide_call(self.principal, fn.name, call.resource,
                                          self.cedar_context(call), self.session())

    def _parse_and_normalise(self, fn: HostFunction, args: bytes) -> tuple[NormalCall,
                                                                          str | None]:
        """Steps 2-4; refusals are recorded, then raised."""
        try:
            return self.normalised(fn, parse_args(args, fn.name))
        except ABIError as exc:
            raise self._refused(fn.name, args, INVALID_ARGS, str(exc)) from None
        except NormalizeError as exc:
            raise self._refused(fn.name, args, INVALID_TARGET, str(exc)) from None

    def _perform(self, fn: HostFunction, call: NormalCall, ref: AuditRef,
                 approval: AuditRef | None = None) -> bytes:
        family = self._m._families[fn.name]
        assert family is not None  # normalised() refused the call otherwise
        start = time.perf_counter_ns()
        try:
            reply, status, code = orjson.dumps(family.perform(fn.name, call, self)), "ok", ""
        except HostEffectError as exc:
            reply = orjson.dumps({"error": exc.code, "message": exc.message})
            status, code = "error", exc.code
        except Exception as exc:  # noqa: BLE001 - an effect bug must not crash the kernel or leak
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
        result: dict[str, Any] = {
            "invocation": self.ctx.invocation_id,
            "host_function": fn.name,
            "resource": resource,  # scrubbed by _append
            "decision_seq": ref.seq,
            "outcome": outcome,
        }
        if approval is not None:
            result["approval_seq"] = approval.seq  # the signed approval this effect used
        self._append("host_result", result, durable=False)
        return reply

    # -- approvals (vak.approvals; docs/POLICY.md, 'Approvals') -------------------------
    def needs_approval(self, decision: Decision) -> bool:
        """An Allow that some ``@approval("required")`` permit among its determining
        policies decided: the one test of whether a person must approve."""
        return decision.allowed and not self._m.engine.approval_policies.isdisjoint(
            decision.policy_ids)

    def _approval_open(self, fn: HostFunction, call: NormalCall, args: bytes,
                       decision: Decision) -> _Opened:
        """The approval step of an Allow a ``@approval("required")`` permit determined,
        first half (inside the decision's step): open the request and record the
        ``host_decision`` with effect ``approval_required`` and the request (id,
        binding) durably. :meth:`_approval_answer` then gets a signed answer
        (stored, or from the approver callable) and records it as an
        ``approval`` entry durably, before any effect.

        Raises:
            PolicyDeniedError: no approval store, or a store file is invalid.
        """
        gate = self._m.approvals
        if gate is None:
            raise self._refused(fn.name, args, APPROVAL_UNAVAILABLE,
                                "this call needs approval but no approval store is configured")
        resource = audit_target(call.resource)
        fields = self._fields(fn.name, resource, args)
        binding = call_binding(self._skill["id"], self._skill["manifest_digest"], fn.name,
                               fields["args_hmac"], self.ctx.session_id)
        shown = self.scrubber.fields({"resource": resource, "summary": dict(call.summary)})
        try:
            outcome = gate.open({"binding": binding, "skill": self._skill["id"],
                                 "manifest_digest": self._skill["manifest_digest"],
                                 "function": fn.name, "resource": shown["resource"],
                                 "summary": shown["summary"], "session": self.ctx.session_id},
                                self.ctx.invocation_id)
        except ApprovalError as exc:
            raise self._refused(fn.name, args, APPROVAL_UNAVAILABLE, exc.message) from None
        request = outcome.request
        fields["decision"] = {"effect": "approval_required",
                              "policy_ids": list(decision.policy_ids),
                              "policy_set": decision.policy_set or self._m.engine.digest}
        fields["approval"] = {"id": request.id, "binding": binding}
        if call.summary:
            fields["summary"] = dict(call.summary)
        ref = self._append("host_decision", fields, durable=True)
        return _Opened(gate, outcome, ref, shown)

    def _approval_answer(self, fn: HostFunction, decision: Decision, opened: _Opened
                         ) -> AuditRef:
        """Get the signed answer to an opened request and record it; its ``approval`` ref.

        Raises:
            ApprovalPendingError: no answer yet (out of band: `vak approvals`).
            ApprovalDeniedError: refused by an approver, or no answer in time.
        """
        gate, outcome, ref, shown = opened.gate, opened.outcome, opened.ref, opened.shown
        request = outcome.request
        if outcome.answer is None:
            outcome = gate.ask(request, self.ctx.deadline, self.ctx.invocation_id)
        answer = outcome.answer
        details: dict[str, Any] = {"host_function": fn.name, "approval_id": request.id,
                                   "resource": shown["resource"]}
        target = excerpt(shown["resource"], limit=_EXCERPT)
        if answer is None:
            if gate.approver is None:
                raise ApprovalPendingError(
                    f"host call vak.{fn.name} on {target} awaits a person's approval "
                    f"{request.id} (audit seq {ref.seq}); the call was not made. Retry the "
                    "same call, with the same arguments, once it is approved",
                    audit_seq=ref.seq, **details)
            raise ApprovalDeniedError(
                f"host call vak.{fn.name} on {target} was not approved: "
                f"{excerpt(outcome.why, limit=_EXCERPT)} (approval {request.id}, audit seq "
                f"{ref.seq})", policy_ids=list(decision.policy_ids), audit_seq=ref.seq,
                **details)
        # not through _append: scrubbing must never touch the signed statement
        aref = self._sink_append("approval", {
            "invocation": self.ctx.invocation_id, "session": self.scrub_text(self.ctx.session_id),
            "approval": request.id, "decision_seq": ref.seq,
            "verdict": answer.statement["verdict"], "key_id": answer.key_id,
            "statement": dict(answer.statement), "signature": answer.signature,
        }, durable=True)
        if not answer.approved:
            raise ApprovalDeniedError(
                f"host call vak.{fn.name} on {target} was refused by approver "
                f"{answer.key_id} (approval {request.id}, audit seq {aref.seq})",
                policy_ids=list(decision.policy_ids), audit_seq=aref.seq, **details)
        return aref

    # -- recording --------------------------------------------------------------------
    def _record(self, kind: str, fn: HostFunction, call: NormalCall, args: bytes,
                decision: Decision, why: str, *, durable: bool,
                memo: _Memo | None = None) -> AuditRef:
        """Append the ``host_decision`` (or ``host_resolve``) entry of ``call``.

        ``memo``: the memo entry ``call`` came from; what is a pure function of the
        argument bytes (args HMAC, request record) is computed once there.
        """
        if memo is None:
            fields = self._fields(fn.name, audit_target(call.resource), args)
        else:
            if memo.args_hmac is None:
                memo.args_hmac = self._digest(args)
            fields = self._fields(fn.name, audit_target(call.resource), None)
            fields["args_hmac"] = memo.args_hmac
        policy_set = decision.policy_set or self._m.engine.digest
        if why:
            fields["decision"] = self._decision_field(False, list(decision.policy_ids), why,
                                                      policy_set)
        elif memo is not None and self._m._seal:
            fields["decision"] = memo.allowed(decision, policy_set)
        else:  # the common case, inlined
            fields["decision"] = {"effect": "allow", "policy_ids": list(decision.policy_ids),
                                  "policy_set": policy_set}
        summary = call.summary
        if summary:
            fields["summary"] = dict(summary)  # scrubbed with every field by _append
        if decision.errors:
            fields["errors"] = list(decision.errors)
        if decision is not _CEILING_DECISION:  # Cedar decided: record what it saw, for replay
            session = self.session()
            # a memoised request holds only while Cedar sees no per-call session fields
            # (a policy reload may start sending some: then it is built afresh)
            keep = memo if memo is not None and session is NO_SESSION else None
            request = None if keep is None else keep.request
            if request is None:
                request = request_record(self.principal, fn.name, call.resource,
                                         {"session": dict(session), **self.cedar_context(call)})
                if keep is not None:
                    keep.request = request  # never mutated: entries only read it
            elif keep is not None and request.__class__ is dict and self._m._seal:
                request = keep.request = Sealed(request)
            fields["request"] = request
        return self._append(kind, fields, durable=durable)

    def _fields(self, function: str, resource: str, args: bytes | None) -> dict[str, Any]:
        fields = self._head.copy()
        fields["host_function"] = function
        # a guest may echo a secret into a path, URL or key: _append scrubs every field
        fields["resource"] = resource
        if args is not None:
            fields["args_hmac"] = self._digest(args)
        labels = self.labels
        if labels:
            fields["labels"] = sorted(labels)
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
            out["reason"] = excerpt(reason, self.scrubber, _EXCERPT)
        return out

    def _refused(self, function: str, args: bytes | None, policy_id: str,
                 reason: str) -> BaseException:
        """Record one ``host_decision`` deny by a kernel policy id; the error to raise."""
        name = excerpt(function, limit=64)
        fields = self._fields(name, "", args)
        fields["decision"] = self._decision_field(False, [policy_id], reason,
                                                  self._m.engine.digest)
        ref = self._append("host_decision", fields, durable=True)
        message = (f"host call vak.{name} refused ({policy_id}): "
                   f"{excerpt(reason, self.scrubber, _EXCERPT)} (audit seq {ref.seq})")
        details: dict[str, Any] = {"host_function": name, "policy_ids": [policy_id],
                                   "audit_seq": ref.seq}
        if policy_id == INVALID_ARGS:
            return ABIError(message, **details)
        if policy_id == HOST_CALL_LIMIT:
            return HostCallLimitError(message, limit=self._max_calls, **details)
        return PolicyDeniedError(message, resource="", **details)

    # -- data flow and secrets scrubbing (vak.host.dataflow, vak.scrub) ------------------
    def reveal(self, value: str, /) -> None:
        """``value`` (a secret) is now known to the guest: the session scrubs it from now on.

        The secrets family marks the session ``secret:<name>`` first, which is
        what makes later invocations of the session (and kv readers) scrub it;
        this keeps the value itself with the session, for a value handed out
        under no name.
        """
        self._flow.reveal(value)

    @property
    def labels(self) -> frozenset[str]:
        """The session's data-flow labels now (with any the kernel put in the context)."""
        extra = self.ctx.labels
        if extra:
            self._flow.add(extra)
        return self._flow.labels

    def mark(self, labels: Iterable[str], /) -> None:
        """Add ``labels`` to the session (a family does it before returning the data)."""
        self._flow.add(labels)

    @property
    def scrubber(self) -> Scrubber:
        """The scrubber of the secrets the session holds (:data:`vak.scrub.EMPTY`: none)."""
        return self._flow.scrubber(self._m._scrubbers)

    def _append_scrubbed(self, kind: str, fields: dict[str, Any], *, durable: bool) -> AuditRef:
        """Every audit entry of this handler, with the session's secrets scrubbed out."""
        scrubber = self._flow.scrubber(self._m._scrubbers)
        observer = self._observer
        # plain values for whoever walks them (scrubber, observer), unpacked at most once
        plain = fields if scrubber is EMPTY and observer is None else unsealed(fields)
        ref = self._sink_append(
            kind, fields if scrubber is EMPTY else scrubber.fields(plain), durable=durable)
        if observer is not None:
            observer.host_entry(self.ctx.invocation_id, kind, plain, ref.seq)
        return ref

    def scrub_text(self, text: str, /) -> str:
        """``text`` with every value of a secret the session holds redacted."""
        return self.scrubber.text(text)

    def scrub(self, output: bytes) -> bytes:
        """Skill output (JSON bytes), checked after decoding: every string and key."""
        return self.scrubber.output(output)
