"""Decision replay: was every recorded decision right under the policy in force?

A log records each policy set the kernel decided with (``policy_set`` entries,
content-addressed), each skill's Cedar principal (in ``skill_loaded``), and with
every Cedar decision the request Cedar saw (``host_decision.request``: action,
resource entity, context; the principal by fingerprint). Replaying evaluates
those requests again with cedarpy, in batches, and compares effect and
determining policy ids with what was recorded:

* against the recorded sets, any difference means the kernel decided otherwise
  than its own policy says (a bug, or a log altered by a key holder);
* against a proposed set (``--policies DIR``), the differences are exactly the
  decisions the proposal would change: the "what if".

Decisions the kernel made before asking Cedar (the declared-capability ceiling,
malformed arguments, the host-call limit) carry no request; they are counted as
kernel decisions and no policy can change them. A decision whose request,
principal or policy set is missing or malformed is reported as unreplayable,
with its seq, never silently passed.

Example::

    >>> result = replay(Path("audit/vak.log"))                      # doctest: +SKIP
    >>> result.differences                                          # doctest: +SKIP
    []
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import cedarpy
import orjson

from vak.errors import PolicyError
from vak.policy.engine import Decision, interpret
from vak.policy.loader import LoadedPolicies, loaded_from_record
from vak.review.logread import LogEntries, read_entries

__all__ = ["Difference", "ReplayResult", "Unreplayable", "replay", "replay_entries"]

#: requests evaluated per cedarpy batch (entities are unioned per batch)
BATCH = 512


@dataclass(frozen=True, slots=True)
class Verdict:
    """An effect with its determining policy ids."""

    effect: str
    policy_ids: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"effect": self.effect, "policy_ids": list(self.policy_ids)}


@dataclass(frozen=True, slots=True)
class Difference:
    """One decision whose replay differs from its record."""

    seq: int
    host_function: str
    resource: str
    skill: str
    session: str
    recorded: Verdict
    replayed: Verdict

    @property
    def change(self) -> str:
        """``allow->deny``, ``deny->allow`` or ``policy-ids`` (same effect, other policies)."""
        if self.recorded.effect != self.replayed.effect:
            return f"{self.recorded.effect}->{self.replayed.effect}"
        return "policy-ids"

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "change": self.change, "host_function": self.host_function,
            "resource": self.resource, "skill": self.skill, "session": self.session,
            "recorded": self.recorded.to_json(), "replayed": self.replayed.to_json(),
        }


@dataclass(frozen=True, slots=True)
class Unreplayable:
    """A decision that could not be re-evaluated, and why."""

    seq: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "reason": self.reason}


@dataclass(slots=True)
class ReplayResult:
    """What a replay found; ``against`` is "recorded" or the proposed set's digest."""

    against: str
    decisions: int = 0
    evaluated: int = 0
    kernel: int = 0
    policy_sets: int = 0
    unreadable_lines: int = 0
    differences: list[Difference] = field(default_factory=list)
    unreplayable: list[Unreplayable] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "against": self.against, "decisions": self.decisions, "evaluated": self.evaluated,
            "kernel_decisions": self.kernel, "policy_sets": self.policy_sets,
            "unreadable_lines": self.unreadable_lines,
            "differences": [d.to_json() for d in self.differences],
            "unreplayable": [u.to_json() for u in self.unreplayable],
        }


@dataclass(frozen=True, slots=True)
class _Pending:
    seq: int
    entry: Mapping[str, Any]
    request: dict[str, Any]
    principal: Mapping[str, Any]
    resource: Mapping[str, Any]


class _CompiledSet:
    """A policy set's parsed Cedar handles, built once per replay."""

    __slots__ = ("approval_ids", "ids", "policies", "schema")

    def __init__(self, loaded: LoadedPolicies) -> None:
        self.ids = loaded.ids
        #: permits marked @approval("required"): an Allow they determine is recorded as
        #: approval_required until an operator's answer lets the call proceed (allow)
        self.approval_ids = frozenset(st.policy_id for st in loaded.statements
                                      if st.needs_approval)
        self.policies = cedarpy.PolicySet.from_str(loaded.policy_text)
        self.schema = cedarpy.Schema.from_str(loaded.schema_text)


