"""The secrets family: ``secret_get`` from an operator-configured provider.

Secret *values* never reach the audit log (only the name), a Python log, an
error or a skill's output: a ``secret_get`` marks the session with
``secret:<name>`` (:mod:`vak.host.dataflow`) *before* the value is handed
out, and everything the session then shows the world passes that session's
:class:`vak.scrub.Scrubber`, built from :meth:`SecretsFamily.values_of` of
the secrets it holds -- which also covers a session marked by reading back a
kv value another invocation stored.

Providers implement :class:`SecretProvider`; two ship here: environment
variables mapped by name (the mapping is the operator's; the library reads no
variable it was not told to) and a TOML file of ``NAME = "value"`` rows.

Arguments and replies: docs/HOST-FUNCTIONS.md.
"""

from __future__ import annotations

import os
import threading
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from vak.errors import ConfigError
from vak.host.base import EffectScope, NormalCall
from vak.host.dataflow import secret_label
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
    """``secret_get``; remembers every value it hands out, by name (for scrubbing).

    The session is marked ``secret:<name>`` and the value revealed to the
    scope before it leaves :meth:`perform`, so the guest never holds a value
    its session's scrubber does not know. ``on_new_value`` is told when a
    value is recorded for the first time (cached scrubbers must include it).
    """

    def __init__(self, provider: SecretProvider,
                 on_new_value: Callable[[], None] | None = None) -> None:
        self._provider = provider
        self._revealed: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()
        self._on_new_value = on_new_value

    def values_of(self, name: str) -> frozenset[str]:
        """Every value of secret ``name`` handed out so far, and its current value.

        The current value is asked of the provider too, so a session marked
        ``secret:<name>`` by a kv row from before a restart is still scrubbed.
        """
        current = self._provider.get(name)
        known = self._revealed.get(name, frozenset())
        return known | {current} if current is not None else known

    def revealed(self) -> frozenset[str]:
        """Every value handed out so far, of any secret."""
        return frozenset().union(*self._revealed.values())

    def _record(self, name: str, value: str) -> None:
        with self._lock:
            known = self._revealed.get(name, frozenset())
            if value in known:
                return
            self._revealed[name] = known | {value}
        if self._on_new_value is not None:
            self._on_new_value()

    def perform(self, function: str, call: NormalCall, scope: EffectScope, /) -> dict[str, Any]:
        name = call.target
        value = self._provider.get(name)
        if value is None:
            return {"found": False}
        self._record(name, value)
        scope.mark((secret_label(name),))  # marked before the guest has the value
        scope.reveal(value)
        return {"found": True, "value": value}
