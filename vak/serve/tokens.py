"""Bearer tokens of ``vak serve``: each maps to one caller, only its hash is kept.

``vak serve token add NAME --token-file FILE`` prints a new token once; the file
holds ``{"version": 1, "tokens": [{"name", "kind", "sha256", "created"}]}``::

    >>> store = TokenFile.load_or_empty(Path("tokens.json"))       # doctest: +SKIP
    >>> token = store.add("ci-agent")                               # doctest: +SKIP
    >>> store.authenticate(token).id                                # doctest: +SKIP
    'ci-agent'

Invariants:

* a token is never stored, logged or put in an error: only its sha256;
* :meth:`TokenFile.authenticate` hashes the presented bytes (bounded) and
  compares with every entry by :func:`hmac.compare_digest`, without stopping
  at a match, so its time does not depend on which entry (or which part of a
  token) matched;
* the file is written atomically (a temporary file in the same directory,
  fsynced, renamed) with mode 0600, and refused when group or others may read
  it, like an ssh key: a token file others can read cannot be trusted to be
  the operator's.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vak.errors import ConfigError
from vak.invocation import Principal

__all__ = ["MAX_TOKEN_BYTES", "TokenEntry", "TokenFile", "new_token"]

#: a presented token longer than this is refused before it is hashed
MAX_TOKEN_BYTES = 512
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HEX = re.compile(r"[0-9a-f]{64}")
_FIX_MODE = "chmod 600 the file (only its owner may read it)"


def new_token() -> str:
    """A fresh bearer token: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """One caller: its name (the Cedar ``context.caller.id``), kind and token hash."""

    name: str
    sha256: str
    kind: str = "agent"
    created: str = ""

    def principal(self) -> Principal:
        return Principal(id=self.name, kind=self.kind)


class TokenFile:
    """The token hashes of one file (immutable once loaded; edits write a new file)."""

    def __init__(self, path: Path, entries: tuple[TokenEntry, ...] = ()) -> None:
        self.path = path
        self.entries = entries
        self._digests = tuple((bytes.fromhex(e.sha256), e) for e in entries)

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(cls, path: str | Path) -> TokenFile:
        """Read and check a token file.

        Raises:
            ConfigError: missing, readable by group or others, not JSON, or an
                entry is malformed (the message names the file and entry).
        """
        path = Path(path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot open token file: {exc.strerror}", file=str(path),
                              fix="create it with `vak serve token add NAME --token-file "
                              f"{path}`") from None
        with os.fdopen(fd, "rb") as fh:
            mode = os.fstat(fh.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise ConfigError(f"{path}: token file is not a regular file", file=str(path))
            if mode & 0o077:
                raise ConfigError(
                    f"{path}: token file is readable or writable by group or others "
                    f"(mode {stat.S_IMODE(mode):04o})", file=str(path), field="mode",
                    fix=_FIX_MODE)
            data = fh.read(1 << 20)
        return cls(path, _parse(data, path))

    @classmethod
    def load_or_empty(cls, path: str | Path) -> TokenFile:
        """:meth:`load`, or an empty store when the file does not exist yet."""
        path = Path(path)
        if not path.exists() and not path.is_symlink():
            return cls(path)
        return cls.load(path)

    # ---------------------------------------------------------------- queries
    def authenticate(self, presented: str | bytes | None) -> Principal | None:
        """The caller a presented token belongs to, or None (no detail why)."""
        if presented is None:
            return None
        raw = presented.encode("utf-8", "surrogateescape") if isinstance(presented, str) \
            else presented
        if not raw or len(raw) > MAX_TOKEN_BYTES:
            return None
        digest = _digest(raw)
        found: TokenEntry | None = None
        for stored, entry in self._digests:  # every entry, match or not
            if hmac.compare_digest(stored, digest):
                found = entry
        return None if found is None else found.principal()

    def names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.entries)

    # ---------------------------------------------------------------- edits
    def add(self, name: str, kind: str = "agent") -> str:
        """Add caller ``name`` with a new token; write the file; return the token (once).

        Raises:
            ConfigError: the name is malformed or already has a token.
        """
        if not _NAME.fullmatch(name):
            raise ConfigError(f"token name {name[:70]!r} is not [A-Za-z0-9._-]{{1,64}}",
                              field="NAME", fix="pick a short name like ci-agent")
        if not _NAME.fullmatch(kind):
            raise ConfigError(f"token kind {kind[:70]!r} is not [A-Za-z0-9._-]{{1,64}}",
                              field="--kind")
        if name in self.names():
            raise ConfigError(f"{self.path}: a token named {name!r} exists", file=str(self.path),
                              fix=f"revoke it first: vak serve token revoke {name}")
        token = new_token()
        entry = TokenEntry(name, _digest(token.encode()).hex(), kind,
                           datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        TokenFile(self.path, (*self.entries, entry)).save()
        return token

    def revoke(self, name: str) -> None:
        """Remove caller ``name``; write the file.

        Raises:
            ConfigError: no token has that name.
        """
        if name not in self.names():
            raise ConfigError(f"{self.path}: no token named {name[:70]!r}", file=str(self.path),
                              valid=list(self.names()))
        TokenFile(self.path, tuple(e for e in self.entries if e.name != name)).save()

    def save(self) -> None:
        """Write atomically, mode 0600 (a reader sees the old file or the new one)."""
        body = json.dumps({"version": 1, "tokens": [
            {"name": e.name, "kind": e.kind, "sha256": e.sha256, "created": e.created}
            for e in self.entries]}, indent=2).encode() + b"\n"
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _parse(data: bytes, path: Path) -> tuple[TokenEntry, ...]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ConfigError(f"{path}: token file is not JSON: {type(exc).__name__}",
                          file=str(path)) from None
    if not isinstance(doc, dict) or doc.get("version") != 1 or \
            not isinstance(doc.get("tokens"), list):
        raise ConfigError(f"{path}: expected {{\"version\": 1, \"tokens\": [...]}}",
                          file=str(path), field="version")
    entries: list[TokenEntry] = []
    for i, item in enumerate(doc["tokens"]):
        where = f"tokens[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{path}: {where} is not an object", file=str(path), field=where)
        name, digest = item.get("name"), item.get("sha256")
        kind, created = item.get("kind", "agent"), item.get("created", "")
        if not (isinstance(name, str) and _NAME.fullmatch(name)):
            raise ConfigError(f"{path}: {where}.name is not [A-Za-z0-9._-]{{1,64}}",
                              file=str(path), field=f"{where}.name")
        if not (isinstance(digest, str) and _HEX.fullmatch(digest)):
            raise ConfigError(f"{path}: {where}.sha256 is not 64 lowercase hex digits",
                              file=str(path), field=f"{where}.sha256")
        if not (isinstance(kind, str) and _NAME.fullmatch(kind)) or \
                not isinstance(created, str):
            raise ConfigError(f"{path}: {where}: bad kind or created", file=str(path),
                              field=where)
        if any(e.name == name for e in entries):
            raise ConfigError(f"{path}: {where}: duplicate name {name!r}", file=str(path),
                              field=f"{where}.name")
        entries.append(TokenEntry(name, digest, kind, created[:40]))
    return tuple(entries)
