"""Evaluating many recorded Cedar requests against one policy set, fast and exactly.

Decision replay (:mod:`vak.review.replay`) hands this module the requests a
log recorded; each must be judged exactly as the kernel judged it alone, with
the entities ``[principal, resource]`` and nothing else (a union of several
requests' entities could change an answer: Cedar's ``in`` follows parents
through every entity present, and a policy may name any entity). So:

* the policy set and schema are parsed once per evaluator (one per policy set);
* each distinct principal entity is parsed and schema-validated once;
  :meth:`BatchEvaluator.decide` takes every request of one (principal,
  resource) pair and evaluates them over that pair's own entity set, so the
  caller groups and deduplicates;
* :meth:`BatchEvaluator.decide_many` takes many pairs of one principal and
  evaluates several resources over one entity set (one parse, one Cedar call)
  when that is provably the same as evaluating each alone: no resource in the
  set is a parent of, or an entity referenced by, another request of the set
  (anything in its resource entity or its context, or in the principal entity)
  or any policy (an entity literal anywhere in the policy text). Then nothing Cedar
  evaluates for one request can reach another's resource: ``in`` follows only
  parents, and an attribute is read only from an entity an expression names.
  Pairs that conflict go to another set; a set Cedar refuses falls back to
  pair by pair, so a bad resource only affects its own requests;
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

__all__ = ["ANY_UID", "CHUNK", "BatchEvaluator", "Pair", "entity_refs"]

#: requests per Cedar call (bounds the memory of one call, not its meaning)
CHUNK = 512
ACTION_TYPE = "Vak::Action"

#: an entity uid as (type, id)
Uid = tuple[str, str]
#: one resource entity with the ``(action, context)`` requests made on it
Pair = tuple[Mapping[str, Any], Sequence[tuple[str, Mapping[str, Any]]]]


#: stands for "some entity uid that cannot be told" in :func:`entity_refs`
ANY_UID: Uid = ("*", "*")


def entity_refs(value: Any) -> set[Uid]:
    """Every entity uid ``value`` may name: each object anywhere inside it that has
    string ``type`` and ``id`` (Cedar's ``{"type", "id"}`` and ``__entity`` forms;
    over-approximating only costs batching), and :data:`ANY_UID` for an ``__expr``
    escape. Iterative: depth is the input's."""
    if not isinstance(value, (dict, list)):
        return set()
    out: set[Uid] = set()
    stack = [value]
    nested = (dict, list)
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            t, i = v.get("type"), v.get("id")
            if isinstance(t, str) and isinstance(i, str):
                out.add((t, i))
            if "__expr" in v:  # an old escape naming an entity in Cedar syntax: any uid
                out.add(ANY_UID)
            stack.extend(x for x in v.values() if isinstance(x, nested))
        else:
            stack.extend(x for x in v if isinstance(x, nested))
    return out


def _uid(entity: Mapping[str, Any]) -> Uid:
    uid = entity["uid"]
    return (uid["type"], uid["id"])


