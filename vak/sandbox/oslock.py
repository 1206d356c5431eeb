"""OS barriers for the sandboxed worker: prctl, rlimits, Landlock, seccomp (ctypes only).

A worker process calls :func:`restrict_current_process` once, after importing
everything it needs and before it touches untrusted input. From then on the
process can use the pipes it already holds and nothing else:

* ``PR_SET_NO_NEW_PRIVS`` (no setuid gains, required by Landlock and seccomp),
  ``PR_SET_DUMPABLE 0`` (no ptrace attach / core by same-uid processes),
  ``PR_SET_PDEATHSIG SIGKILL`` (the worker never outlives its parent thread);
* rlimits: no core dumps, few open files, a CPU-seconds cap (no RLIMIT_FSIZE:
  wasmtime sizes memfd memory images with ftruncate, which it would break);
  no address-space limit (wasmtime reserves large guard regions);
* Landlock with every access right the running kernel's ABI knows handled and
  no rule added: no file may be opened, created or removed, no TCP bind or
  connect (ABI >= 4), no abstract unix sockets and no signals to processes
  outside the domain (ABI >= 6);
* a hand-built seccomp BPF filter (x86_64 and aarch64 tables, arch checked in
  the filter) that is an **allow-list**: only the syscalls in
  :data:`ALLOWED_SYSCALLS` (what CPython, wasmtime and the worker's pipe
  protocol were observed to need after restricting, found with ``strace -f``
  over every shipped and hostile skill) and a few argument-checked ones pass;
  everything else, including any syscall a future kernel adds, answers
  ``EPERM``. Among the argument-checked: ``clone`` only with
  ``CLONE_THREAD|CLONE_VM`` (threads) and no namespace flags; ``clone3``
  answers ``ENOSYS`` so libc falls back to ``clone``, whose flags the filter
  can inspect; signals only to the worker itself; ``prctl`` except the
  dumpable/ptracer options; ``ioctl`` except terminal injection. File opens
  stay on the list so Landlock, not seccomp, refuses them (``EACCES``). The
  syscall numbers are checked in the tests against the system headers.
  ``EPERM`` rather than a kill keeps refusals visible and testable.

Threads: seccomp is installed with ``SECCOMP_FILTER_FLAG_TSYNC`` and so binds
every thread; Landlock (ABI <= 7) binds only the calling thread and the
threads it creates later. :func:`restrict_current_process` reports how many
threads existed when it ran (``threads_at_restrict``); the worker restricts
itself while it is still single-threaded so that nothing escapes either layer.

Example::

    >>> from vak.sandbox.oslock import barrier_status
    >>> barrier_status().to_dict()["platform"]          # doctest: +SKIP
    'linux-x86_64'
"""

from __future__ import annotations

import ctypes
import os
import platform
import resource
import signal
from dataclasses import dataclass, field
from typing import Any

from vak.errors import OSSandboxUnavailableError

__all__ = [
    "ALLOWED_SYSCALLS",
    "DENIED_SYSCALLS",
    "BarrierStatus",
    "barrier_status",
    "build_seccomp_filter",
    "restrict_current_process",
    "sandbox_report",
]

# --- prctl / seccomp / landlock constants (include/uapi/linux/*.h) -----------
_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4
_PR_GET_SECCOMP = 21
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_PTRACER = 0x59616D61

_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_GET_ACTION_AVAIL = 2
_SECCOMP_FILTER_FLAG_TSYNC = 1
_SECCOMP_RET_ALLOW = 0x7FFF0000
_SECCOMP_RET_ERRNO = 0x00050000
_EPERM = 1
_ENOSYS = 38

_LANDLOCK_CREATE_RULESET_VERSION = 1
#: fs access rights known per Landlock ABI (each ABI adds bits on top)
_LANDLOCK_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
_LANDLOCK_NET_ALL = 0b11  # BIND_TCP | CONNECT_TCP, ABI >= 4
_LANDLOCK_SCOPE_ALL = 0b11  # ABSTRACT_UNIX_SOCKET | SIGNAL, ABI >= 6

_CLONE_VM = 0x00000100
_CLONE_THREAD = 0x00010000
#: CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
_CLONE_NS_MASK = 0x7E020000

_TIOCSTI = 0x5412
_TIOCLINUX = 0x541C

_X32_SYSCALL_BIT = 0x40000000

