"""Fixtures of the secrets and data-flow tests (helpers in ``secret_env``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from secret_env import SecretEnv, build_relay, make_env, recording_server


@pytest.fixture(scope="session")
def relay_wasm(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The hostile ``relay`` skill's module, compiled once."""
    return build_relay(tmp_path_factory.mktemp("relay") / "relay.wasm")


@pytest.fixture
def relay_env(tmp_path: Path, relay_wasm: bytes) -> Iterator[SecretEnv]:
    """A fresh workdir (own audit log, kv, secrets) with its recording HTTP server."""
    with recording_server() as (port, seen):
        yield make_env(tmp_path / "w", relay_wasm, port, seen)
