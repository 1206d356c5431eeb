"""cedarpy through one door: the authorize call, with a self-tested fast path.

The public ``cedarpy.is_authorized`` spends ~40% of a call in Python
(``json.dumps`` of the context, ``json.loads`` of the answer, result objects).
The extension function it wraps (``cedarpy._internal.is_authorized_batch``,
a private API) is called directly here with orjson, over the private
``Entities._inner`` handle: one request at a time for the kernel
(:func:`authorize`), many requests over one entity set for decision replay
(:func:`authorize_batch`, the same extension call). Those two names are the
only private cedarpy APIs VAK uses, and this is the only module that touches
them; ``pyproject.toml`` pins cedarpy below the next minor version.

When the first policy engine is built (kernel start) or the first batch is
evaluated, :func:`fast_path` runs a known-answer self-test that compares the
fast path with the public API on allow, deny, forbid-wins, erroring-policy and
schema-violation requests, one by one and as one batch. On any mismatch or
error it logs a warning on the ``vak.policy`` logger and uses the public API
from then on (:func:`fast_path` says which is in use).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import cedarpy
import orjson

__all__ = ["authorize", "authorize_batch", "authorize_public", "authorize_public_batch",
           "fast_path"]

_log = logging.getLogger("vak.policy")
_RAW = getattr(getattr(cedarpy, "_internal", None), "is_authorized_batch", None)
_state: dict[str, bool] = {}
_lock = threading.Lock()

_SELFTEST_SCHEMA = """
namespace T {
  entity U { n: Long };
  entity R;
  action a appliesTo { principal: [U], resource: [R], context: { k: Long } };
}
"""
_SELFTEST_POLICIES = """
@id("p") permit (principal, action == T::Action::"a", resource) when { context.k > 0 };
@id("f") forbid (principal, action == T::Action::"a", resource) when { context.k == 7 };
@id("e") forbid (principal, action == T::Action::"a", resource)
  when { principal.n + 9223372036854775807 > 0 && context.k == 5 };
"""


def authorize_public(request: dict[str, Any], policies: cedarpy.PolicySet,
                     entities: cedarpy.Entities, schema: cedarpy.Schema | None
                     ) -> dict[str, Any]:
    """Cedar's answer as ``{"decision", "diagnostics": {"reason", "errors"}}``, public API."""
    result = cedarpy.is_authorized(request, policies, entities, schema)
    diag = result.diagnostics
    return {"decision": result.decision.value,
            "diagnostics": {"reason": list(diag.reasons), "errors": [str(e) for e in diag.errors]}}


def authorize_public_batch(requests: list[dict[str, Any]], policies: cedarpy.PolicySet,
                           entities: cedarpy.Entities, schema: cedarpy.Schema | None
                           ) -> list[dict[str, Any]]:
    """Cedar's answers to ``requests`` (like :func:`authorize_public`), one public batch call."""
    out = []
    for result in cedarpy.is_authorized_batch(requests, policies, entities, schema):
        diag = result.diagnostics
        out.append({"decision": result.decision.value,
                    "diagnostics": {"reason": list(diag.reasons),
                                    "errors": [str(e) for e in diag.errors]}})
    return out


def _authorize_fast_batch(requests: list[dict[str, Any]], policies: cedarpy.PolicySet,
                          entities: cedarpy.Entities, schema: cedarpy.Schema | None
                          ) -> list[dict[str, Any]]:
    assert _RAW is not None
    dumps = orjson.dumps
    reqs = [{**r, "context": dumps(r["context"]).decode()} for r in requests]
    return [orjson.loads(raw) for raw in _RAW(reqs, policies, entities._inner, schema, False)]


def _authorize_fast(request: dict[str, Any], policies: cedarpy.PolicySet,
                    entities: cedarpy.Entities, schema: cedarpy.Schema | None) -> dict[str, Any]:
    assert _RAW is not None
    req = dict(request)
    req["context"] = orjson.dumps(request["context"]).decode()
    raw = _RAW([req], policies, entities._inner, schema, False)
    resp: dict[str, Any] = orjson.loads(raw[0])
    return resp


