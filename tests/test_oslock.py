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
    # issue 11: the filter is an allow-list, so it ends in refusal (it used to end in ALLOW)
    assert prog[-1] == (0x06, 0, 0, EPERM)
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


_CHECKED = ("clone", "clone3", "kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
            "prctl", "ioctl")


@settings(max_examples=300, deadline=None)
@given(arch=st.sampled_from(sorted(ARCHES)), nr=st.integers(0, 1 << 12))
def test_only_listed_syscalls_are_allowed(arch: str, nr: int) -> None:
    """Default deny: a syscall passes only if it is on the allow-list (or
    argument-checked); every other number, known or not yet invented, is EPERM."""
    table = ARCHES[arch]
    allowed = {table["nr"][n] for n in oslock.ALLOWED_SYSCALLS if n in table["nr"]}
    checked = {table["nr"][n] for n in _CHECKED}
    got = run_bpf(oslock.build_seccomp_filter(arch, SELF), table["audit_arch"], nr)
    if nr in allowed:
        assert got == ALLOW
    elif nr not in checked:
        assert got == EPERM


@pytest.mark.parametrize("arch", sorted(ARCHES))
def test_allow_list_and_deny_list_are_disjoint_and_known(arch: str) -> None:
    table = ARCHES[arch]["nr"]
    assert not set(oslock.ALLOWED_SYSCALLS) & set(oslock.DENIED_SYSCALLS)
    assert not set(oslock.ALLOWED_SYSCALLS) & set(_CHECKED)
    # every allowed name exists on x86_64; aarch64 lacks only the legacy calls
    missing = [n for n in oslock.ALLOWED_SYSCALLS if n not in table]
    assert missing == ([] if arch == "x86_64" else
                       ["poll", "select", "open", "stat", "lstat", "readlink"])
    assert len(set(table.values())) == len(table)  # no number used twice


#: where each arch's numbers are defined in the system headers (aarch64 uses
#: the generic table, whose 64-bit names carry a __NR3264_ prefix for some calls)
_HEADERS = {
    "x86_64": ("/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm/unistd_64.h"),
    "aarch64": ("/usr/include/asm-generic/unistd.h",),
}
_GENERIC_ALIASES = {"newfstatat": "fstatat"}


def _header_numbers(arch: str) -> dict[str, int]:
    import re
    from pathlib import Path

    for candidate in _HEADERS[arch]:
        path = Path(candidate)
        if path.exists():
            text = path.read_text()
            return {name: int(nr) for name, nr in
                    re.findall(r"#define __NR(?:3264)?_(\w+)\s+(\d+)\b", text)}
    pytest.skip(f"no system header with the {arch} syscall table")


@pytest.mark.parametrize("arch", sorted(ARCHES))
def test_syscall_numbers_match_system_headers(arch: str) -> None:
    headers = _header_numbers(arch)
    table = {**ARCHES[arch]["nr"], **{f"landlock_{k}": v for k, v in oslock._LANDLOCK_NR.items()}}
    checked = 0
    for name, nr in table.items():
        key = _GENERIC_ALIASES.get(name, name) if arch == "aarch64" else name
        assert key in headers, f"{arch}: {name} not in the system header"
        assert headers[key] == nr, f"{arch}: {name} is {headers[key]} in the header, not {nr}"
        checked += 1
    assert checked == len(table)


@pytest.mark.skipif(platform.machine() not in ("x86_64", "aarch64"), reason="table arches only")
def test_native_numbers_match_libc_syscall_h() -> None:
    """The running arch's numbers, asked of the C preprocessor (<sys/syscall.h>)."""
    import shutil

    if shutil.which("gcc") is None:
        pytest.skip("no C compiler")
    table = ARCHES[platform.machine()]["nr"]
    names = sorted(table)
    src = "#include <sys/syscall.h>\n" + "\n".join(f"{n} SYS_{n}" for n in names)
    out = subprocess.run(["gcc", "-E", "-P", "-x", "c", "-"], input=src, text=True,
                         capture_output=True, check=True).stdout
    pairs = (line.split() for line in out.splitlines())
    seen = dict(p for p in pairs if len(p) == 2)
    for name in names:
        assert int(seen[name]) == table[name], name


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
