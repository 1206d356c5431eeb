"""Settings of the fleet room: where a kernel ships its log, which witnesses it asks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from vak.errors import ConfigError

__all__ = ["FleetSettings"]


@dataclass(frozen=True, slots=True)
class FleetSettings:
    """All off by default: a kernel ships and asks witnesses only when configured."""

    #: PostgreSQL URL this kernel's log is shipped to in the background ("" = never)
    ship_to: str = ""
    #: witness submission prefixes (http://host:port[/prefix]) sent each new checkpoint
    witnesses: tuple[str, ...] = ()
    #: witness verifier keys; when set, cosignatures of other keys are dropped
    witness_keys: Path | None = None
    #: how often the background agent looks for new entries and checkpoints
    interval_ms: int = 200

    @property
    def active(self) -> bool:
        return bool(self.ship_to or self.witnesses)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], base: Path, source: str) -> FleetSettings:
        """The ``[fleet]`` table of a vak.toml (relative paths against ``base``).

        Raises:
            ConfigError: an unknown key or a value of the wrong type (named).
        """
        known = {f.name for f in fields(cls)}
        out: dict[str, Any] = {}
        for key, value in data.items():
            where = f"fleet.{key}"
            if key not in known:
                raise ConfigError(f"{source}: unknown setting {where}", file=source,
                                  field=where, valid=sorted(known))
            if key == "ship_to" and not isinstance(value, str):
                raise ConfigError(f"{source}: {where} must be a postgresql:// URL string",
                                  file=source, field=where)
            if key == "witnesses" and not (isinstance(value, list)
                                           and all(isinstance(v, str) for v in value)):
                raise ConfigError(f"{source}: {where} must be a list of URLs", file=source,
                                  field=where)
            if key == "witness_keys":
                if not isinstance(value, str):
                    raise ConfigError(f"{source}: {where} must be a path", file=source,
                                      field=where)
                value = base / Path(value).expanduser()
            if key == "interval_ms" and (type(value) is not int or not 1 <= value <= 60_000):
                raise ConfigError(f"{source}: {where} must be 1..60000", file=source,
                                  field=where)
            out[key] = tuple(value) if key == "witnesses" else value
        return cls(**out)
