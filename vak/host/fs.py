"""The fs family: ``fs_read``, ``fs_write``, ``fs_list`` over operator mounts.

Guest paths are normalised (:func:`vak.policy.normalize.normalize_path`),
checked against the manifest's fs grants by *component* containment, mapped
onto the host through ``KernelConfig.fs_mounts`` (longest guest prefix wins)
and opened with :func:`vak.host._safeopen.open_beneath`, so the file touched is
the one authorized. Read-only grants (``fs.read``) never allow ``fs_write``;
a grant naming a file is a single-file grant.

Arguments (JSON): ``fs_read {"path", "max_bytes"?}`` -> ``{"content"}`` (or
``{"content_b64"}`` for non-UTF-8); ``fs_write {"path", "content",
"append"?}`` -> ``{"written"}``; ``fs_list {"path"}`` -> ``{"entries":
[{"name", "type"}]}``.
"""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vak.host._safeopen import open_beneath
from vak.host.base import HostEffectError, Prepared, arg_bool, arg_int, arg_str
from vak.host.context import CallContext
from vak.policy.entities import dir_entity, file_entity
from vak.policy.normalize import normalize_grants, normalize_path, path_within

__all__ = ["FsFamily"]

MAX_WRITE = 1 << 20
MAX_LIST = 1000


class FsFamily:
    """fs host functions over ``mounts`` (guest path -> host directory)."""

    def __init__(self, mounts: Mapping[str, Path], *, max_read_bytes: int = 1 << 20) -> None:
        norm = {normalize_path(k): Path(v) for k, v in mounts.items()}
        self._mounts = sorted(norm.items(), key=lambda kv: len(kv[0]), reverse=True)
        self._max_read = max_read_bytes

    def _host(self, path: str) -> tuple[Path, str]:
        for guest, host in self._mounts:
            if path_within(path, guest):
                return host, path[len(guest) :].lstrip("/") if guest != "/" else path.lstrip("/")
        raise HostEffectError("no_mount", f"no fs mount covers {path}")

    def prepare(self, function: str, args: Mapping[str, Any], ctx: CallContext) -> Prepared:
        path = normalize_path(arg_str(args, "path", max_len=1 << 20))
        caps = ctx.manifest.capabilities
        write = normalize_grants(caps.fs_write)
        readable = normalize_grants(caps.fs_read) + write
        if function == "fs_read":
            max_bytes = arg_int(args, "max_bytes", default=self._max_read, lo=0, hi=self._max_read)
            return Prepared(
                file_entity(path),
                {"max_bytes": max_bytes},
                _ceiling(path, readable, "fs.read"),
                lambda: self._read(path, max_bytes, ctx),
                {"path": path},
            )
        if function == "fs_write":
            content = arg_str(args, "content", max_len=MAX_WRITE)
            append = arg_bool(args, "append", default=False)
            data = content.encode("utf-8", "surrogatepass")
            return Prepared(
                file_entity(path),
                {"size": len(data), "append": append},
                _ceiling(path, write, "fs.write"),
                lambda: self._write(path, data, append, ctx),
                {"path": path, "size": len(data)},
            )
        if function == "fs_list":
            return Prepared(
                dir_entity(path),
                {},
                _ceiling(path, readable, "fs.read"),
                lambda: self._list(path),
                {"path": path},
            )
        raise AssertionError(function)  # the mediation dispatches only fs names here

    def _read(self, path: str, max_bytes: int, ctx: CallContext) -> dict[str, Any]:
        root, rel = self._host(path)
        fd = open_beneath(root, rel, os.O_RDONLY | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise HostEffectError("not_a_file", f"{path} is not a regular file")
            data = os.read(fd, max_bytes + 1)
        finally:
            os.close(fd)
        truncated = len(data) > max_bytes
        data = data[:max_bytes]
        ctx.counters.add("bytes_read", len(data))
        try:
            return {"content": data.decode("utf-8"), "truncated": truncated}
        except UnicodeDecodeError:
            return {"content_b64": base64.b64encode(data).decode(), "truncated": truncated}

    def _write(self, path: str, data: bytes, append: bool, ctx: CallContext) -> dict[str, Any]:
        root, rel = self._host(path)
        if not rel:
            raise HostEffectError("is_a_directory", f"{path} is a mount root")
        flags = os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | (os.O_APPEND if append else os.O_TRUNC)
        fd = open_beneath(root, rel, flags, 0o644)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise HostEffectError("not_a_file", f"{path} is not a regular file")
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        ctx.counters.add("bytes_written", len(data))
        return {"written": len(data)}

    def _list(self, path: str) -> dict[str, Any]:
        root, rel = self._host(path)
        fd = open_beneath(root, rel, os.O_RDONLY | os.O_DIRECTORY)
        try:
            entries = []
            with os.scandir(fd) as it:
                for entry in it:
                    kind = (
                        "symlink"
                        if entry.is_symlink()
                        else "dir"
                        if entry.is_dir(follow_symlinks=False)
                        else "file"
                    )
                    entries.append({"name": entry.name, "type": kind})
                    if len(entries) > MAX_LIST:
                        break
        finally:
            os.close(fd)
        entries.sort(key=lambda e: e["name"])
        return {"entries": entries[:MAX_LIST], "truncated": len(entries) > MAX_LIST}


def _ceiling(path: str, grants: tuple[str, ...], cap: str) -> str | None:
    if any(path_within(path, g) for g in grants):
        return None
    return f"{path} is outside the skill's declared {cap} grants"
