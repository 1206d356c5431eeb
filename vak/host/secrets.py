"""The secrets family: ``secret_get`` from an operator-configured provider.

Secret *values* never reach the audit log (only the name) or a Python log;
the mediation remembers every value it hands out so the kernel can scrub it
from the skill's output (:meth:`vak.host.mediation.MediatedHandler.scrub`).

Providers implement :class:`SecretProvider`; two ship here: environment
variables mapped by name (the mapping is the operator's; the library reads no
variable it was not told to) and a TOML file of ``NAME = "value"`` rows.

Arguments and replies: docs/HOST-FUNCTIONS.md.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from vak.errors import ConfigError
from vak.host.base import EffectScope, NormalCall
from vak.host.settings import HostSettings

__all__ = [
    "EnvSecretProvider",
    "FileSecretProvider",
    "NoSecrets",
    "SecretProvider",
    "SecretsFamily",
]


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
    config: HostSettings, environ: Mapping[str, str] | None = None
) -> SecretProvider:
    """The provider the host settings describe: ``secrets_file`` if set, else ``secrets_env``.

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
    """``secret_get``; each value handed out is revealed to the scope (for scrubbing)."""

    def __init__(self, provider: SecretProvider) -> None:
        self._provider = provider

    def perform(self, function: str, call: NormalCall, scope: EffectScope, /) -> dict[str, Any]:
        value = self._provider.get(call.target)
        if value is None:
            return {"found": False}
        scope.reveal(value)
        return {"found": True, "value": value}