# --- syscall tables (from asm/unistd_64.h of each arch) -----------------------
_ARCHES: dict[str, dict[str, Any]] = {
    "x86_64": {
        "audit_arch": 0xC000003E,
        "nr": {
            "socket": 41, "socketpair": 53, "clone": 56, "clone3": 435, "fork": 57,
            "vfork": 58, "execve": 59, "execveat": 322, "kill": 62, "tkill": 200,
            "tgkill": 234, "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297,
            "pidfd_open": 434, "pidfd_send_signal": 424, "pidfd_getfd": 438,
            "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311,
            "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
            "move_mount": 429, "open_tree": 428, "fsopen": 430, "fsconfig": 431,
            "fsmount": 432, "fspick": 433, "mount_setattr": 442, "unshare": 272,
            "setns": 308, "bpf": 321, "io_uring_setup": 425, "io_uring_enter": 426,
            "io_uring_register": 427, "userfaultfd": 323, "keyctl": 250, "add_key": 248,
            "request_key": 249, "perf_event_open": 298, "kexec_load": 246,
            "kexec_file_load": 320, "init_module": 175, "finit_module": 313,
            "delete_module": 176, "reboot": 169, "swapon": 167, "swapoff": 168,
            "acct": 163, "open_by_handle_at": 304, "name_to_handle_at": 303,
            "kcmp": 312, "process_madvise": 440, "personality": 135, "quotactl": 179,
            "syslog": 103, "iopl": 172, "ioperm": 173, "modify_ldt": 154, "uselib": 134,
            "vhangup": 153, "ioctl": 16, "prctl": 157, "seccomp": 317,
            # the allow-list
            "read": 0, "write": 1, "readv": 19, "writev": 20, "pread64": 17, "close": 3,
            "lseek": 8, "poll": 7, "ppoll": 271, "pselect6": 270, "select": 23, "mmap": 9,
            "munmap": 11, "mprotect": 10, "madvise": 28, "mremap": 25, "brk": 12, "futex": 202,
            "sched_yield": 24, "sched_getaffinity": 204, "getrandom": 318, "gettid": 186,
            "getpid": 39, "getppid": 110, "rseq": 334, "set_robust_list": 273,
            "rt_sigaction": 13, "rt_sigprocmask": 14, "rt_sigreturn": 15, "sigaltstack": 131,
            "clock_nanosleep": 230, "nanosleep": 35, "clock_gettime": 228, "clock_getres": 229,
            "gettimeofday": 96, "exit": 60, "exit_group": 231, "openat": 257, "open": 2,
            "fstat": 5, "newfstatat": 262, "statx": 332, "stat": 4, "lstat": 6, "fcntl": 72,
            "memfd_create": 319, "ftruncate": 77, "membarrier": 324, "prlimit64": 302,
            "getrlimit": 97, "restart_syscall": 219, "uname": 63, "getuid": 102,
            "geteuid": 107, "getgid": 104, "getegid": 108, "getcwd": 79, "readlink": 89,
            "readlinkat": 267,
        },
    },
    "aarch64": {
        "audit_arch": 0xC00000B7,
        "nr": {
            "socket": 198, "socketpair": 199, "clone": 220, "clone3": 435,
            "execve": 221, "execveat": 281, "kill": 129, "tkill": 130, "tgkill": 131,
            "rt_sigqueueinfo": 138, "rt_tgsigqueueinfo": 240, "pidfd_open": 434,
            "pidfd_send_signal": 424, "pidfd_getfd": 438, "ptrace": 117,
            "process_vm_readv": 270, "process_vm_writev": 271, "mount": 40,
            "umount2": 39, "pivot_root": 41, "chroot": 51, "move_mount": 429,
            "open_tree": 428, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
            "fspick": 433, "mount_setattr": 442, "unshare": 97, "setns": 268,
            "bpf": 280, "io_uring_setup": 425, "io_uring_enter": 426,
            "io_uring_register": 427, "userfaultfd": 282, "keyctl": 219, "add_key": 217,
            "request_key": 218, "perf_event_open": 241, "kexec_load": 104,
            "kexec_file_load": 294, "init_module": 105, "finit_module": 273,
            "delete_module": 106, "reboot": 142, "swapon": 224, "swapoff": 225,
            "acct": 89, "open_by_handle_at": 265, "name_to_handle_at": 264,
            "kcmp": 272, "process_madvise": 440, "personality": 92, "quotactl": 60,
            "syslog": 116, "vhangup": 58, "ioctl": 29, "prctl": 167, "seccomp": 277,
            # the allow-list (asm-generic numbering)
            "read": 63, "write": 64, "readv": 65, "writev": 66, "pread64": 67, "close": 57,
            "lseek": 62, "ppoll": 73, "pselect6": 72, "mmap": 222, "munmap": 215,
            "mprotect": 226, "madvise": 233, "mremap": 216, "brk": 214, "futex": 98,
            "sched_yield": 124, "sched_getaffinity": 123, "getrandom": 278, "gettid": 178,
            "getpid": 172, "getppid": 173, "rseq": 293, "set_robust_list": 99,
            "rt_sigaction": 134, "rt_sigprocmask": 135, "rt_sigreturn": 139,
            "sigaltstack": 132, "clock_nanosleep": 115, "nanosleep": 101, "clock_gettime": 113,
            "clock_getres": 114, "gettimeofday": 169, "exit": 93, "exit_group": 94,
            "openat": 56, "fstat": 80, "newfstatat": 79, "statx": 291, "fcntl": 25,
            "memfd_create": 279, "ftruncate": 46, "membarrier": 283, "prlimit64": 261,
            "getrlimit": 163, "restart_syscall": 128, "uname": 160, "getuid": 174,
            "geteuid": 175, "getgid": 176, "getegid": 177, "getcwd": 17, "readlinkat": 78,
        },
    },
}
_LANDLOCK_NR = {"create_ruleset": 444, "restrict_self": 446}  # same on both arches

