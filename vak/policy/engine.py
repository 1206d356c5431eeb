"""The authorize call: Cedar over pre-parsed handles, behind a decision cache.

Invariants:

* fail closed: :attr:`Decision.allowed` is True only when Cedar decided Allow
  *and* reported no evaluation errors (Cedar skips an erroring ``forbid``, so a
  permit could otherwise win);
* logged policy ids are the policies' ``@id`` annotations, never Cedar's
  positional ``policyN`` names; a Deny with no determining policy reports
  ``vak.default-deny``;
* the cache key is everything Cedar sees: the principal's fingerprint, the
  action, the resource's exact key (:attr:`Entity.key`: type, id, attributes,
  parents) and the type-exact canonical bytes of the context; the cache belongs
  to one policy set (:class:`_State`), so :meth:`PolicyEngine.reload` starts
  with an empty one and a decision computed under the old set is never stored
  in the new set's cache;
* each request is evaluated against the slice of the policy set that can apply
  to its action and skill (:mod:`vak.policy._partition`), which gives the same
  decision, determining policies and errors as the whole set (tested with
  Hypothesis against ``partition=False``);
* every request is validated against the schema: Cedar validates each new
  request *type shape* (:func:`_shape`: principal/resource types, action,
  context keys and exact value types -- all request validation looks at), and
  later requests of an already validated shape skip the repeat; entity handles
  (principal + resource, schema-validated) are parsed once and reused.

Example::

    >>> engine = PolicyEngine.load(PolicySettings((SHIPPED_POLICY_DIR,)))  # doctest: +SKIP
    >>> engine.decide(request).allowed                        # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cedarpy
import orjson

from vak.policy._cedar import authorize, fast_path
from vak.policy._partition import Scope, leaf_actions, scope_of
from vak.policy.entities import CedarRequest, Entity, Principal
from vak.policy.loader import (
    LoadedPolicies,
    load_policies,
    name_policies,
    policy_ids_for,
    policy_set_record,
)
from vak.policy.settings import PolicySettings

__all__ = ["DEFAULT_DENY", "EVAL_ERROR", "NO_SESSION", "Decision", "PolicyEngine", "interpret"]

DEFAULT_DENY = "vak.default-deny"
EVAL_ERROR = "vak.evaluation-error"
_SESSION_FIELDS = (
    "session_id",
    "invocation_id",
    "labels",
    "host_calls",
    "bytes_read",
    "bytes_written",
    "http_requests",
)
#: entity handles kept per engine, independent of the decision-cache size
_ENTITY_CACHE = 4096
_KEY_OPTS = orjson.OPT_SORT_KEYS
#: ``context.session`` when no policy mentions a session field and no label is set;
#: shared by every such call (its cache key is computed once). Never mutate it.
NO_SESSION: dict[str, Any] = {"labels": []}
_NO_SESSION_KEY = orjson.dumps(NO_SESSION, option=_KEY_OPTS)
_POSITION = re.compile(r"\bpolicy(\d+)\b")


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one authorization."""

    allowed: bool
    policy_ids: tuple[str, ...]  # determining @ids (or vak.* kernel ids)
    errors: tuple[str, ...] = ()
    cached: bool = False
    #: digest of the policy set that decided ('' for kernel-made decisions)
    policy_set: str = ""


@dataclass(frozen=True, slots=True)
class _Slice:
    policies: cedarpy.PolicySet
    ids: tuple[str, ...]  # @ids indexed like Cedar's positional policyN in this slice


class _State:
    """One policy set with everything derived from it (swapped whole on reload)."""

    __slots__ = ("approval_ids", "cache", "entities", "ids", "loaded", "policies", "principals",
                 "schema", "scopes", "session_fields_used", "slices", "valid_shapes")

    def __init__(self, loaded: LoadedPolicies, partition: bool) -> None:
        self.loaded = loaded
        self.schema = cedarpy.Schema.from_str(loaded.schema_text)
        self.policies = cedarpy.PolicySet.from_str(loaded.policy_text)
        self.ids = loaded.ids
        leaves = leaf_actions(loaded.schema_text)
        self.scopes: tuple[Scope, ...] | None = (
            tuple(scope_of(s.text, leaves) for s in loaded.statements) if partition else None
        )
        self.cache: dict[Any, Decision] = {}
        self.entities: dict[tuple[str, bytes], cedarpy.Entities] = {}
        self.principals: dict[str, cedarpy.Entities] = {}
        self.slices: dict[tuple[str, str], _Slice] = {}
        #: request type shapes Cedar has validated against ``schema`` (see _shape)
        self.valid_shapes: dict[Any, bool] = {}
        #: session fields some policy mentions; only these go into the context, so
        #: an unmentioned per-call value cannot defeat the decision cache
        self.session_fields_used = _mentioned(loaded.policy_text)
        self.approval_ids = loaded.approval_ids

    def slice_for(self, action: str, skill: str) -> _Slice:
        key = (action, skill)
        sl = self.slices.get(key)
        if sl is None:
            if self.scopes is None:
                sl = _Slice(self.policies, self.ids)
            else:
                chosen = [
                    st
                    for st, scope in zip(self.loaded.statements, self.scopes, strict=True)
                    if scope.may_apply(action, skill)
                ]
                text = "\n".join(st.text for st in chosen)
                sl = _Slice(cedarpy.PolicySet.from_str(text), tuple(st.policy_id for st in chosen))
            _bounded_put(self.slices, key, sl, _ENTITY_CACHE)
        return sl


