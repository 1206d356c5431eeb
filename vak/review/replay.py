"""Decision replay: was every recorded decision right under the policy in force?

A log records each policy set the kernel decided with (``policy_set`` entries,
content-addressed, again after every reload), each skill's Cedar principal (in
``skill_loaded``), and with every Cedar decision the request Cedar saw
(``host_decision.request``: action, resource entity, context; the principal by
fingerprint). Replaying evaluates those requests again with cedarpy and
compares effect and determining policy ids with what was recorded:

* against the recorded sets, each decision is judged by the set in force when it
  was made: the most recent ``policy_set`` entry before it. Any difference means
  the kernel decided otherwise than its own policy says (a bug, or a log altered
  by a key holder); a decision citing another set than the one in force is a
  difference too (``policy-set``: the kernel decided with a superseded set);
* against a proposed set (``--policies DIR``), the differences are exactly the
  decisions the proposal would change: the "what if".

Decisions the kernel made before asking Cedar (the declared-capability ceiling,
malformed arguments, the host-call limit) carry no request; they are counted as
kernel decisions and no policy can change them. A decision whose request,
principal or policy set is missing or malformed is reported as unreplayable,
with its seq, never silently passed.

Speed comes from evaluating each distinct request once: decisions repeat
(the same skill reads the same file, logs to the same kernel), and Cedar's
answer is a function of policy set, request and entities, so decisions are
grouped by set, by (principal, resource) pair and by request, and each group's
answer is compared with every decision in it. :mod:`vak.policy.batch`
evaluates each request with exactly the two entities the kernel used (sharing
one entity set between pairs only where that provably changes nothing), and a
long log is split across processes (:mod:`vak.review.parallel`).

Example::

    >>> result = replay(Path("audit/vak.log"))                      # doctest: +SKIP
    >>> result.differences                                          # doctest: +SKIP
    []
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import orjson

from vak.errors import PolicyError
from vak.policy.batch import BatchEvaluator
from vak.policy.engine import Decision
from vak.policy.loader import LoadedPolicies, loaded_from_record
from vak.review.logread import LogEntries, gc_paused, read_entries

__all__ = ["KINDS", "Difference", "Progress", "ReplayResult", "Unreplayable", "Verdict", "replay",
           "replay_entries"]

#: the entry kinds replay reads (a log's other lines are passed over unparsed)
KINDS = ("policy_set", "skill_loaded", "host_decision", "host_resolve")
#: ``progress(done, total)``: decisions judged so far of those to judge
Progress = Callable[[int, int], None]
#: how many decisions between two progress reports
PROGRESS_EVERY = 2048
#: resources of one principal handed to the evaluator at a time
_SLICE = 2048
_KEY = orjson.OPT_SORT_KEYS
_PROPOSED = "proposed"


@dataclass(frozen=True, slots=True)
class Verdict:
    """An effect with its determining policy ids and the policy set that decided."""

    effect: str
    policy_ids: tuple[str, ...]
    policy_set: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"effect": self.effect, "policy_ids": list(self.policy_ids),
                "policy_set": self.policy_set}


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
        """``allow->deny``, ``deny->allow``, ``policy-ids`` (same effect, other policies) or
        ``policy-set`` (same verdict, but the record cites another set than the one in force)."""
        if self.recorded.effect != self.replayed.effect:
            return f"{self.recorded.effect}->{self.replayed.effect}"
        if self.recorded.policy_ids != self.replayed.policy_ids:
            return "policy-ids"
        return "policy-set"

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
    #: distinct usable policy sets recorded, and how many ``policy_set`` entries
    #: came after the first (reloads and restarts with another set)
    policy_sets: int = 0
    policy_set_changes: int = 0
    #: distinct Cedar requests among the evaluated decisions (each evaluated once)
    distinct_requests: int = 0
    #: evaluated decisions per policy set in force when they were made
    per_policy_set: dict[str, int] = field(default_factory=dict)
    #: lines that could hold a decision, policy set or principal but are no entry
    unreadable_lines: int = 0
    differences: list[Difference] = field(default_factory=list)
    unreplayable: list[Unreplayable] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "against": self.against, "decisions": self.decisions, "evaluated": self.evaluated,
            "kernel_decisions": self.kernel, "policy_sets": self.policy_sets,
            "policy_set_changes": self.policy_set_changes,
            "distinct_requests": self.distinct_requests,
            "per_policy_set": dict(self.per_policy_set),
            "unreadable_lines": self.unreadable_lines,
            "differences": [d.to_json() for d in self.differences],
            "unreplayable": [u.to_json() for u in self.unreplayable],
        }


#: the decisions (their entries) that made one distinct request
_Entries = list[Mapping[str, Any]]
#: one (principal, resource) pair's requests: (action, context bytes) -> (context, decisions)
_Calls = dict[tuple[str, bytes], tuple[dict[str, Any], _Entries]]
#: one principal's resources: resource bytes -> (resource, the calls made on it)
_Resources = dict[bytes, tuple[Mapping[str, Any], _Calls]]
#: one policy set's principals: id of the recorded principal -> (principal, its resources)
_Pairs = dict[int, tuple[Mapping[str, Any], _Resources]]


@dataclass(slots=True)
class _Walk:
    """What one pass over the log gathers: sets, principals, the requests to evaluate."""

    proposed: LoadedPolicies | None
    result: ReplayResult
    #: digest (or ``@seq N`` for a record without one) -> set, or why it is unusable
    sets: dict[str, LoadedPolicies | str] = field(default_factory=dict)
    in_force: str | None = None
    principals: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    #: set key (a digest, or "proposed") -> its (principal, resource) pairs
    groups: dict[str, _Pairs] = field(default_factory=dict)
    #: (set key, principal, request bytes) -> the decisions of that request, or why
    #: the request cannot be replayed: a repeated request is filed by one lookup
    seen: dict[tuple[str, int, bytes], _Entries | str] = field(default_factory=dict)
    queued: int = 0


def replay(log: Path, *, proposed: LoadedPolicies | None = None,
           progress: Progress | None = None, reading: Progress | None = None,
           jobs: int | None = None) -> ReplayResult:
    """Replay every decision of the log at ``log`` (see the module docstring).

    A long log is split across ``jobs`` processes (default: one per CPU) by
    :mod:`vak.review.parallel`, with the same result; ``jobs=1`` never splits.
    ``reading`` is called with (bytes done, log size) while the log is read.

    Raises:
        OSError: the log cannot be read.
    """
    from vak.review.parallel import replay_split

    split = replay_split(log, proposed=proposed, progress=reading, jobs=jobs)
    if split is not None:
        if progress is not None:
            progress(split.evaluated, split.evaluated)
        return split
    return replay_entries(read_entries(log, progress=reading, kinds=KINDS),
                          proposed=proposed, progress=progress)


def replay_entries(entries: Iterable[Mapping[str, Any]], *,
                   proposed: LoadedPolicies | None = None,
                   progress: Progress | None = None) -> ReplayResult:
    """Replay the decisions among ``entries`` (recorded sets, or ``proposed``).

    Each decision is judged against the policy set in force when it was made:
    the most recent ``policy_set`` entry before it (or ``proposed`` for all).
    ``progress``, when given, is called with (decisions judged, decisions to
    judge) now and then, and once at the end.
    """
    with gc_paused():  # many small acyclic objects (see vak.review.logread)
        result = _replay(entries, proposed, progress)
    result.unreadable_lines = entries.unreadable if isinstance(entries, LogEntries) else 0
    return result


def _replay(entries: Iterable[Mapping[str, Any]], proposed: LoadedPolicies | None,
            progress: Progress | None) -> ReplayResult:
    result = ReplayResult(against="recorded" if proposed is None else proposed.digest)
    walk = _Walk(proposed, result)
    for entry in entries:
        kind = entry["kind"]
        if kind == "policy_set":
            _add_set(walk, entry)
        elif kind == "skill_loaded":
            _add_principal(walk.principals, entry)
        elif kind in ("host_decision", "host_resolve"):
            result.decisions += 1
            _queue(walk, entry)
    result.policy_sets = sum(1 for v in walk.sets.values() if not isinstance(v, str))
    done = 0
    for key, pairs in walk.groups.items():
        done = _evaluate_set(walk, key, pairs, done, progress)
    if progress is not None:
        progress(done, walk.queued)
    result.differences.sort(key=lambda d: d.seq)
    result.unreplayable.sort(key=lambda u: u.seq)
    return result


def _decision(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    d = entry.get("decision")
    return d if isinstance(d, dict) else {}


def _add_set(walk: _Walk, entry: Mapping[str, Any]) -> None:
    """Record a ``policy_set`` entry and make it the set in force from here on."""
    digest = entry.get("policy_set")
    key = digest if isinstance(digest, str) else f"@seq {entry['seq']}"
    if walk.in_force is not None and key != walk.in_force:
        walk.result.policy_set_changes += 1
    walk.in_force = key
    if key in walk.sets:
        return
    try:
        walk.sets[key] = loaded_from_record(entry)
    except PolicyError as exc:
        walk.sets[key] = f"policy set recorded at seq {entry['seq']} is unusable: {exc}"


def _add_principal(principals: dict[str, Mapping[str, Any]], entry: Mapping[str, Any]) -> None:
    rec = entry.get("principal")
    if isinstance(rec, dict):
        fp, entity = rec.get("fingerprint"), rec.get("entity")
        if isinstance(fp, str) and _is_entity(entity) and _canonical(entity) is not None:
            principals[fp] = entity


def _canonical(value: Any) -> bytes | None:
    """Sorted-key JSON bytes of ``value`` (the dedupe key), or None when Cedar could not
    be sent it (an integer beyond 64 bits, nesting too deep)."""
    try:
        return orjson.dumps(value, option=_KEY)
    except TypeError:
        return None


def _is_entity(value: Any) -> TypeGuard[dict[str, Any]]:
    if not isinstance(value, dict):
        return False
    uid = value.get("uid")
    return (isinstance(uid, dict) and isinstance(uid.get("type"), str)
            and isinstance(uid.get("id"), str) and isinstance(value.get("attrs"), dict)
            and isinstance(value.get("parents"), list))


def _queue(walk: _Walk, entry: Mapping[str, Any]) -> None:
    """File one decision under its policy set, (principal, resource) pair and request."""
    result = walk.result
    req = entry.get("request")
    if req is None:
        if _kernel_made(entry):
            result.kernel += 1
        else:
            result.unreplayable.append(Unreplayable(entry["seq"], "no recorded Cedar request"))
        return
    if walk.in_force is None and walk.proposed is None:
        result.unreplayable.append(Unreplayable(entry["seq"], "no policy_set entry before it"))
        return
    in_force = walk.in_force or ""
    key = _PROPOSED if walk.proposed is not None else in_force
    fp = req.get("principal") if isinstance(req, dict) else None
    principal = walk.principals.get(fp) if isinstance(fp, str) else None
    raw = _canonical(req)
    # the principal is keyed by the recorded object: one fingerprint recorded twice
    # with other content is two principals
    seen_key = (key, id(principal), raw or b"")
    filed = walk.seen.get(seen_key) if raw is not None else None
    if filed is None:
        filed = walk.seen[seen_key] = _file(walk, key, req, principal, raw)
    if isinstance(filed, str):
        result.unreplayable.append(Unreplayable(entry["seq"], filed))
        return
    filed.append(entry)
    counts = result.per_policy_set
    counts[in_force] = counts.get(in_force, 0) + 1
    walk.queued += 1


def _file(walk: _Walk, key: str, req: Any, principal: Mapping[str, Any] | None,
          raw: bytes | None) -> _Entries | str:
    """A new distinct request: checked once, filed under its pair; or why it cannot be."""
    if not isinstance(req, dict):
        return "request is not an object"
    action, resource, context = req.get("action"), req.get("resource"), req.get("context")
    if not (isinstance(req.get("principal"), str) and isinstance(action, str)
            and _is_entity(resource) and isinstance(context, dict)):
        return "request lacks principal, action, resource entity or context"
    res_key, ctx_key = _canonical(resource), _canonical(context)
    if raw is None or res_key is None or ctx_key is None:
        return "request cannot be encoded for Cedar"
    if principal is None:
        return "principal not recorded by skill_loaded"
    by_principal = walk.groups.setdefault(key, {})
    resources = by_principal.setdefault(id(principal), (principal, {}))[1]
    on = resources.get(res_key)
    if on is None:
        on = resources[res_key] = (resource, {})
    decided: _Entries = []
    on[1][(action, ctx_key)] = (context, decided)
    return decided


def _kernel_made(entry: Mapping[str, Any]) -> bool:
    ids = _decision(entry).get("policy_ids")
    return (isinstance(ids, list) and len(ids) == 1 and isinstance(ids[0], str)
            and ids[0] in _KERNEL_IDS)


_KERNEL_IDS = frozenset({"vak.capability-ceiling", "vak.invalid-args", "vak.invalid-target",
                         "vak.host-call-limit"})


def _evaluate_set(walk: _Walk, key: str, pairs: _Pairs, done: int,
                  progress: Progress | None) -> int:
    """Evaluate every distinct request filed under one policy set; returns ``done``."""
    result = walk.result
    loaded = walk.proposed if key == _PROPOSED else walk.sets.get(key)
    evaluator: BatchEvaluator | None = None
    why = loaded if isinstance(loaded, str) else f"policy set {key or '(none)'} not recorded"
    if isinstance(loaded, LoadedPolicies):
        try:
            evaluator = BatchEvaluator(loaded)
        except PolicyError as exc:
            why = f"policy set {key[:19]}... cannot be evaluated: {exc}"
    last = done
    what_if = walk.proposed is not None
    for pkey, (principal, resources) in pairs.items():
        everything = list(resources.values())
        for start in range(0, len(everything), _SLICE):  # a slice at a time: progress
            items = everything[start:start + _SLICE]
            answers: list[list[Decision] | PolicyError] | None = None
            if evaluator is not None:
                answers = evaluator.decide_many(pkey, principal, [
                    (resource, [(action, ctx) for (action, _), (ctx, _) in calls.items()])
                    for resource, calls in items])
            for k, (_, calls) in enumerate(items):
                answer: list[Decision] | PolicyError | str = (why if answers is None
                                                              else answers[k])
                for i, (_, decided) in enumerate(calls.values()):
                    done += len(decided)
                    if isinstance(answer, list) and evaluator is not None:
                        result.distinct_requests += 1
                        _judge(evaluator, answer[i], decided, what_if, result)
                    else:
                        result.unreplayable.extend(Unreplayable(e["seq"], str(answer))
                                                   for e in decided)
            if progress is not None and done - last >= PROGRESS_EVERY:
                progress(done, walk.queued)
                last = done
    return done


def _judge(ev: BatchEvaluator, decision: Decision, decided: _Entries, what_if: bool,
           result: ReplayResult) -> None:
    """Compare one distinct request's replayed decision with each decision that made it."""
    gated = decision.allowed and not ev.approval_ids.isdisjoint(decision.policy_ids)
    effect = "allow" if decision.allowed else "deny"
    ids = list(decision.policy_ids)
    result.evaluated += len(decided)
    for entry in decided:
        recorded = _decision(entry)
        rec_effect = recorded.get("effect")
        mine = effect
        if gated and rec_effect == "approval_required":
            mine = rec_effect  # awaiting approval (whether it was given is the verifier's check)
        if (rec_effect == mine and recorded.get("policy_ids") == ids
                and (what_if or recorded.get("policy_set") == ev.digest)):
            continue
        rec_ids, cited = recorded.get("policy_ids"), recorded.get("policy_set")
        rec = Verdict(str(rec_effect or ""),
                      tuple(str(i) for i in rec_ids) if isinstance(rec_ids, list) else (),
                      cited if isinstance(cited, str) else "")
        skill = entry.get("skill")
        result.differences.append(Difference(
            seq=entry["seq"],
            host_function=_text(entry.get("host_function")),
            resource=_text(entry.get("resource")),
            skill=_text(skill.get("id")) if isinstance(skill, dict) else "",
            session=_text(entry.get("session")),
            recorded=rec, replayed=Verdict(mine, decision.policy_ids, ev.digest)))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def changed_ids(differences: Iterable[Difference]) -> dict[str, int]:
    """How many differences each policy id takes part in (for the what-if summary)."""
    counts: dict[str, int] = {}
    for d in differences:
        for pid in set(d.recorded.policy_ids) ^ set(d.replayed.policy_ids):
            counts[pid] = counts.get(pid, 0) + 1
    return dict(sorted(counts.items()))