#: allowed without argument checks (names missing from an arch's table are skipped):
#: memory, threads and futexes, signals (wasmtime's trap handlers), clocks and
#: sleeping (the epoch ticker), the protocol's pipe I/O and polling, memfd images
#: (wasmtime's copy-on-write memory), stat/open (refused by Landlock, not here)
ALLOWED_SYSCALLS: tuple[str, ...] = (
    "read", "write", "readv", "writev", "pread64", "close", "lseek", "poll", "ppoll",
    "pselect6", "select", "mmap", "munmap", "mprotect", "madvise", "mremap", "brk", "futex",
    "sched_yield", "sched_getaffinity", "getrandom", "gettid", "getpid", "getppid", "rseq",
    "set_robust_list", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack",
    "clock_nanosleep", "nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "exit",
    "exit_group", "openat", "open", "fstat", "newfstatat", "statx", "stat", "lstat", "fcntl",
    "memfd_create", "ftruncate", "membarrier", "prlimit64", "getrlimit", "restart_syscall",
    "uname", "getuid", "geteuid", "getgid", "getegid", "getcwd", "readlink", "readlinkat",
)
#: known-dangerous syscalls, named so tests hold the filter to refusing them
#: (the default already refuses them: they are not on the allow-list)
DENIED_SYSCALLS: tuple[str, ...] = (
    "socket", "socketpair", "fork", "vfork", "execve", "execveat", "tkill",
    "pidfd_open", "pidfd_send_signal", "pidfd_getfd", "ptrace", "process_vm_readv",
    "process_vm_writev", "mount", "umount2", "pivot_root", "chroot", "move_mount",
    "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "unshare",
    "setns", "bpf", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "userfaultfd", "keyctl", "add_key", "request_key", "perf_event_open", "kexec_load",
    "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
    "swapon", "swapoff", "acct", "open_by_handle_at", "name_to_handle_at", "kcmp",
    "process_madvise", "personality", "quotactl", "syslog", "iopl", "ioperm",
    "modify_ldt", "uselib", "vhangup",
)
#: allowed only when the first argument (pid / tgid) is the worker itself
_SELF_PID_SYSCALLS = ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")

# --- classic BPF ------------------------------------------------------------
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_AND_K = 0x54
_RET_K = 0x06
_OFF_NR = 0
_OFF_ARCH = 4
_OFF_ARG0_LO = 16
_OFF_ARG1_LO = 24


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


class _LandlockRulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


Insn = tuple[int, int, int, int]


def _deny(errno: int = _EPERM) -> Insn:
    return (_RET_K, 0, 0, _SECCOMP_RET_ERRNO | errno)


def _allow() -> Insn:
    return (_RET_K, 0, 0, _SECCOMP_RET_ALLOW)


def _load(offset: int) -> Insn:
    return (_LD_W_ABS, 0, 0, offset)


def _on_nr(nr: int, block: list[Insn]) -> list[Insn]:
    """``if nr == N: <block>`` (the block must end in a return); falls through otherwise."""
    if len(block) > 255:
        raise ValueError("seccomp block too long for a BPF jump")
    return [(_JEQ_K, 0, len(block), nr), *block, _load(_OFF_NR)]


