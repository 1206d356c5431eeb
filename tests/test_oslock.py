"""Tests for vak.sandbox.oslock: the seccomp program (run through a BPF
interpreter written here), the truthfulness of barrier_status(), and a real
restricted subprocess."""

from __future__ import annotations

import ctypes
import platform
import struct
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vak.errors import OSSandboxUnavailableError
from vak.sandbox import oslock

ALLOW = 0x7FFF0000
EPERM = 0x00050001
ENOSYS = 0x00050026
SELF = 4242


def run_bpf(
    prog: list[tuple[int, int, int, int]], arch: int, nr: int, args: tuple[int, ...] = ()
) -> int:
    """A classic-BPF interpreter for the subset the filter uses."""
    full = (list(args) + [0] * 6)[:6]
    data = struct.pack("<iIQ6Q", nr, arch, 0, *full)
    acc = 0
    pc = 0
    while True:
        code, jt, jf, k = prog[pc]
        pc += 1
        if code == 0x20:
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == 0x54:
            acc &= k
        elif code == 0x15:
            pc += jt if acc == k else jf
        elif code == 0x35:
            pc += jt if acc >= k else jf
        elif code == 0x06:
            return k
        else:  # pragma: no cover - a new opcode must be taught here first
            raise AssertionError(f"unknown opcode {code:#x}")


ARCHES = {name: table for name, table in oslock._ARCHES.items()}


@pytest.mark.parametrize("arch", sorted(ARCHES))
def test_every_denied_syscall_answers_eperm(arch: str) -> None:
    table = ARCHES[arch]
    prog = oslock.build_seccomp_filter(arch, SELF)
    for name in oslock.DENIED_SYSCALLS:
        if name in table["nr"]:
            assert run_bpf(prog, table["audit_arch"], table["nr"][name]) == EPERM, name


@pytest.mark.parametrize("arch", sorted(ARCHES))
def test_jumps_stay_inside_the_program(arch: str) -> None:
    prog = oslock.build_seccomp_filter(arch, SELF)
    assert prog[-1] == (0x06, 0, 0, ALLOW)
    for pc, (code, jt, jf, _k) in enumerate(prog):
        if code in (0x15, 0x35):
            assert pc + 1 + max(jt, jf) < len(prog)


CASES = [
    ("clone_thread", "clone", (0x003D0F00,), ALLOW),  # glibc pthread_create flags
    ("clone_fork", "clone", (0x01200011,), EPERM),  # glibc fork(): SIGCHLD|SETTID|CLEARTID
    ("clone_thread_newuser", "clone", (0x003D0F00 | 0x10000000,), EPERM),
    ("clone3", "clone3", (), ENOSYS),
    ("kill_self", "kill", (SELF, 9), ALLOW),
    ("kill_parent", "kill", (1, 0), EPERM),
    ("kill_group", "kill", (0, 0), EPERM),
    ("kill_all", "kill", (0xFFFFFFFF, 9), EPERM),
    ("tgkill_self", "tgkill", (SELF, 7, 10), ALLOW),
    ("tgkill_other", "tgkill", (SELF + 1, SELF + 1, 10), EPERM),
    ("prctl_dumpable", "prctl", (4, 1), EPERM),
    ("prctl_name", "prctl", (15, 0), ALLOW),
    ("ioctl_tiocsti", "ioctl", (2, 0x5412), EPERM),
    ("ioctl_fionread", "ioctl", (3, 0x541B), ALLOW),
    ("socket", "socket", (2, 1, 0), EPERM),
    ("execve", "execve", (), EPERM),
]


@pytest.mark.parametrize("arch", sorted(ARCHES))
@pytest.mark.parametrize(("name", "call", "args", "want"), CASES, ids=[c[0] for c in CASES])
def test_argument_checks(arch: str, name: str, call: str, args: tuple[int, ...], want: int) -> None:
    table = ARCHES[arch]
    prog = oslock.build_seccomp_filter(arch, SELF)
    assert run_bpf(prog, table["audit_arch"], table["nr"][call], args) == want


@pytest.mark.parametrize("arch", sorted(ARCHES))
def test_foreign_arch_is_refused(arch: str) -> None:
    prog = oslock.build_seccomp_filter(arch, SELF)
    assert run_bpf(prog, 0x40000003, 3) == EPERM  # AUDIT_ARCH_I386 read()


def test_x32_syscalls_are_refused() -> None:
    table = ARCHES["x86_64"]
    prog = oslock.build_seccomp_filter("x86_64", SELF)
    assert run_bpf(prog, table["audit_arch"], 0x40000000 | 0) == EPERM


@settings(max_examples=150, deadline=None)
@given(arch=st.sampled_from(sorted(ARCHES)), nr=st.integers(0, 470))
def test_other_syscalls_are_allowed(arch: str, nr: int) -> None:
    table = ARCHES[arch]
    special = {table["nr"][n] for n in (*oslock.DENIED_SYSCALLS, "clone", "clone3", "kill",
                                        "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
                                        "prctl", "ioctl") if n in table["nr"]}
    prog = oslock.build_seccomp_filter(arch, SELF)
    got = run_bpf(prog, table["audit_arch"], nr)
    assert got == (ALLOW if nr not in special else got)
    if nr in {table["nr"][n] for n in oslock.DENIED_SYSCALLS if n in table["nr"]}:
        assert got == EPERM


def test_unknown_arch_raises() -> None:
    with pytest.raises(OSSandboxUnavailableError):
        oslock.build_seccomp_filter("riscv64", SELF)


@pytest.mark.skipif(platform.system() != "Linux", reason="Linux only")
def test_barrier_status_tells_the_truth() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = max(int(libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))), 0)
    status = oslock.barrier_status()
    assert status.landlock_abi == abi
    assert status.landlock_fs == (abi >= 1)
    assert status.landlock_net == (abi >= 4)
    assert ("signal" in status.landlock_scopes) == (abi >= 6)
    assert not status.applied
    d = status.to_dict()
    assert set(d) >= {"platform", "complete", "seccomp", "landlock", "missing", "namespaces"}
    assert d["complete"] == (not {"seccomp", "landlock_fs"} & set(d["missing"]))


@pytest.mark.skipif(not oslock.barrier_status().complete, reason="kernel lacks barriers")
def test_restricted_subprocess_cannot_open_files() -> None:
    script = textwrap.dedent("""
        import os, sys
        from vak.sandbox.oslock import restrict_current_process
        st = restrict_current_process(require=True)
        try:
            open("/etc/passwd", "rb")
            os.write(1, b"opened")
        except PermissionError:
            os.write(1, b"refused %d" % st.threads_at_restrict)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert out.stdout == b"refused 1", out.stderr


@pytest.mark.skipif(not oslock.barrier_status().complete, reason="kernel lacks barriers")
def test_require_refuses_when_threads_already_run() -> None:
    script = textwrap.dedent("""
        import os, threading
        from vak.errors import OSSandboxUnavailableError
        from vak.sandbox.oslock import restrict_current_process
        ev = threading.Event()
        threading.Thread(target=ev.wait, daemon=True).start()
        try:
            restrict_current_process(require=True)
            os.write(1, b"restricted")
        except OSSandboxUnavailableError:
            os.write(1, b"refused")
        ev.set()
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert out.stdout == b"refused", out.stderr
