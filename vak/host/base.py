"""What the catalog's normalisers produce and what the families' effects see.

The split that keeps one monitor:

* a **normaliser** (:mod:`vak.host.calls`, referenced by each catalog row) is a
  pure function of the guest's arguments, the calling skill's name and the host
  settings: it validates and canonicalises them into a :class:`NormalCall` (the
  Cedar resource, the action context, the audit summary, the ceiling's target
  and the effect's parameters). It performs no I/O and decides nothing;
* the **mediation** (:mod:`vak.host.mediation`) alone counts, applies the
  declared-capability ceiling (:mod:`vak.host.ceiling`), asks Cedar, records
  and only then calls the family;
* a **family** (fs, http, kv, secrets, log, clock, random) performs an allowed
  call and returns data (a JSON-ready dict) or raises :class:`HostEffectError`
  for an ordinary failure. A family never returns a verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from vak.errors import ABIError
from vak.host.context import CallCounters
from vak.host.normalize import NormalizedUrl
from vak.policy.entities import Entity
from vak.text import escape

__all__ = [
    "EffectScope",
    "Family",
    "HostEffectError",
    "NormalCall",
    "arg_bool",
    "arg_int",
    "arg_str",
    "excerpt",
]


class HostEffectError(Exception):
    """An ordinary failure of an allowed effect, returned to the guest as JSON."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class NormalCall:
    """One host call's arguments in canonical form: what is decided, recorded, performed."""

    #: the Cedar resource (carries its own exact cache key)
    resource: Entity
    #: the action's Cedar context fields (the mediation adds ``session``)
    context: Mapping[str, Any]
    #: the audit entry's ``summary`` (never a secret value or raw content)
    summary: Mapping[str, Any] = field(default_factory=dict)
    #: what the ceiling tests: the normalised path, key or secret name ('' for none)
    target: str = ""
    #: the effect's inputs (validated), e.g. ``max_bytes``, the bytes to write
    params: Mapping[str, Any] = field(default_factory=dict)
    #: http_request only: the normalised URL
    url: NormalizedUrl | None = None

    @property
    def unresolved(self) -> bool:
        """True for an http call naming a host whose addresses are not yet known."""
        return self.url is not None and self.resource.attrs.get("ip_class") == "unresolved"


class EffectScope(Protocol):
    """What an effect may use of the call it performs (implemented by the handler)."""

    @property
    def counters(self) -> CallCounters: ...

    @property
    def deadline(self) -> float:
        """The invocation's deadline on ``time.monotonic()`` (``inf``: none)."""
        ...

    def reveal(self, value: str, /) -> None:
        """Tell the mediation that ``value`` (a secret) is now known to the guest."""
        ...

    @property
    def labels(self) -> frozenset[str]:
        """The calling session's data-flow labels now (:mod:`vak.host.dataflow`)."""
        ...

    def mark(self, labels: Iterable[str], /) -> None:
        """Add ``labels`` to the calling session (before the data they name reaches it)."""
        ...

    def scrub_text(self, text: str, /) -> str:
        """``text`` with every value revealed to this session redacted."""
        ...


class Family(Protocol):
    """One host-function family: performs allowed calls, returns data."""

    def perform(
        self, function: str, call: NormalCall, scope: EffectScope, /
    ) -> dict[str, Any]:
        """Raises HostEffectError for an ordinary failure (not found, timeout, ...)."""
        ...


def arg_str(
    args: Mapping[str, Any], name: str, *, default: str | None = None, max_len: int = 4096
) -> str:
    """A string argument. Raises ABIError if missing (without default) or mistyped."""
    value = args.get(name, default)
    if not isinstance(value, str):
        raise ABIError(f"host call argument {name!r} must be a string", argument=name)
    if len(value) > max_len:
        raise ABIError(f"host call argument {name!r} longer than {max_len}", argument=name)
    return value


def arg_int(args: Mapping[str, Any], name: str, *, default: int, lo: int, hi: int) -> int:
    """An integer argument within [lo, hi]. Raises ABIError otherwise."""
    value = args.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ABIError(
            f"host call argument {name!r} must be an integer in [{lo}, {hi}]", argument=name
        )
    return value


def arg_bool(args: Mapping[str, Any], name: str, *, default: bool) -> bool:
    """A boolean argument. Raises ABIError if mistyped."""
    value = args.get(name, default)
    if not isinstance(value, bool):
        raise ABIError(f"host call argument {name!r} must be a boolean", argument=name)
    return value


def excerpt(text: str, limit: int | None = 300) -> str:
    """``text`` safe to quote in a message or log line: at most ``limit`` characters
    (``None``: no bound) and every non-printable character escaped (``\\x1b``,
    ``\\n``, ``\\u2028``), so guest text can never forge a line or a terminal escape.
    """
    if limit is not None and len(text) > limit:
        text = text[:limit] + "..."
    return escape(text, backslash=False)  # the one escaping rule (vak.text)