def build_seccomp_filter(arch: str, self_pid: int) -> list[Insn]:
    """The worker's seccomp program as ``(code, jt, jf, k)`` instructions.

    Kept pure (no syscalls) so tests can inspect it on any machine.

    Raises:
        OSSandboxUnavailableError: ``arch`` has no syscall table here.
    """
    table = _ARCHES.get(arch)
    if table is None:
        raise OSSandboxUnavailableError(
            f"no seccomp syscall table for architecture {arch!r}", arch=arch,
            supported=sorted(_ARCHES),
        )
    nr: dict[str, int] = table["nr"]
    prog: list[Insn] = [
        _load(_OFF_ARCH),
        (_JEQ_K, 1, 0, table["audit_arch"]),
        _deny(),  # a foreign syscall ABI (e.g. i386 int 0x80): numbers mean other things
        _load(_OFF_NR),
    ]
    if arch == "x86_64":
        prog += [(_JGE_K, 0, 1, _X32_SYSCALL_BIT), _deny()]
    prog += _on_nr(nr["clone3"], [_deny(_ENOSYS)])
    prog += _on_nr(nr["clone"], [
        _load(_OFF_ARG0_LO),
        (_AND_K, 0, 0, _CLONE_NS_MASK),
        (_JEQ_K, 1, 0, 0),
        _deny(),
        _load(_OFF_ARG0_LO),
        (_AND_K, 0, 0, _CLONE_THREAD | _CLONE_VM),
        (_JEQ_K, 0, 1, _CLONE_THREAD | _CLONE_VM),
        _allow(),
        _deny(),
    ])
    for name in _SELF_PID_SYSCALLS:
        prog += _on_nr(nr[name], [
            _load(_OFF_ARG0_LO), (_JEQ_K, 0, 1, self_pid & 0xFFFFFFFF), _allow(), _deny(),
        ])
    prog += _on_nr(nr["prctl"], [
        _load(_OFF_ARG0_LO),
        (_JEQ_K, 2, 0, _PR_SET_DUMPABLE),
        (_JEQ_K, 1, 0, _PR_SET_PTRACER),
        _allow(),
        _deny(),
    ])
    prog += _on_nr(nr["ioctl"], [
        _load(_OFF_ARG1_LO),
        (_JEQ_K, 2, 0, _TIOCSTI),
        (_JEQ_K, 1, 0, _TIOCLINUX),
        _allow(),
        _deny(),
    ])
    for name in ALLOWED_SYSCALLS:
        if name in nr:
            prog += [(_JEQ_K, 0, 1, nr[name]), _allow()]
    prog.append(_deny())  # default: refuse whatever is not on the list
    return prog


# --- status -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BarrierStatus:
    """What the running kernel offers (``barrier_status``) or what was applied.

    ``to_dict()`` is the shape ``vak status --json`` shows under ``os_sandbox``.
    """

    platform: str
    arch_supported: bool
    no_new_privs: bool
    seccomp: bool
    seccomp_tsync: bool
    landlock_abi: int  # 0: Landlock unavailable
    landlock_fs: bool
    landlock_net: bool
    landlock_scopes: tuple[str, ...]
    namespaces: bool = False  # not used: Landlock + seccomp need no privileges
    applied: bool = False  # True when describing a process that restricted itself
    threads_at_restrict: int = 0
    missing: tuple[str, ...] = field(default=())

    @property
    def complete(self) -> bool:
        """Both mandatory barriers (Landlock fs and seccomp) are available."""
        return self.seccomp and self.landlock_fs and self.arch_supported

    def to_dict(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "complete": self.complete,
            "applied": self.applied,
            "no_new_privs": self.no_new_privs,
            "seccomp": {"available": self.seccomp, "tsync": self.seccomp_tsync},
            "landlock": {
                "abi": self.landlock_abi,
                "fs": self.landlock_fs,
                "net": self.landlock_net,
                "scopes": list(self.landlock_scopes),
            },
            "namespaces": self.namespaces,
            "threads_at_restrict": self.threads_at_restrict,
            "missing": list(self.missing),
        }


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _arch() -> str:
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def _landlock_abi(libc: ctypes.CDLL) -> int:
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(
        ctypes.c_long(_LANDLOCK_NR["create_ruleset"]), None, ctypes.c_size_t(0),
        ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION),
    )
    return max(int(abi), 0)


