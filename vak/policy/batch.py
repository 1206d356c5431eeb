"""Evaluating many recorded Cedar requests against one policy set, fast and exactly.

Decision replay (:mod:`vak.review.replay`) hands this module the requests a
log recorded; each must be judged exactly as the kernel judged it alone, with
the entities ``[principal, resource]`` and nothing else (a union of several
requests' entities could change an answer: Cedar's ``in`` follows parents
through every entity present, and a policy may name any entity). So:

* the policy set and schema are parsed once per evaluator (one per policy set);
* each distinct principal entity is parsed and schema-validated once, and each
  (principal, resource) pair gets its own entity set, built once from the
  principal's handle (:meth:`BatchEvaluator.decide` takes every request of one
  pair at a time, so the caller groups and deduplicates);
* request validation against the schema runs once per request *type shape*
  (principal type, action, resource type, the context's keys and exact value
  types; :func:`vak.policy.engine._shape`, the same rule as the kernel's): the
  first request of a shape is validated, later ones of a shape that passed are
  not, and a shape that failed is validated every time;
* Cedar is called through :func:`vak.policy._cedar.authorize_batch` (the
  self-tested fast path, or the public API after a logged fallback), and its
  answers read by :func:`vak.policy.engine.interpret`, the kernel's one reading.

Example::

    >>> ev = BatchEvaluator(loaded)                                   # doctest: +SKIP
    >>> ev.decide(key, principal, resource, [("fs_read", context)])  # doctest: +SKIP
    [Decision(allowed=True, policy_ids=('vak.fs.permit-read-in-grant',), ...)]
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import cedarpy
import orjson

from vak.errors import PolicyError
from vak.policy._cedar import authorize_batch
from vak.policy.engine import EVAL_ERROR, Decision, _shape, interpret
from vak.policy.loader import LoadedPolicies

__all__ = ["CHUNK", "BatchEvaluator"]

#: requests per Cedar call (bounds the memory of one call, not its meaning)
CHUNK = 512
ACTION_TYPE = "Vak::Action"


class BatchEvaluator:
    """One policy set's Cedar handles, for evaluating many recorded requests."""

    __slots__ = ("_answers", "_principals", "_valid", "approval_ids", "digest", "ids",
                 "policies", "schema")

    def __init__(self, loaded: LoadedPolicies) -> None:
        """Parse ``loaded``'s policies and schema.

        Raises:
            PolicyError: Cedar cannot parse the policy text or the schema.
        """
        try:
            self.policies = cedarpy.PolicySet.from_str(loaded.policy_text)
            self.schema = cedarpy.Schema.from_str(loaded.schema_text)
        except ValueError as exc:
            raise PolicyError(f"Cedar cannot parse policy set {loaded.digest[:19]}...: "
                              f"{str(exc)[:300]}", field="policy_set") from exc
        self.digest = loaded.digest
        self.ids = loaded.ids
        #: permits marked @approval("required") (an Allow they determine awaits approval)
        self.approval_ids = loaded.approval_ids
        self._principals: dict[Hashable, cedarpy.Entities] = {}
        self._valid: set[Any] = set()
        self._answers: dict[Any, Decision] = {}

    def decide(self, principal_key: Hashable, principal: Mapping[str, Any],
               resource: Mapping[str, Any],
               calls: Sequence[tuple[str, Mapping[str, Any]]]) -> list[Decision]:
        """The decision for each ``(action, context)`` of ``principal`` on ``resource``.

        ``principal`` and ``resource`` are Cedar entity JSON (``uid``, ``attrs``,
        ``parents``); ``principal_key`` names ``principal`` (equal keys, equal
        entities). A request Cedar cannot build (it violates the schema) is a
        Deny with ``vak.evaluation-error``, as the kernel decides it.

        Raises:
            PolicyError: Cedar refused the principal or resource entity (not of the
                schema, malformed, or the two clash).
        """
        entities = self._entities(principal_key, principal, resource)
        p_uid, r_uid = principal["uid"], resource["uid"]
        requests = [{"principal": p_uid, "action": {"type": ACTION_TYPE, "id": action},
                     "resource": r_uid, "context": context} for action, context in calls]
        shapes = [(p_uid["type"], action, r_uid["type"], _shape(context))
                  for action, context in calls]
        out: list[Decision | None] = [None] * len(requests)
        first: dict[Any, int] = {}
        for i, shape in enumerate(shapes):
            if shape not in self._valid and shape not in first:
                first[shape] = i
        if first:  # one request per new shape validates that shape
            self._run(requests, list(first.values()), entities, self.schema, out, shapes)
        rest = [i for i in range(len(requests)) if out[i] is None]
        unchecked = [i for i in rest if shapes[i] in self._valid]
        checked = [i for i in rest if shapes[i] not in self._valid]
        self._run(requests, unchecked, entities, None, out, shapes)
        self._run(requests, checked, entities, self.schema, out, shapes)
        return [d for d in out if d is not None]

    def _entities(self, key: Hashable, principal: Mapping[str, Any],
                  resource: Mapping[str, Any]) -> cedarpy.Entities:
        try:
            base = self._principals.get(key)
            if base is None:
                base = cedarpy.Entities.from_json_str(orjson.dumps([principal]).decode(),
                                                      self.schema)
                self._principals[key] = base
            return base.with_added_json_str(orjson.dumps([resource]).decode(), self.schema)
        except (ValueError, TypeError) as exc:
            raise PolicyError(f"Cedar refused the recorded entities: {str(exc)[:200]}",
                              field="request.resource") from exc

    def _run(self, requests: list[dict[str, Any]], idx: list[int], entities: cedarpy.Entities,
             schema: cedarpy.Schema | None, out: list[Decision | None],
             shapes: list[Any]) -> None:
        for start in range(0, len(idx), CHUNK):
            part = idx[start:start + CHUNK]
            try:
                answers = authorize_batch([requests[i] for i in part], self.policies, entities,
                                          schema)
            except (ValueError, TypeError) as exc:
                if len(part) > 1:  # one odd request must not take the others with it
                    for i in part:
                        self._run(requests, [i], entities, schema, out, shapes)
                    continue
                out[part[0]] = Decision(False, (EVAL_ERROR,), (str(exc)[:500],))
                continue
            for i, answer in zip(part, answers, strict=True):
                decision = self._read(answer)
                out[i] = decision
                if schema is not None and not decision.errors and answer.get("decision") in (
                        "Allow", "Deny"):
                    self._valid.add(shapes[i])

    def _read(self, answer: Mapping[str, Any]) -> Decision:
        """``interpret`` of ``answer``, memoised: answers repeat (same reasons, no errors)."""
        diag = answer.get("diagnostics") or {}
        key = (answer.get("decision"), tuple(diag.get("reason") or ()),
               tuple(str(e) for e in diag.get("errors") or ()))
        decision = self._answers.get(key)
        if decision is None:
            decision = interpret(answer, self.ids)
            if len(self._answers) < 4096:
                self._answers[key] = decision
        return decision