def _comparable(resp: dict[str, Any]) -> tuple[str, tuple[str, ...], bool]:
    diag = resp.get("diagnostics") or {}
    return (str(resp.get("decision")), tuple(sorted(diag.get("reason") or ())),
            bool(diag.get("errors")))


def _agree(fast: dict[str, Any], public: dict[str, Any]) -> bool:
    if _comparable(fast) == _comparable(public):
        return True
    _log.warning("cedarpy fast path disagrees with the public API on a known-answer request "
                 "(%s vs %s); using the public is_authorized", _comparable(fast),
                 _comparable(public))
    return False


def _self_test() -> bool:
    """True when the fast path answers exactly as the public API on known cases."""
    if _RAW is None:
        _log.warning("cedarpy fast path unavailable (no _internal.is_authorized_batch); "
                     "using the public is_authorized")
        return False
    try:
        schema = cedarpy.Schema.from_str(_SELFTEST_SCHEMA)
        policies = cedarpy.PolicySet.from_str(_SELFTEST_POLICIES)
        entities = cedarpy.Entities.from_json_str(orjson.dumps([
            {"uid": {"type": "T::U", "id": "u"}, "attrs": {"n": 1}, "parents": []},
            {"uid": {"type": "T::R", "id": "r"}, "attrs": {}, "parents": []},
        ]).decode(), schema)
        batch = []
        for context, check in (({"k": 1}, schema), ({"k": 0}, schema), ({"k": 7}, schema),
                               ({"k": 5}, schema), ({"k": "x"}, schema), ({"k": 1}, None)):
            req = {"principal": {"type": "T::U", "id": "u"},
                   "action": {"type": "T::Action", "id": "a"},
                   "resource": {"type": "T::R", "id": "r"}, "context": context}
            if check is not None:
                batch.append(req)
            if not _agree(_authorize_fast(req, policies, entities, check),
                          authorize_public(req, policies, entities, check)):
                return False
        fast_all = _authorize_fast_batch(batch, policies, entities, schema)
        public_all = authorize_public_batch(batch, policies, entities, schema)
        if len(fast_all) != len(batch) or not all(
                _agree(f, p) for f, p in zip(fast_all, public_all, strict=True)):
            return False
    except Exception as exc:  # noqa: BLE001 - any failure of the private API: do not use it
        _log.warning("cedarpy fast path failed its self-test (%s); using the public "
                     "is_authorized", type(exc).__name__)
        return False
    return True


def fast_path() -> bool:
    """Whether :func:`authorize` uses the private fast path (runs the self-test once)."""
    ok = _state.get("fast")
    if ok is None:
        with _lock:
            ok = _state.get("fast")
            if ok is None:
                ok = _state["fast"] = _self_test()
    return ok


def authorize(request: dict[str, Any], policies: cedarpy.PolicySet,
              entities: cedarpy.Entities, schema: cedarpy.Schema | None) -> dict[str, Any]:
    """Cedar's raw answer for one request (``decision``, ``diagnostics``).

    Raises:
        ValueError, TypeError: Cedar refused the request or entities outright.
    """
    if fast_path():
        return _authorize_fast(request, policies, entities, schema)
    return authorize_public(request, policies, entities, schema)


def authorize_batch(requests: list[dict[str, Any]], policies: cedarpy.PolicySet,
                    entities: cedarpy.Entities, schema: cedarpy.Schema | None
                    ) -> list[dict[str, Any]]:
    """Cedar's raw answers to ``requests``, all over the one entity set ``entities``.

    Each answer is what :func:`authorize` would give for that request alone (a
    request Cedar cannot build, e.g. one violating ``schema``, is a ``NoDecision``
    answer with the error, not an exception).

    Raises:
        ValueError, TypeError: Cedar refused the batch outright (a request not of
            the request form).
    """
    if fast_path():
        return _authorize_fast_batch(requests, policies, entities, schema)
    return authorize_public_batch(requests, policies, entities, schema)