def _landlock_masks(abi: int) -> tuple[int, int, int]:
    fs = 0
    for level, mask in _LANDLOCK_FS_BY_ABI.items():
        if abi >= level:
            fs = mask
    net = _LANDLOCK_NET_ALL if abi >= 4 else 0
    scoped = _LANDLOCK_SCOPE_ALL if abi >= 6 else 0
    return fs, net, scoped


def _seccomp_available(libc: ctypes.CDLL) -> bool:
    if platform.system() != "Linux" or _arch() not in _ARCHES:
        return False
    libc.prctl.restype = ctypes.c_int
    if libc.prctl(_PR_GET_SECCOMP, 0, 0, 0, 0) < 0:
        return False
    action = ctypes.c_uint32(_SECCOMP_RET_ERRNO)
    nr = _ARCHES[_arch()]["nr"]["seccomp"]
    return int(libc.syscall(nr, _SECCOMP_GET_ACTION_AVAIL, 0, ctypes.byref(action))) == 0


def _status(libc: ctypes.CDLL, *, applied: bool, threads: int, nnp: bool) -> BarrierStatus:
    arch = _arch()
    linux = platform.system() == "Linux"
    abi = _landlock_abi(libc) if linux else 0
    fs, net, scoped = _landlock_masks(abi)
    seccomp = linux and _seccomp_available(libc)
    scopes = tuple(n for bit, n in ((1, "abstract_unix_socket"), (2, "signal")) if scoped & bit)
    missing = []
    if not seccomp:
        missing.append("seccomp")
    if not fs:
        missing.append("landlock_fs")
    if not net:
        missing.append("landlock_net")
    if not scoped:
        missing.append("landlock_scope")
    return BarrierStatus(
        platform=f"{platform.system().lower()}-{arch}",
        arch_supported=arch in _ARCHES,
        no_new_privs=nnp,
        seccomp=seccomp,
        seccomp_tsync=seccomp,
        landlock_abi=abi,
        landlock_fs=bool(fs),
        landlock_net=bool(net),
        landlock_scopes=scopes,
        applied=applied,
        threads_at_restrict=threads,
        missing=tuple(missing),
    )


def barrier_status() -> BarrierStatus:
    """Probe, without restricting anything, which barriers this kernel offers.

    Never raises: a barrier that cannot be probed is reported as missing.
    """
    try:
        return _status(_libc(), applied=False, threads=0, nnp=linux_supported())
    except OSError:
        return BarrierStatus(
            platform=f"{platform.system().lower()}-{_arch()}", arch_supported=False,
            no_new_privs=False, seccomp=False, seccomp_tsync=False, landlock_abi=0,
            landlock_fs=False, landlock_net=False, landlock_scopes=(),
            missing=("seccomp", "landlock_fs", "landlock_net", "landlock_scope"),
        )


def linux_supported() -> bool:
    """``PR_SET_NO_NEW_PRIVS`` exists on every Linux this code supports (>= 3.5)."""
    return platform.system() == "Linux"


# --- applying ---------------------------------------------------------------
def _check(ret: int, what: str) -> None:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSSandboxUnavailableError(f"{what} failed: {os.strerror(err)}", errno=err)


def _set_rlimits(cpu_seconds: int, max_open_files: int) -> None:
    for res, value in (
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NOFILE, max_open_files),
        (resource.RLIMIT_MEMLOCK, 0),
        (resource.RLIMIT_MSGQUEUE, 0),
        (resource.RLIMIT_CPU, cpu_seconds),
    ):
        _soft, hard = resource.getrlimit(res)
        capped = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(res, (capped, capped))


def _apply_landlock(libc: ctypes.CDLL, abi: int) -> None:
    fs, net, scoped = _landlock_masks(abi)
    attr = _LandlockRulesetAttr(fs, net, scoped)
    size = 8 if abi < 4 else (16 if abi < 6 else 24)
    fd = int(libc.syscall(
        ctypes.c_long(_LANDLOCK_NR["create_ruleset"]), ctypes.byref(attr),
        ctypes.c_size_t(size), ctypes.c_uint32(0),
    ))
    _check(fd, "landlock_create_ruleset")
    try:
        _check(int(libc.syscall(
            ctypes.c_long(_LANDLOCK_NR["restrict_self"]), ctypes.c_int(fd), ctypes.c_uint32(0),
        )), "landlock_restrict_self")
    finally:
        os.close(fd)


