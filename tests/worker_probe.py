"""Test entry point of an OS-sandboxed worker that runs :class:`ProbeRunner`.

Started by tests as ``python -I tests/worker_probe.py`` (``PROBE_COMMAND``):
the real worker loop (:func:`vak.sandbox.worker.main`: pipes, init frame,
``restrict_current_process``, the protocol), with a runner whose exports try
to escape (open files, sockets, fork, exec, signal the parent) and report
what the kernel refused, or misbehave (garbage frames, exit, hang). Kept out
of ``vak/`` so production code carries no probe.
"""

from __future__ import annotations

import ctypes
import os
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

from vak.errors import ABIError
from vak.identity.manifest import Limits
from vak.sandbox.types import CallOutcome, HostHandler
from vak.sandbox.worker import main

#: how tests start a probe worker (``WorkerPool(..., command=PROBE_COMMAND)``)
PROBE_COMMAND = (sys.executable, "-I", str(Path(__file__).resolve()))


def _attempt(action: Callable[[], object]) -> str:
    try:
        action()
    except OSError as exc:
        return f"refused:{exc.errno}"
    return "allowed"


def _libc_call(name: str, *args: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _is_socket(fd: int) -> bool:
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False


class ProbeRunner:
    """A :class:`Runner` whose exports try to escape or misbehave (tests only)."""

    def __init__(self, out_fd: int) -> None:
        self._out_fd = out_fd

    def call(
        self, module_digest: str, export: str, input_json: bytes, limits: Limits,
        host: HostHandler,
    ) -> CallOutcome:
        start = time.monotonic_ns()
        arg = orjson.loads(input_json) if input_json else {}
        hosts = 0
        if export == "probe":
            out: Any = self._probe(int(arg.get("parent_pid", os.getppid())),
                                   int(arg.get("port", 9)))
        elif export == "echo":
            out = arg
        elif export == "host":
            replies = []
            for fn, fargs in arg["calls"]:
                replies.append(orjson.loads(host(fn, orjson.dumps(fargs))))
                hosts += 1
            out = {"replies": replies}
        elif export == "sleep":
            time.sleep(float(arg["seconds"]))
            out = {}
        elif export == "garbage":
            os.write(self._out_fd, b"\x00\x00\x00\x05\x00\x00\x00\x00{bad}")
            time.sleep(60)
            out = {}
        elif export == "exit":
            os._exit(3)
        else:
            raise ABIError(f"probe runner has no export {export!r}", export=export)
        return CallOutcome(orjson.dumps(out), 0, time.monotonic_ns() - start, hosts)

    @staticmethod
    def _probe(parent_pid: int, port: int) -> dict[str, str]:
        results: dict[str, str] = {}

        def connect() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.connect(("127.0.0.1", port))

        def fork() -> None:
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)

        def thread() -> None:
            t = threading.Thread(target=lambda: None)
            t.start()
            t.join()

        probes: dict[str, Callable[[], object]] = {
            "read_file": lambda: open("/etc/passwd", "rb").close(),
            "read_proc_self": lambda: open("/proc/self/status", "rb").close(),
            "write_tmp": lambda: open("/tmp/vak-probe-escape", "wb").close(),
            "list_root": lambda: os.listdir("/"),
            "tcp_connect_loopback": connect,
            "unix_socket": lambda: socket.socket(socket.AF_UNIX).close(),
            "socketpair": lambda: [s.close() for s in socket.socketpair()],
            "fork": fork,
            "exec": lambda: os.execv("/bin/true", ["true"]),
            "signal_parent": lambda: os.kill(parent_pid, 0),
            "signal_group": lambda: os.kill(0, 0),
            "unshare_user": lambda: _libc_call("unshare", 0x10000000),
            "ptrace_parent": lambda: _libc_call("ptrace", 16, parent_pid, 0, 0),
            "thread": thread,
        }
        for name, action in probes.items():
            results[name] = _attempt(action)
        # what a compromised guest could find in memory or among inherited fds
        results["environ"] = ",".join(sorted(os.environ))
        results["inherited_sockets"] = ",".join(
            str(fd) for fd in range(256) if _is_socket(fd))
        return results


def _probe_runner(out_fd: int, header: Mapping[str, Any], module: bytes) -> ProbeRunner:
    return ProbeRunner(out_fd)


if __name__ == "__main__":
    sys.exit(main(make_runner=_probe_runner))
