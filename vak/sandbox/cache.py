"""On-disk cache of compiled modules, so a restarted kernel does not recompile.

Deserialising compiled code runs whatever machine code the file holds, so the
cache is treated as a trust boundary:

* the directory is private (created ``0700``; if it is group/world accessible
  or owned by someone else the cache is refused and every module compiles);
* each entry carries an HMAC-SHA256 over its bytes and its key, under a random
  32-byte key kept in the cache directory (``0600``); an entry whose tag does
  not verify is deleted and recompiled, never deserialised;
* the entry name binds the module digest, the wasmtime version and the engine
  settings fingerprint, so an upgrade or a config change misses cleanly.

    >>> import tempfile, pathlib
    >>> c = ModuleCache(pathlib.Path(tempfile.mkdtemp()) / "c", "fp")
    >>> c.load("ab" * 32) is None
    True
    >>> c.store("ab" * 32, b"compiled")
    >>> c.load("ab" * 32)
    b'compiled'
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

import wasmtime

__all__ = ["ModuleCache"]

_TAG = 32


class _Serializable(Protocol):
    def serialize(self) -> bytearray: ...


_Compiled = TypeVar("_Compiled", bound=_Serializable)


class ModuleCache:
    """Keyed-digest-checked store of serialized modules under one private dir."""

    def __init__(self, directory: Path | None, fingerprint: str) -> None:
        """Open (creating if needed) the cache in ``directory``; None disables it."""
        self._dir = Path(directory) if directory is not None else Path()
        self._fingerprint = fingerprint
        self._key: bytes | None = self._open() if directory is not None else None

    @property
    def enabled(self) -> bool:
        """False when the directory is not private to us (the cache is skipped)."""
        return self._key is not None

    def _open(self) -> bytes | None:
        try:
            self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = self._dir.stat()
            if st.st_uid != os.getuid() or stat.S_IMODE(st.st_mode) & 0o077:
                return None
            key_path = self._dir / "cache.key"
            try:
                fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                kst = key_path.stat()
                if kst.st_uid != os.getuid() or stat.S_IMODE(kst.st_mode) & 0o077:
                    return None
                key = key_path.read_bytes()
                return key if len(key) == 32 else None
            key = secrets.token_bytes(32)
            with os.fdopen(fd, "wb") as fh:
                fh.write(key)
            return key
        except OSError:
            return None

    def _entry(self, digest: str) -> tuple[Path, bytes]:
        name = hashlib.sha256(f"{digest}\0{self._fingerprint}".encode()).hexdigest()
        return self._dir / f"{name}.cwasm", name.encode()

    def _tag(self, name: bytes, data: bytes) -> bytes:
        assert self._key is not None
        return hmac.new(self._key, name + b"\0" + data, hashlib.sha256).digest()

    def load(self, digest: str) -> bytes | None:
        """The serialized module for ``digest`` if present and authentic, else None."""
        if self._key is None:
            return None
        path, name = self._entry(digest)
        try:
            blob = path.read_bytes()
        except OSError:
            return None
        tag, data = blob[:_TAG], blob[_TAG:]
        if len(tag) != _TAG or not hmac.compare_digest(tag, self._tag(name, data)):
            path.unlink(missing_ok=True)
            return None
        return data

    def store(self, digest: str, data: bytes) -> None:
        """Write an entry atomically (temp file + rename); errors leave no entry."""
        if self._key is None:
            return
        path, name = self._entry(digest)
        tmp = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(self._tag(name, data) + data)
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)

    def load_or_build(self, digest: str, deserialize: Callable[[bytes], _Compiled],
                      build: Callable[[], _Compiled]) -> tuple[_Compiled, bool]:
        """The compiled artefact for ``digest`` from the cache, else ``build()`` and store it.

        Returns ``(artefact, from_cache)``. An entry this engine cannot
        deserialise (another configuration) is rebuilt and overwritten.
        """
        cached = self.load(digest)
        if cached is not None:
            try:
                return deserialize(cached), True
            except wasmtime.WasmtimeError:
                pass  # stale for this engine: recompile and overwrite
        built = build()
        self.store(digest, bytes(built.serialize()))
        return built, False
