"""The secrets family: ``secret_get`` from an operator-configured provider.

Secret *values* never reach the audit log (only the name) or a Python log;
the mediation remembers every value it hands out so the kernel can scrub it
from the skill's output (:meth:`vak.host.mediation.MediatedHandler.scrub`).

Providers implement :class:`SecretProvider`; two ship here: environment
variables mapped by name (the mapping is the operator's; the library reads no
variable it was not told to) and a TOML file of ``NAME = "value"`` rows.

Arguments (JSON): ``{"name"}`` -> ``{"found", "value"?}``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from vak.config import KernelConfig
from vak.errors import ConfigError
from vak.host.base import Prepared, arg_str
from vak.host.context import CallContext
from vak.policy.entities import Entity
from vak.policy.normalize import NormalizeError

__all__ = [
    "EnvSecretProvider",
    "FileSecretProvider",
    "NoSecrets",
    "SecretProvider",
    "SecretsFamily",
]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")


class SecretProvider(Protocol):
    """Where secret values come from."""

    def get(self, name: str) -> str | None:
        """The value of secret ``name``, or None if the provider has none."""
        ...


class NoSecrets:
    """A provider with no secrets (the default)."""

    def get(self, name: str) -> str | None:
        return None


class EnvSecretProvider:
    """Secrets from environment variables: ``names`` maps secret name -> variable."""

    def __init__(
        self, names: Mapping[str, str] | tuple[str, ...], environ: Mapping[str, str] | None = None
    ) -> None:
        self._names = dict(names) if isinstance(names, Mapping) else {n: n for n in names}
        self._environ = os.environ if environ is None else environ

    def get(self, name: str) -> str | None:
        var = self._names.get(name)
        return None if var is None else self._environ.get(var)


class FileSecretProvider:
    """Secrets from a TOML file of ``NAME = "value"`` (read once at construction).

    Raises:
        ConfigError: the file is unreadable or holds a non-string value.
    """

    def __init__(self, path: Path) -> None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read secrets file: {exc}", file=str(path)) from None
        bad = [k for k, v in data.items() if not isinstance(v, str)]
        if bad:
            raise ConfigError(f"{path}: secret values must be strings", file=str(path), keys=bad)
        self._values: dict[str, str] = dict(data)

    def get(self, name: str) -> str | None:
        return self._values.get(name)


def provider_from_config(
    config: KernelConfig, environ: Mapping[str, str] | None = None
) -> SecretProvider:
    """The provider ``config`` describes: ``secrets_file`` if set, else ``secrets_env``.

    ``environ`` is passed by the caller (the CLI passes ``os.environ``); the
    library itself reads no environment variables.

    Raises:
        ConfigError: the secrets file is unreadable or malformed.
    """
    if config.secrets_file is not None:
        return FileSecretProvider(config.secrets_file)
    if config.secrets_env:
        return EnvSecretProvider(config.secrets_env, environ if environ is not None else {})
    return NoSecrets()


class SecretsFamily:
    """``secret_get``; ``reveal`` is told each value handed out (for scrubbing)."""

    def __init__(self, provider: SecretProvider) -> None:
        self._provider = provider

    def prepare(
        self,
        function: str,
        args: Mapping[str, Any],
        ctx: CallContext,
        reveal: Callable[[str], None] | None = None,
    ) -> Prepared:
        name = arg_str(args, "name", max_len=128)
        if not _NAME.match(name):
            raise NormalizeError("secret name must match [A-Za-z_][A-Za-z0-9_.-]{0,127}")
        ceiling = (
            None
            if name in ctx.manifest.capabilities.secrets
            else (f"secret {name} is not among the skill's declared secrets")
        )

        def effect() -> dict[str, Any]:
            value = self._provider.get(name)
            if value is None:
                return {"found": False}
            if reveal is not None:
                reveal(value)
            return {"found": True, "value": value}

        return Prepared(
            Entity("Vak::Secret", name, {"name": name}), {}, ceiling, effect, {"name": name}
        )
