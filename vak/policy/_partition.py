"""Per-(action, skill) slices of a validated policy set.

Cedar evaluates every policy of a set on every request, and a policy whose
scope cannot match the request costs time but never changes the answer: the
scope is conjoined with the ``when``/``unless`` conditions and checked first,
so a policy whose ``action`` or ``principal`` scope is false for a request is
neither satisfied nor erroring (it cannot be determining and cannot add an
evaluation error). Dropping exactly those policies therefore yields the same
decision, the same determining policies and the same errors.

Invariants of :func:`scope_of` / :meth:`Scope.may_apply`:

* a policy is excluded only when its scope *provably* excludes the request:
  ``action == A`` with ``A`` another action, ``action in [...]`` listing only
  leaf actions (:func:`leaf_actions`: actions of the schema that are no other
  action's group) none of which is the request's, or ``principal ==`` /
  ``principal in`` another ``Vak::Skill`` (skills have no parents);
* anything else (``action in`` a group, templates, unknown shapes) is kept, so
  an unexpected policy shape can only make a slice larger, never wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import cedarpy
import orjson

__all__ = ["Scope", "leaf_actions", "scope_of"]

_ACTION_TYPE = "Vak::Action"
_SKILL_TYPE = "Vak::Skill"
_NAME = r'(?:[A-Za-z_][A-Za-z0-9_]*|"(?:[^"\\]|\\.)*")'
_ACTION_DECL = re.compile(rf"\baction\s+({_NAME}(?:\s*,\s*{_NAME})*)([^;]*);")
_IN_LIST = re.compile(r"\bin\s*\[([^\]]*)\]")
_NAMES = re.compile(_NAME)


@dataclass(frozen=True, slots=True)
class Scope:
    """What a policy's head says about the actions and skills it can apply to."""

    #: the only actions it can apply to, or None for "cannot tell / any"
    actions: frozenset[str] | None
    #: the only skill name it can apply to, or None for "any"
    skill: str | None

    def may_apply(self, action: str, skill: str) -> bool:
        """False only when the policy's scope is false for every such request."""
        if self.actions is not None and action not in self.actions:
            return False
        return self.skill is None or self.skill == skill


def _entity_ids(constraint: dict[str, Any]) -> list[dict[str, Any]] | None:
    if "entity" in constraint:
        return [constraint["entity"]]
    if "entities" in constraint:
        return list(constraint["entities"])
    return None


def leaf_actions(schema_text: str) -> frozenset[str]:
    """Actions declared with ``appliesTo`` that no other action names as its group.

    Only these may be dropped from a slice when an ``action in [...]`` list does
    not name the request's action. The reading errs one way: a declaration this
    does not recognise yields no leaf, which can only keep a policy in a slice.
    """
    declared: set[str] = set()
    groups: set[str] = set()
    for m in _ACTION_DECL.finditer(_strip_comments(schema_text)):
        names = {n.strip('"') for n in _NAMES.findall(m.group(1))}
        rest = m.group(2)
        for parents in _IN_LIST.findall(rest):
            groups.update(n.split("::")[-1].strip('"') for n in
                          re.findall(r'(?:[A-Za-z_][A-Za-z0-9_:]*::)?"?[^",\s]+"?', parents))
        if "appliesTo" in rest:
            declared.update(names)
    return frozenset(declared - groups)


def _strip_comments(text: str) -> str:
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def _action_scope(c: dict[str, Any], leaves: frozenset[str]) -> frozenset[str] | None:
    op = c.get("op")
    ents = _entity_ids(c)
    if op not in ("==", "in") or ents is None:
        return None
    ids: set[str] = set()
    for e in ents:
        if not isinstance(e, dict) or e.get("type") != _ACTION_TYPE:
            return None
        ident = e.get("id")
        if op == "in" and ident not in leaves:
            return None  # a group (or unknown): membership is the schema's business
        ids.add(str(ident))
    return frozenset(ids)


def _skill_scope(c: dict[str, Any]) -> str | None:
    e = c.get("entity")
    if c.get("op") in ("==", "in") and isinstance(e, dict) and e.get("type") == _SKILL_TYPE:
        return str(e.get("id"))
    return None


def scope_of(policy_text: str, leaves: frozenset[str]) -> Scope:
    """The :class:`Scope` of one policy statement (unknown shapes: applies to all).

    Raises:
        ValueError: ``policy_text`` does not parse (it was validated at load, so
            this is a bug).
    """
    est = orjson.loads(cedarpy.policies_to_json_str(policy_text))
    policies: Iterable[Any] = (est.get("staticPolicies") or {}).values()
    items = list(policies)
    if len(items) != 1 or est.get("templates"):
        return Scope(None, None)
    head = items[0]
    return Scope(_action_scope(head.get("action") or {}, leaves),
                 _skill_scope(head.get("principal") or {}))