class PolicyEngine:
    """One validated policy set with its schema handle and decision cache."""

    def __init__(
        self, loaded: LoadedPolicies, *, cache_size: int = 4096, partition: bool = True
    ) -> None:
        self._partition = partition
        self._state = _State(loaded, partition)
        self._cache_size = max(0, cache_size)
        self._lock = threading.Lock()
        #: the cedarpy call path the start-up self-test chose (logged on a fallback)
        self.cedar_fast_path = fast_path()

    @classmethod
    def load(
        cls, settings: PolicySettings | Iterable[Path], *, cache_size: int | None = None,
        partition: bool = True
    ) -> PolicyEngine:
        """Load, validate and compile the policies of ``settings.policy_dirs`` (shipped
        dir first), with its decision-cache size.

        A plain iterable of directories is accepted too (with ``cache_size``,
        default 4096), for tools and tests.

        Raises:
            PolicyError: any schema/policy problem (file, line, Cedar message).
        """
        if not isinstance(settings, PolicySettings):
            settings = PolicySettings(policy_dirs=tuple(settings))
        size = settings.decision_cache_size if cache_size is None else cache_size
        return cls(load_policies(settings.policy_dirs), cache_size=size, partition=partition)

    @property
    def digest(self) -> str:
        """sha256 over the schema and policy files: logged with every decision."""
        return self._state.loaded.digest

    def policy_set_record(self) -> dict[str, object]:
        """The ``policy_set`` audit entry's fields for the set in force (for replay)."""
        return policy_set_record(self._state.loaded)

    @property
    def loaded(self) -> LoadedPolicies:
        return self._state.loaded

    @property
    def approval_policies(self) -> frozenset[str]:
        """@ids of the permits marked ``@approval("required")`` in the current set."""
        return self._state.approval_ids

    @property
    def session_fields_used(self) -> frozenset[str]:
        """Session fields some policy mentions (only these are sent to Cedar)."""
        return self._state.session_fields_used

    @property
    def _cache(self) -> dict[Any, Decision]:
        return self._state.cache

    def reload(self, loaded: LoadedPolicies) -> None:
        """Swap in a new policy set; the cache is invalidated."""
        self.stage(loaded)()

    def stage(self, loaded: LoadedPolicies) -> Callable[[], None]:
        """Compile everything ``loaded`` needs now; the call returned installs it.

        Installing is one reference swap (with an empty decision cache), so a
        caller that must order it with other steps (``Kernel.reload``) keeps
        that ordered section short.
        """
        state = _State(loaded, self._partition)

        def install() -> None:
            with self._lock:
                self._state = state

        return install

    def decide(self, request: CedarRequest) -> Decision:
        """Authorize ``request`` (cache first). Never raises for a well-formed request.

        A request Cedar rejects (schema violation) is a Deny with the error, not
        an exception: the mediation must always be able to log a decision.
        """
        st = self._state
        key = (request.principal.fingerprint, request.action, request.resource.key,
               orjson.dumps(request.context, option=_KEY_OPTS), None)
        hit = st.cache.get(key)
        if hit is not None:
            return hit
        return self._miss(st, key, request)

    def decide_call(
        self,
        principal: Principal,
        action: str,
        resource: Entity,
        context: Mapping[str, Any],
        session: Mapping[str, Any],
    ) -> Decision:
        """Authorize one host call; the same as ``decide`` of the request whose
        context is ``{"session": session, **context}``, but the cache is looked up
        before that request is built (the mediation's hot path).

        Raises nothing for well-formed input (see :meth:`decide`).
        """
        st = self._state
        session_key = (_NO_SESSION_KEY if session is NO_SESSION
                       else orjson.dumps(session, option=_KEY_OPTS))
        key = (principal.fingerprint, action, resource.key,
               orjson.dumps(context, option=_KEY_OPTS), session_key)
        hit = st.cache.get(key)
        if hit is not None:
            return hit
        return self._miss(
            st, key, CedarRequest(principal, action, resource, {"session": session, **context})
        )

    def _miss(self, st: _State, key: Any, request: CedarRequest) -> Decision:
        decision = self._evaluate(st, request)
        _bounded_put(
            st.cache,
            key,
            Decision(decision.allowed, decision.policy_ids, decision.errors, True,
                     decision.policy_set),
            self._cache_size,
        )
        return decision

    def _entities(self, st: _State, request: CedarRequest) -> cedarpy.Entities:
        """Principal base handle plus the resource (parsed and validated once each)."""
        principal, resource = request.principal, request.resource
        key = (principal.fingerprint, resource.key)
        handle = st.entities.get(key)
        if handle is None:
            base = st.principals.get(principal.fingerprint)
            if base is None:
                base = cedarpy.Entities.from_json_str(
                    orjson.dumps([principal.entity.to_json()]).decode(), st.schema
                )
                _bounded_put(st.principals, principal.fingerprint, base, _ENTITY_CACHE)
            delta = orjson.dumps([resource.to_json()]).decode()
            handle = base.with_added_json_str(delta, st.schema)
            _bounded_put(st.entities, key, handle, _ENTITY_CACHE)
        return handle

    def _authorize(
        self, st: _State, sl: _Slice, request: CedarRequest, entities: cedarpy.Entities
    ) -> dict[str, Any]:
        """Cedar's raw response dict for one request (through :mod:`vak.policy._cedar`)."""
        cedar_req = request.to_cedar()
        shape = (request.principal.entity.type, request.action, request.resource.type,
                 _shape(request.context))
        # A request whose type shape Cedar already validated against this schema
        # validates again (request validation looks at types only), so it is not
        # re-validated; any other shape is, and is remembered only if it passed.
        schema = None if shape in st.valid_shapes else st.schema
        resp = authorize(cedar_req, sl.policies, entities, schema)
        if schema is not None and resp.get("decision") in ("Allow", "Deny"):
            diag = resp.get("diagnostics") or {}
            if not diag.get("errors"):
                _bounded_put(st.valid_shapes, shape, True, _ENTITY_CACHE)
        return resp

    def _evaluate(self, st: _State, request: CedarRequest) -> Decision:
        d = self._evaluate_in(st, request)
        return Decision(d.allowed, d.policy_ids, d.errors, False, st.loaded.digest)

    def _evaluate_in(self, st: _State, request: CedarRequest) -> Decision:
        try:
            sl = st.slice_for(request.action, request.principal.entity.id)
            entities = self._entities(st, request)
            resp = self._authorize(st, sl, request, entities)
        except (ValueError, TypeError) as exc:
            return Decision(False, (EVAL_ERROR,), (str(exc)[:500],))
        return interpret(resp, sl.ids)