def replay(log: Path, *, proposed: LoadedPolicies | None = None) -> ReplayResult:
    """Replay every decision of the log at ``log`` (see the module docstring).

    Raises:
        OSError: the log cannot be read.
    """
    return replay_entries(read_entries(log), proposed=proposed)


def replay_entries(
    entries: LogEntries, *, proposed: LoadedPolicies | None = None
) -> ReplayResult:
    """Replay the decisions among ``entries`` (recorded sets, or ``proposed``)."""
    result = ReplayResult(against="recorded" if proposed is None else proposed.digest,
                          unreadable_lines=entries.unreadable)
    sets: dict[str, LoadedPolicies | str] = {}
    principals: dict[str, Mapping[str, Any]] = {}
    queues: dict[str, list[_Pending]] = {}
    for entry in entries:
        kind = entry["kind"]
        if kind == "policy_set":
            _add_set(sets, entry)
        elif kind == "skill_loaded":
            _add_principal(principals, entry)
        elif kind in ("host_decision", "host_resolve"):
            result.decisions += 1
            pending = _pending(entry, principals, result)
            if pending is None:
                continue
            digest = _decision(entry).get("policy_set")
            key = "proposed" if proposed is not None else digest if isinstance(digest, str) else ""
            queues.setdefault(key, []).append(pending)
    result.policy_sets = sum(1 for v in sets.values() if not isinstance(v, str))
    for key, items in queues.items():
        loaded: LoadedPolicies | str | None = proposed if key == "proposed" else sets.get(key)
        if loaded is None or isinstance(loaded, str):
            why = (loaded if isinstance(loaded, str)
                   else f"policy set {key or '(none)'} not recorded")
            result.unreplayable.extend(Unreplayable(p.seq, why) for p in items)
            continue
        _evaluate(_CompiledSet(loaded), items, result)
    result.differences.sort(key=lambda d: d.seq)
    result.unreplayable.sort(key=lambda u: u.seq)
    return result