class BatchEvaluator:
    """One policy set's Cedar handles, for evaluating many recorded requests."""

    __slots__ = ("_answers", "_literals", "_principals", "_valid", "approval_ids", "digest",
                 "ids", "policies", "schema")

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
        #: entity uids the policy text names (None: unknown, so never share an entity set)
        self._literals: set[Uid] | None
        try:
            self._literals = entity_refs(orjson.loads(
                cedarpy.policies_to_json_str(loaded.policy_text)))
        except (ValueError, TypeError):
            self._literals = None

    def decide_many(self, principal_key: Hashable, principal: Mapping[str, Any],
                    pairs: Sequence[Pair]) -> list[list[Decision] | PolicyError]:
        """:meth:`decide` for each of ``pairs`` (one principal), sharing entity sets.

        Returns, per pair, its decisions in order or the :class:`PolicyError` that
        :meth:`decide` would raise for it; the answers are those of :meth:`decide`.
        """
        out: list[list[Decision] | PolicyError | None] = [None] * len(pairs)
        try:
            self._base(principal_key, principal)
        except PolicyError as exc:
            return [exc] * len(pairs)
        for group in self._groups(principal, pairs):
            if len(group) > 1 and self._decide_shared(principal_key, principal, pairs, group,
                                                      out):
                continue
            for k in group:
                resource, calls = pairs[k]
                try:
                    out[k] = self.decide(principal_key, principal, resource, calls)
                except PolicyError as exc:
                    out[k] = exc
        return [r if r is not None else PolicyError("not evaluated") for r in out]

    def _groups(self, principal: Mapping[str, Any], pairs: Sequence[Pair]) -> list[list[int]]:
        """Indexes of ``pairs`` in groups that may share one entity set (see the module
        docstring), each of at most CHUNK requests; a pair that may not share is alone."""
        p_uid = _uid(principal)
        literals = {ANY_UID} if self._literals is None else self._literals
        # everything the principal entity names (attributes, parents, tags: all of it)
        fixed = literals | entity_refs(principal)
        if ANY_UID in fixed:
            return [[k] for k in range(len(pairs))]
        groups: list[list[int]] = []
        open_: list[tuple[list[int], set[Uid], set[Uid], list[int]]] = []
        for k, (resource, calls) in enumerate(pairs):
            uid = _uid(resource)
            refs = entity_refs(resource)  # its parents, attributes, tags (and its own uid)
            for _, context in calls:
                refs |= entity_refs(context)
            refs.discard(uid)
            if uid == p_uid or uid in fixed or ANY_UID in refs:
                groups.append([k])
                continue
            for members, uids, seen_refs, size in open_:
                if (uid not in uids and uid not in seen_refs and refs.isdisjoint(uids)
                        and size[0] + len(calls) <= CHUNK):
                    members.append(k)
                    uids.add(uid)
                    seen_refs |= refs
                    size[0] += len(calls)
                    break
            else:
                members = [k]
                groups.append(members)
                if len(open_) < 4:  # a few open groups keep the search short
                    open_.append((members, {uid}, refs, [len(calls)]))
            open_ = [g for g in open_ if g[3][0] < CHUNK]
        return groups

    def _decide_shared(self, principal_key: Hashable, principal: Mapping[str, Any],
                       pairs: Sequence[Pair], group: list[int],
                       out: list[list[Decision] | PolicyError | None]) -> bool:
        """Evaluate ``group``'s pairs over one entity set; False if Cedar refuses it."""
        base = self._base(principal_key, principal)
        try:
            entities = base.with_added_json_str(
                orjson.dumps([pairs[k][0] for k in group]).decode(), self.schema)
        except (ValueError, TypeError):
            return False  # some resource is bad: pair by pair finds which
        p_uid = principal["uid"]
        requests: list[dict[str, Any]] = []
        shapes: list[Any] = []
        for k in group:
            resource, calls = pairs[k]
            r_uid = resource["uid"]
            for action, context in calls:
                requests.append({"principal": p_uid,
                                 "action": {"type": ACTION_TYPE, "id": action},
                                 "resource": r_uid, "context": context})
                shapes.append((p_uid["type"], action, r_uid["type"], _shape(context)))
        decided = self._decide_requests(requests, shapes, entities)
        at = 0
        for k in group:
            n = len(pairs[k][1])
            out[k] = decided[at:at + n]
            at += n
        return True

    def _base(self, key: Hashable, principal: Mapping[str, Any]) -> cedarpy.Entities:
        base = self._principals.get(key)
        if base is None:
            try:
                base = cedarpy.Entities.from_json_str(orjson.dumps([principal]).decode(),
                                                      self.schema)
            except (ValueError, TypeError) as exc:
                raise PolicyError(f"Cedar refused the recorded principal: {str(exc)[:200]}",
                                  field="skill_loaded.principal") from exc
            self._principals[key] = base
        return base

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
        return self._decide_requests(requests, shapes, entities)

    def _decide_requests(self, requests: list[dict[str, Any]], shapes: list[Any],
                         entities: cedarpy.Entities) -> list[Decision]:
        """Cedar's decisions on ``requests`` over ``entities``, validating new shapes."""
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
        base = self._base(key, principal)
        try:
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
