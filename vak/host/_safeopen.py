"""Open a path beneath a root directory without ever following a symlink.

The mediation authorizes a *lexical* normalised path; the effect must touch
exactly that file. On Linux >= 5.6 this is ``openat2`` with
``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`` (called via
``ctypes``, as Python has no wrapper); elsewhere, or when a seccomp filter
refuses the syscall, a component-by-component walk with ``O_NOFOLLOW``. Both
refuse any symlink in the path, including ones that stay inside the root, so a
link cannot redirect an allowed path onto a denied one.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from pathlib import Path

from vak.host.base import HostEffectError

__all__ = ["open_beneath", "openat2_available"]

_SYS_OPENAT2 = 437
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


try:
    _lib = ctypes.CDLL(None, use_errno=True)
    _syscall = _lib.syscall
    _syscall.restype = ctypes.c_long
    _libc: ctypes.CDLL | None = _lib
except (OSError, AttributeError):  # pragma: no cover - non-glibc platforms
    _libc = None

_openat2_ok: bool | None = None if os.uname().sysname == "Linux" else False

_ERRORS = {
    errno.ENOENT: ("not_found", "no such file or directory"),
    errno.ELOOP: ("symlink_refused", "path contains a symbolic link"),
    errno.EXDEV: ("outside_root", "path escapes its mount"),
    errno.EISDIR: ("is_a_directory", "is a directory"),
    errno.ENOTDIR: ("not_a_directory", "not a directory"),
    errno.EACCES: ("permission_denied", "permission denied by the operating system"),
    errno.EPERM: ("permission_denied", "operation not permitted by the operating system"),
    errno.EEXIST: ("exists", "file exists"),
    errno.ENAMETOOLONG: ("name_too_long", "path component too long"),
}


def _effect_error(err: int) -> HostEffectError:
    code, msg = _ERRORS.get(err, ("io_error", os.strerror(err)))
    return HostEffectError(code, msg)


def openat2_available() -> bool:
    """Whether the openat2 path is in use (probed on first open)."""
    return bool(_openat2_ok)


def _openat2(root_fd: int, rel: str, flags: int, mode: int) -> int | None:
    global _openat2_ok
    if _openat2_ok is False or _libc is None:
        return None
    how = _OpenHow(
        flags | os.O_CLOEXEC,
        mode if flags & os.O_CREAT else 0,
        _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS,
    )
    fd = _syscall(
        _SYS_OPENAT2, root_fd, os.fsencode(rel or "."), ctypes.byref(how), ctypes.sizeof(how)
    )
    if fd >= 0:
        _openat2_ok = True
        return int(fd)
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EPERM) and not _openat2_ok:
        _openat2_ok = False  # kernel too old or seccomp: use the walk from now on
        return None
    raise _effect_error(err)


def _walk(root_fd: int, rel: str, flags: int, mode: int) -> int:
    parts = [p for p in rel.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise HostEffectError("outside_root", "path escapes its mount")
    fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            nxt = os.open(
                part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
            )
            os.close(fd)
            fd = nxt
        last = parts[-1] if parts else "."
        return os.open(last, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=fd)
    except OSError as exc:
        err = exc.errno or errno.EIO
        if err == errno.ENOTDIR and exc.filename is not None and _is_link(exc.filename, fd):
            err = errno.ELOOP  # O_DIRECTORY|O_NOFOLLOW on a symlink reports ENOTDIR
        raise _effect_error(err) from None
    finally:
        os.close(fd)


def _is_link(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def open_beneath(root: Path, rel: str, flags: int, mode: int = 0o644) -> int:
    """An fd for ``root/rel`` opened with ``flags``, never via a symlink.

    Raises:
        HostEffectError: not found, symlink, escape, wrong type, OS refusal.
    """
    if "\x00" in rel:
        raise HostEffectError("invalid_path", "path contains NUL")
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise HostEffectError(
            "mount_unavailable", f"mount root unavailable: {exc.strerror}"
        ) from None
    try:
        fd = _openat2(root_fd, rel, flags, mode)
        return fd if fd is not None else _walk(root_fd, rel, flags, mode)
    finally:
        os.close(root_fd)
