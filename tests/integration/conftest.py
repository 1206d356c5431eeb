"""Fixtures for whole-kernel tests: a signed, trusted demo workdir and kernels on it.

``demo_state`` prepares one workdir per session with :func:`vak.demo.prepare_workdir`
(the same code path as ``vak demo``: real build, real keys, real signatures,
real Cedar policies) and keeps the demo's local HTTP server running. Each test
that needs a kernel opens its own with ``kernel`` (the audit log admits one
kernel at a time, so kernels are function-scoped and closed after the test).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kernel_helpers import FORBID_HELLO, HELLO, DemoState, Reloaded, reload_policies

from vak.demo import _local_server, prepare_workdir
from vak.kernel import Kernel


@pytest.fixture(scope="session")
def demo_state(built_skills: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoState]:
    workdir = tmp_path_factory.mktemp("vak-state")
    with _local_server() as port:
        config = prepare_workdir(workdir, port)
        yield DemoState(workdir, config, port)


@pytest.fixture
def kernel(demo_state: DemoState) -> Iterator[Kernel]:
    with Kernel.from_config(demo_state.config) as k:
        yield k


@pytest.fixture(scope="module")
def reloaded(built_skills: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reloaded]:
    """A fresh demo workdir whose kernel read one file, reloaded to a set forbidding
    it (two denied reads), reloaded back and read it again."""
    from vak.config import KernelConfig
    from vak.errors import PolicyDeniedError
    from vak.policy.loader import load_policies

    workdir = tmp_path_factory.mktemp("reload-state")
    extra = tmp_path_factory.mktemp("reload-policies")
    (extra / "ops.cedar").write_text(FORBID_HELLO)
    with _local_server() as port:
        config = prepare_workdir(workdir, port)
        dirs = list(KernelConfig.from_toml(config).all_policy_dirs)
        first, second = load_policies(dirs), load_policies([*dirs, extra])
        with Kernel.from_config(config) as k:
            k.invoke("notes__read", {"path": HELLO}, session="before")
            reload_policies(k, second)
            for _ in range(2):
                with pytest.raises(PolicyDeniedError):
                    k.invoke("notes__read", {"path": HELLO}, session="during")
            reload_policies(k, first)
            k.invoke("notes__read", {"path": HELLO}, session="after")
        yield Reloaded(workdir / "audit" / "vak.log", first, second, dirs, extra)
