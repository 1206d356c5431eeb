"""The authorize call: Cedar over pre-parsed handles, behind a decision cache.

Invariants:

* fail closed: :attr:`Decision.allowed` is True only when Cedar decided Allow
  *and* reported no evaluation errors (Cedar skips an erroring ``forbid``, so a
  permit could otherwise win);
* logged policy ids are the policies' ``@id`` annotations, never Cedar's
  positional ``policyN`` names; a Deny with no determining policy reports
  ``vak.default-deny``;
* the cache is keyed by the policy-set digest and the exact canonical request
  (:meth:`CedarRequest.cache_key`); a new policy set means a new engine (or
  :meth:`PolicyEngine.reload`), which starts with an empty cache.

Example::

    >>> engine = PolicyEngine.load(config.all_policy_dirs)   # doctest: +SKIP
    >>> engine.decide(request).allowed                        # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cedarpy
import orjson

from vak.config import KernelConfig
from vak.policy.entities import CedarRequest, Principal
from vak.policy.loader import LoadedPolicies, load_policies, policy_ids_for

__all__ = ["DEFAULT_DENY", "EVAL_ERROR", "Decision", "PolicyEngine"]

#: the extension function behind cedarpy.is_authorized (see PolicyEngine._authorize)
_FAST = getattr(getattr(cedarpy, "_internal", None), "is_authorized_batch", None)

DEFAULT_DENY = "vak.default-deny"
EVAL_ERROR = "vak.evaluation-error"
_SESSION_FIELDS = (
    "session_id",
    "invocation_id",
    "host_calls",
    "bytes_read",
    "bytes_written",
    "http_requests",
)


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one authorization."""

    allowed: bool
    policy_ids: tuple[str, ...]  # determining @ids (or vak.* kernel ids)
    errors: tuple[str, ...] = ()
    cached: bool = False


class PolicyEngine:
    """One validated policy set with its schema handle and decision cache."""

    def __init__(self, loaded: LoadedPolicies, *, cache_size: int = 4096) -> None:
        self._loaded = loaded
        self._schema = cedarpy.Schema.from_str(loaded.schema_text)
        self._policies = cedarpy.PolicySet.from_str(loaded.policy_text)
        self._ids = loaded.ids
        self._cache_size = max(0, cache_size)
        self._cache: dict[bytes, Decision] = {}
        self._base_entities: dict[str, cedarpy.Entities] = {}
        self._resource_entities: dict[tuple[str, str], cedarpy.Entities] = {}
        self._lock = threading.Lock()
        text = loaded.policy_text
        #: session fields some policy mentions; only these go into the context, so
        #: an unmentioned per-call value cannot defeat the decision cache
        self.session_fields_used: frozenset[str] = _mentioned(text)

    @classmethod
    def load(cls, dirs: Iterable[Path], *, cache_size: int = 4096) -> PolicyEngine:
        """Load, validate and compile the policies in ``dirs`` (shipped dir first).

        Raises:
            PolicyError: any schema/policy problem (file, line, Cedar message).
        """
        return cls(load_policies(dirs), cache_size=cache_size)

    @classmethod
    def from_config(cls, config: KernelConfig) -> PolicyEngine:
        """The engine for ``config.all_policy_dirs`` with its decision-cache size.

        Raises:
            PolicyError: any schema/policy problem (file, line, Cedar message).
        """
        return cls.load(config.all_policy_dirs, cache_size=config.decision_cache_size)

    @property
    def digest(self) -> str:
        """sha256 over the schema and policy files: logged with every decision."""
        return self._loaded.digest

    @property
    def loaded(self) -> LoadedPolicies:
        return self._loaded

    def reload(self, loaded: LoadedPolicies) -> None:
        """Swap in a new policy set; the cache is invalidated."""
        schema = cedarpy.Schema.from_str(loaded.schema_text)
        policies = cedarpy.PolicySet.from_str(loaded.policy_text)
        with self._lock:
            self._loaded, self._schema, self._policies = loaded, schema, policies
            self._ids = loaded.ids
            self.session_fields_used = _mentioned(loaded.policy_text)
            self._cache = {}
            self._base_entities = {}
            self._resource_entities = {}

    def decide(self, request: CedarRequest) -> Decision:
        """Authorize ``request`` (cache first). Never raises for a well-formed request.

        A request Cedar rejects (schema violation) is a Deny with the error, not
        an exception: the mediation must always be able to log a decision.
        """
        key = request.cache_key()
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        decision = self._evaluate(request)
        _bounded_put(
            self._cache,
            key,
            Decision(decision.allowed, decision.policy_ids, decision.errors, True),
            self._cache_size,
        )
        return decision

    def _entities(self, request: CedarRequest) -> cedarpy.Entities:
        """Principal base handle plus the resource (parsed once per principal+resource)."""
        delta = orjson.dumps([request.resource.to_json()]).decode()
        key = (request.principal.fingerprint, delta)
        handle = self._resource_entities.get(key)
        if handle is None:
            handle = self._principal_entities(request.principal).with_added_json_str(delta)
            _bounded_put(self._resource_entities, key, handle, self._cache_size)
        return handle

    def _principal_entities(self, principal: Principal) -> cedarpy.Entities:
        base = self._base_entities.get(principal.fingerprint)
        if base is None:
            base = cedarpy.Entities.from_json_str(
                orjson.dumps([principal.entity.to_json()]).decode(), self._schema
            )
            self._base_entities[principal.fingerprint] = base
        return base

    def _authorize(self, request: CedarRequest, entities: cedarpy.Entities) -> dict[str, Any]:
        """Cedar's raw response dict for one request.

        The public ``cedarpy.is_authorized`` wrapper spends ~40% of a call in
        Python (json.dumps of the context, json.loads of the answer, result
        objects); the extension function it wraps is called directly here with
        orjson, falling back to the public API if its signature ever changes.
        """
        cedar_req = request.to_cedar()
        if _FAST is not None:
            try:
                req = dict(cedar_req)
                req["context"] = orjson.dumps(cedar_req["context"]).decode()
                raw = _FAST([req], self._policies, entities._inner, self._schema, False)
                resp: dict[str, Any] = orjson.loads(raw[0])
                return resp
            except TypeError:
                pass
        result = cedarpy.is_authorized(cedar_req, self._policies, entities, self._schema)
        return dict(result._authz_resp)

    def _evaluate(self, request: CedarRequest) -> Decision:
        try:
            entities = self._entities(request)
            resp = self._authorize(request, entities)
        except (ValueError, TypeError) as exc:
            return Decision(False, (EVAL_ERROR,), (str(exc)[:500],))
        diag = resp.get("diagnostics") or {}
        errors = tuple(str(e)[:500] for e in diag.get("errors") or ())
        reasons = tuple(policy_ids_for(diag.get("reason") or (), self._ids))
        if errors:
            erroring = policy_ids_for(errors, self._ids)
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


def _mentioned(text: str) -> frozenset[str]:
    return frozenset(f for f in _SESSION_FIELDS if f in text)
