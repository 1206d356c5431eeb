"""Data-flow labels: what a session has seen, kept for the session's lifetime.

Every host result that brings data *into* a session marks the session with a
label naming where the data came from:

============  ====================================================
label         added by
============  ====================================================
fs:<mount>    ``fs_read``, ``fs_list`` under that mount (the guest
              prefix of the longest ``fs_mounts`` entry covering
              the path, e.g. ``fs:/workspace/private``)
secret:<n>    ``secret_get`` of secret ``n`` (before the value is
              handed out)
kv:<ns>       ``kv_get``, ``kv_list``, ``kv_delete`` in namespace
              ``ns``; reading a value (or listing a key) also adds
              the labels stored with it
net:<host>    ``http_request`` to ``host`` (normalised)
============  ====================================================

Writes (``fs_write``, ``kv_put``) and the obs functions add none: they carry
data out of the session, not in. A ``kv_put`` stores the writer's labels with
the value (:class:`vak.host.kv.KvStore`), so a later reader -- in another
invocation, another session, after a restart -- is marked with them.

Invariants:

* labels only accumulate: nothing a guest does removes one; only the end of
  the session (:meth:`FlowTable.end`, or its eviction past ``max_sessions``,
  which ends the session) or of the kernel drops them;
* a session is marked *before* the data is handed to the guest, so a
  decision taken after any reply already sees the label;
* one :class:`SessionFlow` per session id, shared by every invocation of the
  session whatever its route (in-process, reused instance, OS-sandboxed
  worker): the flow lives with the kernel-side handler, never in the guest;
* a call without a session id is a session of its own (its flow ends with
  the invocation).

The secret labels are the first use: the values of the secrets a session
holds (``secret:<name>``), with every value the kernel has handed out,
make the session's :class:`vak.scrub.Scrubber`. Cedar sees the labels at
``context.session.labels`` (a Set of String; sent when a policy mentions
``labels``) and the ``host_decision`` entry records them (``labels``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from vak.host.normalize import normalize_path, path_within
from vak.policy.entities import Entity
from vak.scrub import EMPTY, Scrubber

__all__ = [
    "FlowTable",
    "LabelMap",
    "ScrubberCache",
    "SessionFlow",
    "fs_label",
    "kv_label",
    "net_label",
    "secret_label",
    "secret_names",
]

SECRET_PREFIX = "secret:"
#: longest label kept (a label is built from normalised, bounded names)
MAX_LABEL = 300
#: host functions whose results bring no data into the session
_NO_LABELS = frozenset({"fs_write", "kv_put", "log", "clock_now", "random_bytes"})


def fs_label(mount: str) -> str:
    return f"fs:{mount}"[:MAX_LABEL]


def secret_label(name: str) -> str:
    return f"{SECRET_PREFIX}{name}"[:MAX_LABEL]


def kv_label(namespace: str) -> str:
    return f"kv:{namespace}"[:MAX_LABEL]


def net_label(host: str) -> str:
    return f"net:{host}"[:MAX_LABEL]


def secret_names(labels: Iterable[str]) -> frozenset[str]:
    """The secret names among ``labels``."""
    n = len(SECRET_PREFIX)
    return frozenset(label[n:] for label in labels if label.startswith(SECRET_PREFIX))


class LabelMap:
    """Which labels the result of a call on a resource adds (a pure function)."""

    def __init__(self, fs_mounts: Mapping[str, Path] | Iterable[str] = ()) -> None:
        mounts = {normalize_path(str(m)) for m in fs_mounts}
        self._mounts = sorted(mounts, key=len, reverse=True)
        #: answers by (function, the resource's exact key): the hot path is a lookup
        self._memo: dict[tuple[str, bytes], tuple[str, ...]] = {}

    def mount_of(self, path: str) -> str | None:
        """The guest mount prefix covering ``path`` (longest wins), if any."""
        for mount in self._mounts:
            if path_within(path, mount):
                return mount
        return None

    def labels(self, function: str, resource: Entity) -> tuple[str, ...]:
        """Labels the result of ``function`` on ``resource`` adds to the session."""
        key = (function, resource.key)
        hit = self._memo.get(key)
        if hit is None:
            hit = self._labels(function, resource)
            if len(self._memo) >= 4096:
                self._memo.clear()
            self._memo[key] = hit
        return hit

    def _labels(self, function: str, resource: Entity) -> tuple[str, ...]:
        if function in _NO_LABELS:
            return ()
        kind = resource.type
        attrs = resource.attrs
        if kind in ("Vak::File", "Vak::Dir"):
            mount = self.mount_of(str(attrs.get("path", resource.id)))
            return () if mount is None else (fs_label(mount),)
        if kind == "Vak::Secret":
            return (secret_label(str(attrs.get("name", resource.id))),)
        if kind == "Vak::KvKey":
            return (kv_label(str(attrs.get("namespace", ""))),)
        if kind == "Vak::KvNamespace":
            return (kv_label(str(attrs.get("name", resource.id))),)
        if kind == "Vak::Url":
            return (net_label(str(attrs.get("host", ""))),)
        return ()


class SessionFlow:
    """The labels of one session (thread-safe; only ever grows)."""

    __slots__ = ("_for_labels", "_for_values", "_for_version", "_labels", "_lock", "_scrubber",
                 "_values", "session_id")

    def __init__(self, session_id: str = "") -> None:
        self.session_id = session_id
        self._labels: frozenset[str] = frozenset()
        #: secret values revealed to the session directly (besides its secret: labels)
        self._values: frozenset[str] = frozenset()
        self._lock = threading.Lock()
        self._scrubber: Scrubber = EMPTY
        #: the label set and cache version ``_scrubber`` was built for
        self._for_labels = self._labels
        self._for_values = self._values
        self._for_version = 0

    def add(self, labels: Iterable[str]) -> bool:
        """Add ``labels``; True if the session gained one."""
        current = self._labels
        new = [label for label in labels if label not in current]
        if not new:
            return False
        with self._lock:
            self._labels = self._labels.union(new)
        return True

    def reveal(self, value: str) -> None:
        """Keep a secret value handed to this session (scrubbed for its lifetime)."""
        if value not in self._values:
            with self._lock:
                self._values = self._values | {value}

    @property
    def labels(self) -> frozenset[str]:
        """The labels now (an immutable snapshot)."""
        return self._labels

    def scrubber(self, cache: ScrubberCache) -> Scrubber:
        """The scrubber for the secrets this session holds (cached per label set)."""
        labels, values, version = self._labels, self._values, cache.version
        if (labels is not self._for_labels or values is not self._for_values
                or version != self._for_version):  # else: the hot path, three tests
            # snapshots are replaced on every change: identity is the cheap test
            scrubber = cache.for_names(secret_names(labels))
            if values - scrubber.values:
                scrubber = scrubber.union(values)
            self._scrubber = scrubber
            self._for_labels, self._for_values, self._for_version = labels, values, version
        return self._scrubber


class ScrubberCache:
    """Scrubbers by set of secret names; ``values_of(name)`` gives a secret's values.

    Every scrubber also covers ``revealed()``, every value the kernel has
    handed out to anyone: the labels say which session holds a secret (and
    policy acts on that), but exact matching costs little, so a value is
    scrubbed from every session's output, errors and audit entries -- also
    when it travelled by a route no label follows (a file one session wrote
    and another read, a permitted server echoing it back).

    ``version`` changes whenever a new value is revealed (a rotated secret),
    so a session's cached scrubber is rebuilt to include it.
    """

    def __init__(self, values_of: Callable[[str], Iterable[str]],
                 revealed: Callable[[], Iterable[str]] = tuple) -> None:
        self._values_of = values_of
        self._revealed = revealed
        self._cache: dict[frozenset[str], Scrubber] = {}
        self._lock = threading.Lock()
        self.version = 0

    def for_names(self, names: frozenset[str]) -> Scrubber:
        hit = self._cache.get(names)
        if hit is not None:
            return hit
        values: set[str] = set(self._revealed())
        for name in names:
            values.update(self._values_of(name))
        scrubber = Scrubber(values) if values else EMPTY
        with self._lock:
            if len(self._cache) >= 1024:
                self._cache.clear()
            self._cache[names] = scrubber
        return scrubber

    def invalidate(self) -> None:
        """A value was revealed that some cached scrubber may lack."""
        with self._lock:
            self._cache.clear()
            self.version += 1


class FlowTable:
    """The :class:`SessionFlow` of every live session, LRU-bounded.

    ``max_sessions`` bounds memory against a caller inventing session ids.
    Evicting a session that holds labels ends the session (fail closed):
    ``on_evict(session_id)`` is called -- outside the table's lock -- so the
    kernel can drop what the session kept elsewhere (a reused instance's
    memory may hold a secret the session's scrubber no longer knows). Its kv
    values keep their labels.
    """

    def __init__(self, max_sessions: int = 65536,
                 on_evict: Callable[[str], object] | None = None) -> None:
        self._max = max(1, max_sessions)
        self._flows: OrderedDict[str, SessionFlow] = OrderedDict()
        self._lock = threading.Lock()
        self.on_evict = on_evict

    def open(self, session_id: str) -> SessionFlow:
        """The flow of ``session_id`` (created on first use); ``""``: a new private flow."""
        if not session_id:
            return SessionFlow()
        evicted: list[SessionFlow] = []
        with self._lock:
            flow = self._flows.get(session_id)
            if flow is None:
                flow = self._flows[session_id] = SessionFlow(session_id)
                while len(self._flows) > self._max:
                    evicted.append(self._flows.popitem(last=False)[1])
            else:
                self._flows.move_to_end(session_id)
        self._evicted(evicted)
        return flow

    def _evicted(self, flows: list[SessionFlow]) -> None:
        hook = self.on_evict
        if hook is not None:
            for old in flows:
                if old.labels:
                    hook(old.session_id)

    def get(self, session_id: str) -> SessionFlow | None:
        """The flow of ``session_id`` if the table holds one (no creation; counts as use)."""
        if not session_id:
            return None
        with self._lock:
            flow = self._flows.get(session_id)
            if flow is not None:
                self._flows.move_to_end(session_id)
            return flow

    def end(self, session_id: str) -> bool:
        """Forget ``session_id``'s labels (the session is over); True if it had a flow."""
        with self._lock:
            return self._flows.pop(session_id, None) is not None

    def __len__(self) -> int:
        with self._lock:
            return len(self._flows)