def _apply_seccomp(libc: ctypes.CDLL, arch: str) -> None:
    prog = build_seccomp_filter(arch, os.getpid())
    insns = (_SockFilter * len(prog))(*[_SockFilter(*i) for i in prog])
    fprog = _SockFprog(len(prog), ctypes.cast(insns, ctypes.POINTER(_SockFilter)))
    ret = int(libc.syscall(
        ctypes.c_long(_ARCHES[arch]["nr"]["seccomp"]), ctypes.c_uint(_SECCOMP_SET_MODE_FILTER),
        ctypes.c_uint(_SECCOMP_FILTER_FLAG_TSYNC), ctypes.byref(fprog),
    ))
    if ret > 0:
        raise OSSandboxUnavailableError(f"seccomp TSYNC failed: thread {ret} cannot sync")
    _check(ret, "seccomp(SET_MODE_FILTER)")


def restrict_current_process(
    *, require: bool, cpu_seconds: int = 3600, max_open_files: int = 64
) -> BarrierStatus:
    """Lock this process down for good; returns what was applied.

    Irreversible: call it only in a dedicated worker process. Fails closed on
    any error in a barrier it attempts; a barrier the kernel lacks is skipped
    unless ``require`` is set.

    Raises:
        OSSandboxUnavailableError: a barrier failed to apply, or ``require`` is
            set and Landlock or seccomp is unavailable or other threads exist.
    """
    if platform.system() != "Linux":
        raise OSSandboxUnavailableError("the OS sandbox needs Linux (Landlock + seccomp)")
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    libc.prctl.restype = ctypes.c_int
    parent = os.getppid()
    threads = len(os.listdir("/proc/self/task"))
    offered = _status(libc, applied=False, threads=threads, nnp=True)
    if require and not offered.complete:
        raise OSSandboxUnavailableError(
            "require_os_sandbox is set but barriers are missing: "
            + ", ".join(offered.missing), missing=list(offered.missing),
        )
    if require and threads > 1:
        # Landlock (ABI <= 7) would not bind the other threads: refuse rather
        # than run with a barrier that has holes.
        raise OSSandboxUnavailableError(
            f"{threads} threads exist before restricting; Landlock would bind only one",
            threads=threads,
        )
    _check(libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0), "PR_SET_PDEATHSIG")
    if os.getppid() != parent:  # the parent died before PDEATHSIG was armed
        os._exit(70)
    _set_rlimits(cpu_seconds, max_open_files)
    _check(libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0), "PR_SET_DUMPABLE")
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
    if offered.landlock_fs:
        _apply_landlock(libc, offered.landlock_abi)
    if offered.seccomp:
        _apply_seccomp(libc, _arch())
    return _status_applied(offered)


def _status_applied(offered: BarrierStatus) -> BarrierStatus:
    # Probing after the fact would need syscalls the filter may refuse; the
    # applied set is exactly what was offered (each step raised on failure).
    return BarrierStatus(
        platform=offered.platform, arch_supported=offered.arch_supported, no_new_privs=True,
        seccomp=offered.seccomp, seccomp_tsync=offered.seccomp, landlock_abi=offered.landlock_abi,
        landlock_fs=offered.landlock_fs, landlock_net=offered.landlock_net,
        landlock_scopes=offered.landlock_scopes, applied=True,
        threads_at_restrict=offered.threads_at_restrict, missing=offered.missing,
    )


# --- the kernel's view -------------------------------------------------------
def sandbox_report(allow_unsandboxed: bool) -> dict[str, Any]:
    """What this host's OS sandbox means for untrusted skills, for the audit log
    (a ``sandbox_degraded`` entry when ``degraded``) and ``vak status``.

    ``untrusted`` is ``"sandboxed"`` (every mandatory barrier present),
    ``"refused"`` (barriers missing: the worker pool refuses untrusted skills)
    or ``"unsandboxed"`` (missing, and the operator set ``allow_unsandboxed``).
    Never raises (see :func:`barrier_status`).
    """
    status = barrier_status()
    degraded = not status.complete
    untrusted = {(False, False): "sandboxed", (False, True): "sandboxed",
                 (True, False): "refused", (True, True): "unsandboxed"}[
        (degraded, bool(allow_unsandboxed))]
    missing = list(status.missing) if degraded else []
    if degraded and not missing:
        missing = ["arch_supported"]
    return {
        "degraded": degraded,
        "missing": missing,
        "platform": status.platform,
        "untrusted": untrusted,
        "allow_unsandboxed": bool(allow_unsandboxed),
    }
