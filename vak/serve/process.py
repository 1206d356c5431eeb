"""``ServeProcess``: run ``vak serve`` as a child process and wait until it is ready.

For tests, benchmarks and supervisors written in Python::

    >>> with ServeProcess.start(Path("vak.toml"), workers=2,
    ...                         token_file=Path("tokens.json")) as srv:  # doctest: +SKIP
    ...     srv.url
    'http://127.0.0.1:40123/mcp'

Readiness is the state file the front writes once every worker is ready
(:mod:`vak.serve.control`), so ``listen="127.0.0.1:0"`` (a free port) works.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from vak.config import KernelConfig
from vak.errors import ConfigError
from vak.serve.control import state_path

__all__ = ["ServeProcess"]


class ServeProcess:
    """A running ``vak serve`` child: its state (url, pids, logs) and how to stop it."""

    def __init__(self, process: subprocess.Popen[bytes], state: dict[str, Any],
                 state_file: Path) -> None:
        self.process = process
        self.state = state
        self.state_file = state_file

    @classmethod
    def start(cls, config: Path, *, workers: int = 1, token_file: Path | None = None,
              listen: str = "127.0.0.1:0", timeout: float = 120.0,
              extra: tuple[str, ...] = (), stderr: IO[bytes] | int | None = None
              ) -> ServeProcess:
        """Start ``vak serve`` on ``config`` and wait until every worker is ready.

        Raises:
            ConfigError: it exited or did not become ready within ``timeout``.
        """
        state_file = state_path(KernelConfig.from_toml(config).state_dir.resolve())
        state_file.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "vak.cli.main", "serve", "--config", str(config),
                "--workers", str(workers), "--listen", listen, *extra]
        if token_file is not None:
            argv += ["--token-file", str(token_file)]
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ConfigError(f"vak serve exited with {process.returncode} before ready",
                                  field="vak serve")
            try:
                state = json.loads(state_file.read_text(encoding="utf-8"))
            except (FileNotFoundError, ValueError):
                time.sleep(0.05)
                continue
            if state.get("pid") == process.pid:
                return cls(process, state, state_file)
            time.sleep(0.05)
        process.kill()
        process.wait()
        raise ConfigError(f"vak serve was not ready within {timeout:.0f} s", field="vak serve")

    @property
    def url(self) -> str:
        return str(self.state["url"])

    @property
    def base(self) -> str:
        return self.url.removesuffix("/mcp")

    @property
    def logs(self) -> list[Path]:
        return [Path(w["log"]) for w in self.state["workers"]]

    @property
    def pids(self) -> list[int]:
        return [self.process.pid, *(int(w["pid"]) for w in self.state["workers"])]

    def send(self, sig: int) -> None:
        """Send ``sig`` to the front (SIGHUP: reload; SIGTERM, SIGINT: drain)."""
        self.process.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 90.0) -> int:
        """Send ``sig`` (a drain) and wait; the exit code (0: every log closed)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