def _decision(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    d = entry.get("decision")
    return d if isinstance(d, dict) else {}


def _add_set(sets: dict[str, LoadedPolicies | str], entry: Mapping[str, Any]) -> None:
    digest = entry.get("policy_set")
    if not isinstance(digest, str) or digest in sets:
        return
    try:
        sets[digest] = loaded_from_record(entry)
    except PolicyError as exc:
        sets[digest] = f"policy set recorded at seq {entry['seq']} is unusable: {exc}"


def _add_principal(principals: dict[str, Mapping[str, Any]], entry: Mapping[str, Any]) -> None:
    rec = entry.get("principal")
    if isinstance(rec, dict):
        fp, entity = rec.get("fingerprint"), rec.get("entity")
        if isinstance(fp, str) and _is_entity(entity) and _encodable(entity):
            principals[fp] = entity


def _encodable(value: Any) -> bool:
    try:
        orjson.dumps(value)
    except TypeError:
        return False
    return True


def _is_entity(value: Any) -> TypeGuard[dict[str, Any]]:
    if not isinstance(value, dict):
        return False
    uid = value.get("uid")
    return (isinstance(uid, dict) and isinstance(uid.get("type"), str)
            and isinstance(uid.get("id"), str) and isinstance(value.get("attrs"), dict)
            and isinstance(value.get("parents"), list))


def _pending(entry: Mapping[str, Any], principals: Mapping[str, Mapping[str, Any]],
             result: ReplayResult) -> _Pending | None:
    seq: int = entry["seq"]
    req = entry.get("request")
    if req is None:
        if _kernel_made(entry):
            result.kernel += 1
        else:
            result.unreplayable.append(Unreplayable(seq, "no recorded Cedar request"))
        return None
    if not isinstance(req, dict):
        result.unreplayable.append(Unreplayable(seq, "request is not an object"))
        return None
    fp, action, resource, context = (req.get("principal"), req.get("action"),
                                     req.get("resource"), req.get("context"))
    if not (isinstance(fp, str) and isinstance(action, str) and _is_entity(resource)
            and isinstance(context, dict)):
        result.unreplayable.append(Unreplayable(seq, "request lacks principal, action, "
                                                "resource entity or context"))
        return None
    if not _encodable([resource, context]):  # e.g. an integer beyond 64 bits
        result.unreplayable.append(Unreplayable(seq, "request cannot be encoded for Cedar"))
        return None
    principal = principals.get(fp)
    if principal is None:
        result.unreplayable.append(Unreplayable(seq, "principal not recorded by skill_loaded"))
        return None
    cedar_req = {"principal": principal["uid"], "action": {"type": "Vak::Action", "id": action},
                 "resource": resource["uid"], "context": context}
    return _Pending(seq, entry, cedar_req, principal, resource)


def _kernel_made(entry: Mapping[str, Any]) -> bool:
    ids = _decision(entry).get("policy_ids")
    return (isinstance(ids, list) and len(ids) == 1 and isinstance(ids[0], str)
            and ids[0] in _KERNEL_IDS)


_KERNEL_IDS = frozenset({"vak.capability-ceiling", "vak.invalid-args", "vak.invalid-target",
                         "vak.host-call-limit"})


def _batches(items: list[_Pending]) -> Iterator[tuple[list[_Pending], str]]:
    """Chunks of at most BATCH requests with the union of their entities (as JSON).

    A uid seen twice with different content starts a new chunk, so every request
    is evaluated with exactly the entities recorded for it.
    """
    chunk: list[_Pending] = []
    ents: dict[tuple[str, str], Mapping[str, Any]] = {}
    for p in items:
        mine = ((_uid(p.principal), p.principal), (_uid(p.resource), p.resource))
        clash = any(uid in ents and ents[uid] != e for uid, e in mine)
        if chunk and (clash or len(chunk) >= BATCH):
            yield chunk, orjson.dumps(list(ents.values())).decode()
            chunk, ents = [], {}
        chunk.append(p)
        for uid, e in mine:
            ents[uid] = e
    if chunk:
        yield chunk, orjson.dumps(list(ents.values())).decode()


def _uid(entity: Mapping[str, Any]) -> tuple[str, str]:
    uid = entity["uid"]
    return (uid["type"], uid["id"])


def _evaluate(cs: _CompiledSet, items: list[_Pending], result: ReplayResult) -> None:
    for chunk, entities in _batches(items):
        try:
            answers = cedarpy.is_authorized_batch(
                [p.request for p in chunk], cs.policies, entities, cs.schema)
        except (ValueError, TypeError) as exc:  # malformed recorded entities
            # one bad request must not hide the others: evaluate the chunk one by one
            if len(chunk) == 1:
                result.unreplayable.append(Unreplayable(
                    chunk[0].seq, f"Cedar refused the recorded request: {str(exc)[:200]}"))
                continue
            for p in chunk:
                _evaluate(cs, [p], result)
            continue
        for p, answer in zip(chunk, answers, strict=True):
            result.evaluated += 1
            decision = _decided(answer, cs.ids)
            gated = decision.allowed and not cs.approval_ids.isdisjoint(decision.policy_ids)
            _compare(p, decision, gated, result)


def _decided(answer: cedarpy.AuthzResult, ids: tuple[str, ...]) -> Decision:
    diag = answer.diagnostics
    return interpret({"decision": answer.decision.name,
                      "diagnostics": {"reason": list(diag.reasons),
                                      "errors": [str(e) for e in diag.errors]}}, ids)


def _compare(p: _Pending, decision: Decision, gated: bool, result: ReplayResult) -> None:
    recorded = _decision(p.entry)
    ids = recorded.get("policy_ids")
    rec = Verdict(str(recorded.get("effect", "")),
                  tuple(str(i) for i in ids) if isinstance(ids, list) else ())
    effect = "allow" if decision.allowed else "deny"
    if gated and rec.effect == "approval_required":
        effect = rec.effect  # awaiting approval (whether it was given is the verifier's check)
    rep = Verdict(effect, decision.policy_ids)
    if rec != rep:
        skill = p.entry.get("skill")
        result.differences.append(Difference(
            seq=p.entry["seq"],
            host_function=_text(p.entry.get("host_function")),
            resource=_text(p.entry.get("resource")),
            skill=_text(skill.get("id")) if isinstance(skill, dict) else "",
            session=_text(p.entry.get("session")),
            recorded=rec, replayed=rep))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def changed_ids(differences: Iterable[Difference]) -> dict[str, int]:
    """How many differences each policy id takes part in (for the what-if summary)."""
    counts: dict[str, int] = {}
    for d in differences:
        for pid in set(d.recorded.policy_ids) ^ set(d.replayed.policy_ids):
            counts[pid] = counts.get(pid, 0) + 1
    return dict(sorted(counts.items()))
