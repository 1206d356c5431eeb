"""The fs family: performs allowed ``fs_read``, ``fs_write``, ``fs_list`` calls.

By the time a call reaches :meth:`FsFamily.perform`, its guest path has been
normalised (:func:`vak.host.normalize.normalize_path`, in the catalog's
normaliser), checked against the manifest's grants by the mediation's ceiling
and decided by Cedar. Here it is mapped onto the host through the operator's
mounts (``HostSettings.fs_mounts``; longest guest prefix wins) and opened with
:func:`vak.host._safeopen.open_beneath`, so the file touched is the one
authorized. Arguments and replies: docs/HOST-FUNCTIONS.md.
"""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vak.host._safeopen import open_beneath
from vak.host.base import EffectScope, HostEffectError, NormalCall
from vak.host.calls import MAX_LIST
from vak.host.normalize import normalize_path, path_within

__all__ = ["FsFamily"]


class FsFamily:
    """fs host functions over ``mounts`` (guest path -> host directory)."""

    def __init__(self, mounts: Mapping[str, Path]) -> None:
        norm = {normalize_path(k): Path(v) for k, v in mounts.items()}
        self._mounts = sorted(norm.items(), key=lambda kv: len(kv[0]), reverse=True)

    def _host(self, path: str) -> tuple[Path, str]:
        for guest, host in self._mounts:
            if path_within(path, guest):
                return host, path[len(guest) :].lstrip("/") if guest != "/" else path.lstrip("/")
        raise HostEffectError("no_mount", "no fs mount covers the path")

    def perform(self, function: str, call: NormalCall, scope: EffectScope, /) -> dict[str, Any]:
        path, params = call.target, call.params
        if function == "fs_read":
            return self._read(path, params["max_bytes"], scope)
        if function == "fs_write":
            return self._write(path, params["data"], params["append"], scope)
        return self._list(path)

    def _read(self, path: str, max_bytes: int, scope: EffectScope) -> dict[str, Any]:
        root, rel = self._host(path)
        fd = open_beneath(root, rel, os.O_RDONLY | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise HostEffectError("not_a_file", "not a regular file")
            data = os.read(fd, max_bytes + 1)
        finally:
            os.close(fd)
        truncated = len(data) > max_bytes
        data = data[:max_bytes]
        scope.counters.add("bytes_read", len(data))
        try:
            return {"content": data.decode("utf-8"), "truncated": truncated}
        except UnicodeDecodeError:
            return {"content_b64": base64.b64encode(data).decode(), "truncated": truncated}

    def _write(self, path: str, data: bytes, append: bool, scope: EffectScope) -> dict[str, Any]:
        root, rel = self._host(path)
        if not rel:
            raise HostEffectError("is_a_directory", "the path is a mount root")
        flags = os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | (os.O_APPEND if append else os.O_TRUNC)
        fd = open_beneath(root, rel, flags, 0o644)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise HostEffectError("not_a_file", "not a regular file")
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        scope.counters.add("bytes_written", len(data))
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

