"""vak.host.dataflow: labels per session, the label map, scrubbers by secret names."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from vak.host.dataflow import (
    FlowTable,
    LabelMap,
    ScrubberCache,
    SessionFlow,
    fs_label,
    kv_label,
    net_label,
    secret_label,
    secret_names,
)
from vak.policy.entities import Entity, dir_entity, file_entity

MOUNTS = {"/workspace": Path("/srv/ws"), "/workspace/private": Path("/srv/private")}

LABEL_CASES = [
    ("fs_read", file_entity("/workspace/a.txt"), ("fs:/workspace",)),
    ("fs_read", file_entity("/workspace/private/p.txt"), ("fs:/workspace/private",)),
    ("fs_read", file_entity("/workspace/privateer.txt"), ("fs:/workspace",)),
    ("fs_list", dir_entity("/workspace/private"), ("fs:/workspace/private",)),
    ("fs_read", file_entity("/etc/passwd"), ()),
    ("fs_write", file_entity("/workspace/private/p.txt"), ()),
    ("secret_get", Entity("Vak::Secret", "API_TOKEN", {"name": "API_TOKEN"}),
     ("secret:API_TOKEN",)),
    ("kv_get", Entity("Vak::KvKey", "notes/k", {"namespace": "notes", "key": "k"}),
     ("kv:notes",)),
    ("kv_delete", Entity("Vak::KvKey", "notes/k", {"namespace": "notes", "key": "k"}),
     ("kv:notes",)),
    ("kv_put", Entity("Vak::KvKey", "notes/k", {"namespace": "notes", "key": "k"}), ()),
    ("kv_list", Entity("Vak::KvNamespace", "notes", {"name": "notes"}), ("kv:notes",)),
    ("http_request", Entity("Vak::Url", "https://api.github.com/x", {
        "scheme": "https", "host": "api.github.com", "port": 443, "path": "/x",
        "ip": "", "ip_class": "public"}), ("net:api.github.com",)),
    ("log", Entity("Vak::Kernel", "kernel"), ()),
    ("clock_now", Entity("Vak::Kernel", "kernel"), ()),
]


@pytest.mark.parametrize(("function", "resource", "expected"), LABEL_CASES,
                         ids=[f"{c[0]}-{c[1].id}" for c in LABEL_CASES])
def test_label_map(function: str, resource: Entity, expected: tuple[str, ...]) -> None:
    assert LabelMap(MOUNTS).labels(function, resource) == expected


def test_label_constructors_and_names() -> None:
    labels = {fs_label("/w"), secret_label("A"), kv_label("n"), net_label("h"), secret_label("B")}
    assert labels == {"fs:/w", "secret:A", "kv:n", "net:h", "secret:B"}
    assert secret_names(labels) == {"A", "B"}


def test_flow_only_grows() -> None:
    flow = SessionFlow("s")
    assert flow.add(["a", "b"]) is True
    assert flow.add(["a"]) is False
    snapshot = flow.labels
    flow.add(["c"])
    assert snapshot == {"a", "b"}  # snapshots are immutable
    assert flow.labels == {"a", "b", "c"}


def test_flow_add_is_thread_safe() -> None:
    flow = SessionFlow("s")
    threads = [threading.Thread(target=lambda i=i: [flow.add([f"l{i}-{j}"]) for j in range(200)])
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(flow.labels) == 1600


def test_flow_table_sessions_and_bound() -> None:
    table = FlowTable(max_sessions=2)
    a = table.open("a")
    assert table.open("a") is a
    assert table.open("") is not table.open("")  # no session: a private flow each time
    assert table.get("") is None
    table.open("b")
    table.open("a")  # a is now the most recent
    table.open("c")  # evicts b
    assert table.get("b") is None and table.get("a") is a
    assert table.end("a") is True and table.get("a") is None
    assert table.end("a") is False


def test_evicting_a_labelled_session_ends_it() -> None:
    ended: list[str] = []
    table = FlowTable(max_sessions=1, on_evict=ended.append)
    table.open("plain")
    table.open("marked").add(["secret:A"])  # evicts "plain": no labels, no hook
    assert ended == []
    table.open("next")  # evicts "marked": the kernel must end that session
    assert ended == ["marked"]


def test_get_counts_as_use() -> None:
    table = FlowTable(max_sessions=2)
    table.open("a")
    table.open("b")
    table.get("a")
    table.open("c")
    assert table.get("a") is not None and table.get("b") is None


def test_scrubber_follows_the_secret_labels() -> None:
    values = {"A": {"value-of-a"}, "B": {"value-of-b"}}
    cache = ScrubberCache(lambda name: values.get(name, set()))
    flow = SessionFlow("s")
    assert not flow.scrubber(cache)
    flow.add(["fs:/w"])
    assert not flow.scrubber(cache)
    flow.add([secret_label("A")])
    assert flow.scrubber(cache).text("x value-of-a value-of-b") == "x [REDACTED] value-of-b"
    values["A"].add("rotated-a")
    cache.invalidate()  # a new value was revealed: the session's scrubber is rebuilt
    assert "rotated-a" not in flow.scrubber(cache).text("rotated-a")


# ---------------------------------------------------------------------- through the mediator
_LABEL_RULE = """
@id("test.no-fs-after-token")
forbid (principal, action == Vak::Action::"fs_read", resource)
when { context.session has labels && context.session.labels.contains("secret:API_TOKEN") };
"""


def test_cedar_sees_session_labels_and_the_entry_records_them(tmp_path: Path) -> None:
    from dataclasses import replace

    import orjson
    from host_helpers import ListSink, call, context, manifest, mediator

    from vak.errors import PolicyDeniedError
    from vak.host.secrets import EnvSecretProvider

    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.txt").write_text("a")
    sink = ListSink()
    m = mediator(tmp_path, sink, _LABEL_RULE, fs_mounts={"/workspace": ws},
                 secrets=EnvSecretProvider({"API_TOKEN": "T"}, {"T": "token-value-1234"}))
    ctx = context(manifest(fs_read=("/workspace",), secrets=("API_TOKEN",)))
    h = m.handler(ctx)
    assert call(h, "fs_read", path="/workspace/a.txt")["content"] == "a"
    call(h, "secret_get", name="API_TOKEN")
    with pytest.raises(PolicyDeniedError) as info:
        call(h, "fs_read", path="/workspace/a.txt")
    assert info.value.policy_ids == ("test.no-fs-after-token",)
    decisions = sink.decisions()
    assert "labels" not in decisions[0]
    assert decisions[1]["labels"] == ["fs:/workspace"]
    assert decisions[2]["labels"] == ["fs:/workspace", "secret:API_TOKEN"]
    # the next invocation of the same session keeps the labels; another session does not
    again = m.handler(replace(ctx, invocation_id="inv-2"))
    with pytest.raises(PolicyDeniedError):
        again("fs_read", orjson.dumps({"path": "/workspace/a.txt"}))
    other = m.handler(replace(ctx, invocation_id="inv-3", session_id="s2"))
    assert call(other, "fs_read", path="/workspace/a.txt")["content"] == "a"
    assert m.session_labels("s1") == {"fs:/workspace", "secret:API_TOKEN"}
    assert m.end_session("s1") and m.session_labels("s1") == frozenset()
    m.close()
