"""Shared helpers for the kernel integration tests (imported by conftest and tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DemoState:
    workdir: Path
    config: Path
    port: int

    @property
    def log(self) -> Path:
        return self.workdir / "audit" / "vak.log"

    @property
    def log_pub(self) -> Path:
        return self.workdir / "audit" / "log.key.pub"



def verify(state: DemoState) -> Any:
    """Verify the state's audit log offline; returns the report."""
    from vak.audit.keys import load_trusted_keys
    from vak.audit.verify import verify_log

    return verify_log(state.log, load_trusted_keys(state.log_pub))
