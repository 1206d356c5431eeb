"""Private files on disk: key files and secrets, created 0600 and read back bounded.

One story for every private file VAK keeps (a skill author's signing key, the
audit log's key, the log's argument-HMAC secret):

* a file is written to a temporary name with mode 0600, fsynced, then put in
  place with ``link`` (exclusive: an existing file wins, so two processes
  racing to create a key share one) or ``rename`` (replace); it is never
  world-readable, not even briefly, and a crash leaves either the old file or
  the new one;
* a file is read at most :data:`MAX_KEY_FILE_BYTES` (a key file must not
  exhaust memory), and a file holding a secret is refused when group or
  others may read it;
* the audit log's key is an unencrypted PKCS#8 PEM Ed25519 key.

Example::

    >>> key = load_or_create_pem_key(".vak/audit/log.key")      # doctest: +SKIP
    >>> secret = load_or_create_secret(".vak/audit/args.hmac")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vak.errors import ConfigError, KeyFileError

__all__ = [
    "MAX_KEY_FILE_BYTES",
    "file_lock",
    "load_or_create_pem_key",
    "load_or_create_secret",
    "read_key_file",
    "replace_pem_key",
    "write_file_atomic",
    "write_private_file",
]

#: no key file, private or public, is larger than this
MAX_KEY_FILE_BYTES = 64 << 10


def write_file_atomic(path: Path, data: bytes, *, mode: int | None = None,
                      exclusive: bool = False) -> None:
    """Put ``data`` at ``path`` so that a crash leaves the old file or the new one.

    The bytes go to a fresh temporary file in the same directory (created 0600,
    then given ``mode``: by default the mode of the file it replaces, else
    0644), are fsynced, and take the place of ``path`` by ``rename`` or, with
    ``exclusive``, by ``link`` (an existing file wins); the directory is
    fsynced last so the new name survives a power loss too.

    Raises:
        FileExistsError: ``exclusive`` and ``path`` exists (also a symlink).
        OSError: the directory cannot be written.
    """
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        if exclusive:
            os.link(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_private_file(path: Path, data: bytes, *, exclusive: bool = True,
                       mode: int = 0o600) -> None:
    """Put ``data`` at ``path`` atomically, mode 0600 unless told otherwise.

    It is never readable by others, not even briefly. With ``exclusive`` an
    existing file wins (two processes racing to create a key share one).

    Raises:
        FileExistsError: ``exclusive`` and ``path`` exists (also a symlink).
        OSError: the directory cannot be written.
    """
    write_file_atomic(path, data, mode=mode, exclusive=exclusive)


@contextlib.contextmanager
def file_lock(path: Path, what: str = "file") -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<path>.lock`` (read-modify-write of ``path``).

    Raises:
        ConfigError: the lock file cannot be created (the message names ``what``).
    """
    lock = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as exc:
        raise ConfigError(f"{lock}: cannot lock the {what}: {exc.strerror}",
                          file=str(lock)) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_key_file(path: Path, *, private: bool = False,
                  limit: int = MAX_KEY_FILE_BYTES) -> bytes:
    """The bytes of a key file, at most ``limit``; ``private`` also refuses group/other access.

    Raises:
        KeyFileError: missing, unreadable, too large, or (``private``) readable
            by group or others.
    """
    try:
        with path.open("rb") as fh:
            if private and os.fstat(fh.fileno()).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise KeyFileError(
                    f"{path}: private key file is readable by group or others",
                    file=str(path), fix=f"chmod 600 {path}",
                )
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise KeyFileError(
            f"{path}: key file not found", file=str(path),
            fix="create one with: vak-skill-sign keygen --out " + str(path).removesuffix(".pub"),
        ) from None
    except OSError as exc:
        raise KeyFileError(
            f"{path}: cannot read key file: {exc.strerror}", file=str(path)
        ) from None
    if len(data) > limit:
        raise KeyFileError(f"{path}: too large to be a key file", file=str(path),
                           valid=f"at most {limit} bytes")
    return data


def _pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_or_create_pem_key(path: str | Path) -> Ed25519PrivateKey:
    """The Ed25519 key in the PEM file ``path``, generated (0600) on first use.

    Raises:
        KeyFileError: the file is too permissive or is not an unencrypted Ed25519 PEM key.
    """
    path = Path(path)
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            write_private_file(path, _pem(Ed25519PrivateKey.generate()))
    data = read_key_file(path, private=True)
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not a usable Ed25519 private key: {exc}",
                           file=str(path), fix="restore the key file or move it away") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: key is not Ed25519", file=str(path),
                           valid="an Ed25519 PKCS#8 PEM key")
    return loaded


def replace_pem_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write ``key`` to ``path`` (0600), replacing what is there atomically."""
    write_private_file(path, _pem(key), exclusive=False)


def load_or_create_secret(path: str | Path, size: int = 32) -> bytes:
    """A random secret (e.g. the argument HMAC key) in a private file, made on first use.

    Raises:
        KeyFileError: the file is too permissive or too short.
    """
    path = Path(path)
    if not path.exists():
        with contextlib.suppress(FileExistsError):
            write_private_file(path, os.urandom(size))
    data = read_key_file(path, private=True)
    if len(data) < 16:
        raise KeyFileError(f"{path}: secret is shorter than 16 bytes", file=str(path),
                           fix="delete it to have a new one made (old digests stop matching)")
    return data
