"""Cedar entities and requests built from skills and normalised targets.

The shapes here are the ones ``policies/vak.cedarschema`` declares:

* principal ``Vak::Skill::"<name>"`` with the signed manifest's identity and
  declared capabilities (fs grants as sets of ``Vak::Dir``), built by the
  mediation (:func:`vak.host.principal.principal_for`), which owns argument and
  grant normalisation; this module takes paths already normalised;
* resources ``Vak::File``/``Vak::Dir`` (parents = every ancestor ``Dir``; a
  file is also in the ``Dir`` of its own path, so single-file grants work),
  ``Vak::Url``, ``Vak::KvKey`` in ``Vak::KvNamespace``, ``Vak::Secret`` and
  ``Vak::Kernel::"local"`` for observability calls.

A request's :meth:`CedarRequest.cache_key` is the exact canonical request
(principal fingerprint, action, resource with attributes and parents,
context), so two requests share a cached decision only if Cedar would see the
same input. Every :class:`Entity` carries its own exact key (:attr:`Entity.key`,
computed once at construction) so that the decision cache can be consulted
without re-encoding the resource on every call.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "CedarRequest",
    "Entity",
    "Principal",
    "ancestors",
    "dir_entity",
    "file_entity",
    "kernel_entity",
    "request_record",
]

_DUMP = orjson.OPT_SORT_KEYS


@dataclass(frozen=True, slots=True)
class Entity:
    """One Cedar entity: uid, attributes (JSON-ready) and parent uids."""

    type: str
    id: str
    attrs: Mapping[str, Any] = field(default_factory=dict)
    parents: tuple[tuple[str, str], ...] = ()
    #: canonical bytes of everything Cedar sees of this entity (type-exact: 1, 1.0
    #: and true differ), used in decision-cache keys
    key: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = orjson.dumps([self.type, self.id, self.attrs, self.parents], option=_DUMP)
        object.__setattr__(self, "key", key)

    @property
    def uid(self) -> dict[str, str]:
        return {"type": self.type, "id": self.id}

    @property
    def display(self) -> str:
        """Cedar surface form, e.g. ``Vak::File::"/workspace/a.txt"`` (for logs)."""
        return f"{self.type}::{orjson.dumps(self.id).decode()}"

    def to_json(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "attrs": dict(self.attrs),
            "parents": [{"type": t, "id": i} for t, i in self.parents],
        }


@dataclass(frozen=True, slots=True)
class Principal:
    """The skill entity plus a fingerprint of everything Cedar sees of it."""

    entity: Entity
    fingerprint: str

    @classmethod
    def of(cls, entity: Entity) -> Principal:
        """``entity`` with the sha256 of everything Cedar sees of it as its fingerprint."""
        fp = hashlib.sha256(orjson.dumps(entity.to_json(), option=_DUMP)).hexdigest()
        return cls(entity, fp)


def ancestors(path: str) -> tuple[str, ...]:
    """Every proper ancestor of a normalised path, nearest last: ``/a/b`` -> ``('/', '/a')``."""
    if path == "/":
        return ()
    parts = path.split("/")[1:-1]
    out = ["/"]
    for i in range(len(parts)):
        out.append("/" + "/".join(parts[: i + 1]))
    return tuple(out)


def _parents(path: str, include_self: bool) -> tuple[tuple[str, str], ...]:
    chain = ancestors(path) + ((path,) if include_self else ())
    return tuple(("Vak::Dir", p) for p in chain)


@functools.lru_cache(maxsize=4096)
def file_entity(path: str) -> Entity:
    """A ``Vak::File`` for a normalised guest path."""
    return Entity("Vak::File", path, {"path": path}, _parents(path, include_self=True))


@functools.lru_cache(maxsize=4096)
def dir_entity(path: str) -> Entity:
    """A ``Vak::Dir`` for a normalised guest path."""
    return Entity("Vak::Dir", path, {"path": path}, _parents(path, include_self=False))


def kernel_entity() -> Entity:
    """The resource of calls that touch no named target (log, clock, random)."""
    return Entity("Vak::Kernel", "local")


@dataclass(frozen=True, slots=True)
class CedarRequest:
    """Everything one authorization needs; ``cache_key`` identifies it exactly."""

    principal: Principal
    action: str  # action id, e.g. 'fs_read'
    resource: Entity
    context: Mapping[str, Any]

    def cache_key(self) -> bytes:
        """Canonical bytes of the whole request (two requests Cedar sees alike)."""
        return orjson.dumps(
            [self.principal.fingerprint, self.action, self.resource.key, self.context],
            option=_DUMP,
        )

    def to_cedar(self) -> dict[str, Any]:
        """The request dict for ``cedarpy.is_authorized``."""
        return {
            "principal": self.principal.entity.uid,
            "action": {"type": "Vak::Action", "id": self.action},
            "resource": self.resource.uid,
            "context": dict(self.context),
        }

    def to_data(self) -> dict[str, Any]:
        """The request as replayable data (for ``vak policy test`` and logs)."""
        return {
            "principal": self.principal.entity.to_json(),
            "action": self.action,
            "resource": self.resource.to_json(),
            "context": dict(self.context),
        }


def request_record(
    principal: Principal, action: str, resource: Entity, context: Mapping[str, Any]
) -> dict[str, Any]:
    """The Cedar request as a ``host_decision`` entry records it, for replay.

    The principal is named by fingerprint (its entity is recorded once, in
    ``skill_loaded``); resource entity and context are recorded whole, since
    they are what Cedar saw (docs/AUDIT-FORMAT.md, section 10).
    """
    return {
        "principal": principal.fingerprint,
        "action": action,
        "resource": resource.to_json(),
        "context": dict(context),
    }
