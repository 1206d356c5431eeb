"""What every host-function family gives the mediation, and shared arg helpers.

A family never authorizes or audits: ``prepare`` only validates and
normalises the guest's arguments into a :class:`Prepared` (the Cedar resource,
the action context, an audit summary, the ceiling verdict and the effect to
run *if* the mediation allows it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from vak.errors import ABIError
from vak.host.context import CallContext
from vak.policy.entities import Entity

__all__ = ["Family", "HostEffectError", "Prepared", "arg_bool", "arg_int", "arg_str"]

Effect = Callable[[], dict[str, Any]]


class HostEffectError(Exception):
    """An ordinary failure of an allowed effect, returned to the guest as JSON."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Prepared:
    """A normalised call, ready to be authorized."""

    resource: Entity
    context: Mapping[str, Any]
    #: None when the skill declared the capability; else why it did not
    ceiling_violation: str | None
    effect: Effect
    summary: Mapping[str, Any] = field(default_factory=dict)


class Family(Protocol):
    """One host-function family (fs, net, kv, secrets, obs)."""

    def prepare(self, function: str, args: Mapping[str, Any], ctx: CallContext) -> Prepared:
        """Validate and normalise; raise ABIError or NormalizeError to refuse."""
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
