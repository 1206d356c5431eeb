"""The composition root: a constructor that fails at any step leaves nothing open.

Each case makes ``Kernel.__init__`` fail *after* the audit log (and its commit
thread), the engine (and its epoch ticker) and, where it applies, the worker
pool were opened. Afterwards no VAK thread may be left running, the log's lock
must be released, and a new ``Kernel`` on the same state must work in the same
process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kernel_helpers import DemoState, verify

from vak.config import KernelConfig
from vak.errors import ConfigError, ManifestError, PolicyError, VakError
from vak.kernel import Kernel

ADD = {"operation": "add", "a": 2, "b": 3}


def _vak_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("vak-") and t.is_alive()}


def _bad_policy(cfg: KernelConfig, tmp: Path) -> KernelConfig:
    bad = tmp / "bad-policies"
    bad.mkdir()
    (bad / "broken.cedar").write_text("permit(principal, action, resource) when { nonsense };")
    return cfg.with_(policy_dirs=(*cfg.policy_dirs, bad))


def _missing_skill(cfg: KernelConfig, tmp: Path) -> KernelConfig:
    # strict: a skill that fails to load stops the start (else it is recorded and skipped)
    return cfg.with_(skill_dirs=(*cfg.skill_dirs, tmp / "no-such-skill"), strict_skills=True)


def _missing_skill_with_workers(cfg: KernelConfig, tmp: Path) -> KernelConfig:
    return _missing_skill(cfg, tmp).with_(force_worker=True)


def _missing_secrets_file(cfg: KernelConfig, tmp: Path) -> KernelConfig:
    return cfg.with_(secrets_file=tmp / "absent-secrets.toml")


CASES: list[tuple[Callable[[KernelConfig, Path], KernelConfig], type[VakError]]] = [
    (_bad_policy, PolicyError),
    (_missing_skill, ManifestError),
    (_missing_skill_with_workers, ManifestError),
    (_missing_secrets_file, ConfigError),
]


@pytest.mark.parametrize(("breaker", "error"), CASES,
                         ids=["bad-policy", "skill-load", "skill-load-workers", "secrets-file"])
def test_failed_constructor_releases_everything(
    demo_state: DemoState, tmp_path: Path,
    breaker: Callable[[KernelConfig, Path], KernelConfig], error: type[VakError],
) -> None:
    good = KernelConfig.from_toml(demo_state.config)
    before = _vak_threads()
    with pytest.raises(error):
        Kernel(breaker(good, tmp_path))
    deadline = time.monotonic() + 5
    while _vak_threads() - before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _vak_threads() - before == set()
    # the log's lock is free and its chain intact: a new kernel opens and appends
    with Kernel(good) as kernel:
        assert kernel.invoke("calculator__execute", ADD).output == {"result": 5}
    report = verify(demo_state)
    assert report.result.name == "OK", report.render()


def test_failed_constructor_twice_in_a_row(demo_state: DemoState, tmp_path: Path) -> None:
    good = KernelConfig.from_toml(demo_state.config)
    for attempt in range(2):
        with pytest.raises(ManifestError):
            Kernel(_missing_skill(good, tmp_path / str(attempt)))
    with Kernel(good) as kernel:
        assert kernel.skills()


def test_kernel_accepts_an_injected_secret_provider(demo_state: DemoState) -> None:
    class Fixed:
        def get(self, name: str) -> str | None:
            return "v" if name == "API_TOKEN" else None

    with Kernel(KernelConfig.from_toml(demo_state.config), secrets=Fixed()) as kernel:
        assert kernel.tools()
