"""vak.serve: listen addresses, the loopback rule, session ids naming a worker, the
front's reading of a request head, per-worker names, JSON logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vak.config import KernelConfig
from vak.errors import ConfigError
from vak.serve.front import _parse_head
from vak.serve.logsetup import configure_logging
from vak.serve.naming import log_path, new_session_id, worker_config, worker_of_session
from vak.serve.settings import ServeSettings, parse_listen


@pytest.mark.parametrize(("text", "want"), [
    ("127.0.0.1:8000", ("127.0.0.1", 8000)), ("localhost:1", ("127.0.0.1", 1)),
    ("[::1]:9", ("::1", 9)), ("0.0.0.0:0", ("0.0.0.0", 0)), ("127.0.0.1", ("127.0.0.1", 8765)),
    ("[::1]", ("::1", 8765)),
], ids=["v4", "localhost", "v6", "any", "no-port", "v6-no-port"])
def test_listen_addresses(text: str, want: tuple[str, int]) -> None:
    assert parse_listen(text) == want


@pytest.mark.parametrize("text", ["example.com:80", "127.0.0.1:70000", "127.0.0.1:x", "[::1",
                                  "[::1]x", "1.2.3:4", ""],
                         ids=["name", "port-range", "port-text", "unclosed", "junk", "short",
                              "empty"])
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_listen(text)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "192.0.2.1", "::ffff:10.0.0.1"])
def test_non_loopback_needs_a_token_file(host: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="without authentication"):
        ServeSettings(tmp_path / "vak.toml", tmp_path, host=host)
    ServeSettings(tmp_path / "vak.toml", tmp_path, host=host, token_file=tmp_path / "t.json")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.9.9.9", "::1"])
def test_loopback_may_be_served_without_tokens(host: str, tmp_path: Path) -> None:
    assert ServeSettings(tmp_path / "vak.toml", tmp_path, host=host).workers >= 1


@given(st.integers(min_value=0, max_value=63))
def test_a_session_id_names_its_worker(index: int) -> None:
    sid = new_session_id(index)
    assert worker_of_session(sid, 64) == index
    assert worker_of_session(sid, index) is None  # no such worker: not routed by it


@given(st.text(max_size=60))
def test_arbitrary_session_ids_route_nowhere_unless_well_formed(text: str) -> None:
    index = worker_of_session(text, 4)
    assert index is None or text.startswith(f"w{index}-")


def test_parse_head() -> None:
    head = (b"POST /mcp?x=1 HTTP/1.1\r\nHost: a\r\nMCP-Session-Id:  w1-" + b"a" * 32 +
            b"\r\n\r\n")
    assert _parse_head(head) == (b"/mcp", "w1-" + "a" * 32)
    assert _parse_head(b"GET /readyz HTTP/1.1\r\n\r\n") == (b"/readyz", None)
    assert _parse_head(b"garbage\r\n\r\n") == (b"", None)
    assert _parse_head(b"GET / HTTP/1.1\r\nmcp-session-id: \xff\r\n\r\n") == (b"/", None)


def test_worker_names(tmp_path: Path) -> None:
    assert log_path(Path("audit/vak.log"), 3) == Path("audit/vak-w3.log")
    cfg = KernelConfig(state_dir=tmp_path).with_(audit_origin="ex.com/k")
    w = worker_config(cfg, 1)
    assert w.audit.origin == "ex.com/k/w1" and w.audit_settings().log.name == "vak-w1.log"
    assert w.audit.key == cfg.audit.key and w.audit.hmac_key == cfg.audit.hmac_key


def test_json_logs_name_the_skill(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("json", "debug", "w0")
        logging.getLogger("vak.skill.notes").debug("read %s", "a.txt")
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert line["skill"] == "notes" and line["msg"] == "read a.txt"
        assert line["level"] == "debug" and line["process"] == "w0"
        configure_logging("text", "warning", "w0")
        logging.getLogger("vak.skill.notes").info("hidden")
        assert "hidden" not in capsys.readouterr().err
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


@given(st.binary(max_size=400))
def test_any_request_head_parses_without_raising(head: bytes) -> None:
    path, session = _parse_head(head)
    assert isinstance(path, bytes) and (session is None or session.isascii())


@given(st.text(max_size=40))
def test_any_listen_text_is_an_address_or_a_config_error(text: str) -> None:
    try:
        host, port = parse_listen(text)
    except ConfigError:
        return
    assert 0 <= port <= 65535 and host


def _asgi(app: Any, headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    import asyncio

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    asyncio.run(app({"type": "http", "method": "POST", "path": "/mcp", "headers": headers},
                    receive, send))
    return sent


def _opening(session_id: bytes) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"mcp-session-id", session_id)]})
        await send({"type": "http.response.body", "body": b"data", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    return app


def test_a_session_id_not_naming_this_worker_is_refused_not_handed_out() -> None:
    from vak.serve.worker import _Misdirected

    good = _asgi(_Misdirected(_opening(b"w1-" + b"a" * 32), 1, 2), [])
    assert good[0]["status"] == 200 and good[1]["body"] == b"data"
    bad = _asgi(_Misdirected(_opening(b"0123abcd" * 4), 1, 2), [])
    assert bad[0]["status"] == 500 and all(m.get("body", b"") == b"" for m in bad[1:])
    assert not any(b"0123abcd" in v for m in bad for _, v in m.get("headers", []))


def test_a_request_for_another_workers_session_gets_421() -> None:
    from vak.serve.worker import _Misdirected

    sent = _asgi(_Misdirected(_opening(b"unused"), 0, 2),
                 [(b"mcp-session-id", b"w1-" + b"a" * 32)])
    assert sent[0]["status"] == 421 and (b"connection", b"close") in sent[0]["headers"]


def test_the_front_picks_the_session_worker_or_says_why_not(tmp_path: Path) -> None:
    from vak.serve.front import Front, WorkerHandle

    front = Front(ServeSettings(tmp_path / "vak.toml", tmp_path, workers=2))
    front.workers = [WorkerHandle(i, None, None, None, ready=True)  # type: ignore[arg-type]
                     for i in range(2)]
    sid1 = new_session_id(1)
    assert front._pick(sid1) is front.workers[1]
    assert {front._pick(None).index for _ in range(4)} == {0, 1}  # type: ignore[union-attr]
    assert front._pick("not-a-session") in front.workers  # unknown form: any ready worker
    front.workers[1].ready = False
    assert front._pick(sid1) == 404  # its worker is gone, so is the session
    assert front._pick(None) is front.workers[0]
    front.workers[0].ready = False
    assert front._pick(None) == 503


@pytest.mark.parametrize(("workers", "drain"), [(-1, 30.0), (257, 30.0), (2, 0.0),
                                                (2, float("nan")), (2, float("inf"))],
                         ids=["negative", "too-many", "no-drain", "nan-drain", "inf-drain"])
def test_worker_count_and_drain_timeout_are_checked(tmp_path: Path, workers: int,
                                                    drain: float) -> None:
    with pytest.raises(ConfigError):
        ServeSettings(tmp_path / "vak.toml", tmp_path, workers=workers, drain_timeout=drain)