def interpret(resp: Mapping[str, Any], ids: tuple[str, ...]) -> Decision:
    """The :class:`Decision` for Cedar's raw response ``resp`` over policies named ``ids``.

    The one reading of a Cedar answer, shared by the mediation and by decision
    replay (:mod:`vak.review.replay`), so a replayed decision is judged exactly
    as the kernel judged it: Allow only without errors, @ids in load order.
    """
    diag = resp.get("diagnostics") or {}
    raw_errors = sorted((str(e) for e in diag.get("errors") or ()), key=_load_order)
    names = diag.get("reason") or ()
    if len(names) > 1:
        names = sorted(names, key=_load_order)
    reasons = tuple(policy_ids_for(names, ids))
    if raw_errors:
        erroring = policy_ids_for(raw_errors, ids)
        errors = tuple(name_policies(e, ids)[:500] for e in raw_errors)
        return Decision(False, (EVAL_ERROR, *reasons, *erroring), errors)
    if resp.get("decision") == "Allow":
        return Decision(True, reasons)
    return Decision(False, reasons or (DEFAULT_DENY,))


def _bounded_put(cache: dict[Any, Any], key: Any, value: Any, size: int) -> None:
    """Insert with FIFO eviction; safe enough under the GIL for concurrent callers."""
    if size <= 0:
        return
    if len(cache) >= size:
        with contextlib.suppress(KeyError, StopIteration, RuntimeError):
            del cache[next(iter(cache))]
    cache[key] = value


def _shape(value: Any) -> Any:
    """The Cedar type shape of a context value: record keys, exact scalar types, set
    element shapes. Cedar's request validation depends on nothing else."""
    t = type(value)
    if t is dict:
        return tuple(sorted((k, _shape(v)) for k, v in value.items()))
    if t is list or t is tuple:
        return ("set", frozenset(_shape(v) for v in value))
    return t


def _load_order(name: str) -> tuple[int, str]:
    """Sort key putting Cedar's ``policyN`` names (a set, in no fixed order) in load order.

    Slices keep the load order, so the determining ids are listed alike whether
    a request was evaluated against a slice or the whole set.
    """
    m = _POSITION.search(name)
    return (int(m.group(1)) if m else 1 << 30, name)


def _mentioned(text: str) -> frozenset[str]:
    return frozenset(f for f in _SESSION_FIELDS if f in text)
