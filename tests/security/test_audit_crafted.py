"""Crafted audit files: wrong JSON types, dropped or duplicated fields, deep nesting.

Every malformed input to the verifier, to ``vak-audit`` (any subcommand) and to
the writer's recovery on open must end as a typed finding (never OK or
WARNINGS for a covered line), an :class:`AuditIntegrityError`, or a typed
usage error: never a traceback, never exit 1 for a tampered log. Mutations are
structure-aware (they know the entry and checkpoint shapes) besides the byte
flips of ``test_audit_tamper.py``.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.security.test_audit_tamper import (
    copy_log,
    flip_one_byte,
    make_log,
    mutated,
    report_of,
)
from vak.audit.log import AuditLog
from vak.audit.verify import Code
from vak.cli.audit import EXIT_INTERNAL, main
from vak.errors import AuditIntegrityError

ORIGIN = "test.vak/k1"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_log(tmp_path_factory.mktemp("crafted"))


def _writer_refuses(log: Path, match: str | None = None) -> None:
    """Opening the log for writing must fail with AuditIntegrityError (``match``)."""
    with pytest.raises(AuditIntegrityError, match=match):
        AuditLog.open(log, key_path=log.parent / "log.key", origin=ORIGIN).close()


class Deep:
    """A value nested ``depth`` levels: written as text, never built as Python objects."""

    def __init__(self, depth: int) -> None:
        self.depth = depth

    def text(self) -> str:
        opens = "".join('{"d":' if i % 2 == 0 else "[" for i in range(self.depth))
        closes = "".join("}" if i % 2 == 0 else "]" for i in reversed(range(self.depth)))
        return opens + '"x"' + closes


def _deep(depth: int) -> Deep:
    return Deep(depth)


#: values of every JSON type, including nesting past the profile's bound and past
#: what orjson will parse (1024) or re-encode (255)
_VALUES: dict[str, Callable[[], Any]] = {
    "null": lambda: None, "true": lambda: True, "zero": lambda: 0, "minus": lambda: -1,
    "big": lambda: 2**53, "empty": lambda: "", "long": lambda: "x" * 300,
    "ansi": lambda: "\n\x1b[2J", "list0": lambda: [], "list2": lambda: [1, "a"],
    "obj0": lambda: {}, "obj1": lambda: {"a": None}, "deep40": lambda: _deep(40),
    "deep300": lambda: _deep(300), "deep1100": lambda: _deep(1100),
}
# drawn by name (Hypothesis must not pretty-print a 1,100-level value)
_HOSTILE = st.sampled_from(sorted(_VALUES)).map(lambda name: _VALUES[name]())


def _key_of(entry: dict[str, Any], data: st.DataObject) -> str:
    return data.draw(st.sampled_from(sorted(entry)), label="field")


def _encode(entry: Any) -> bytes:
    """Canonical-looking JSON of ``entry``; :class:`Deep` values are spliced in as text."""
    deep: dict[str, str] = {}

    def mark(v: Any) -> Any:
        if isinstance(v, Deep):
            token = f"__deep_{len(deep)}__"
            deep[token] = v.text()
            return token
        if isinstance(v, dict):
            return {k: mark(x) for k, x in v.items()}
        if isinstance(v, list):
            return [mark(x) for x in v]
        return v

    text = orjson.dumps(mark(entry), option=orjson.OPT_SORT_KEYS).decode()
    for token, value in deep.items():
        text = text.replace(f'"{token}"', value)
    return text.encode()


def swap_type(entry: dict[str, Any], data: st.DataObject) -> bytes:
    entry[_key_of(entry, data)] = data.draw(_HOSTILE, label="value")
    return _encode(entry)


def drop_field(entry: dict[str, Any], data: st.DataObject) -> bytes:
    del entry[_key_of(entry, data)]
    return _encode(entry)


def duplicate_field(entry: dict[str, Any], data: st.DataObject) -> bytes:
    key = _key_of(entry, data)
    dup = [entry[key], "other", 7, None][data.draw(st.integers(0, 3), label="dup")]
    body = _encode(entry)
    return body[:-1] + b"," + orjson.dumps(key) + b":" + _encode(dup) + b"}"


def nest_deeply(entry: dict[str, Any], data: st.DataObject) -> bytes:
    entry[_key_of(entry, data)] = _deep(data.draw(st.sampled_from([33, 200, 1100])))
    return _encode(entry)


def replace_whole(entry: dict[str, Any], data: st.DataObject) -> bytes:
    return _encode(data.draw(_HOSTILE, label="line"))


MUTATIONS: list[Callable[[dict[str, Any], st.DataObject], bytes]] = [
    swap_type, drop_field, duplicate_field, nest_deeply, replace_whole]

_HYP = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _mutate_line(log: Path, data: st.DataObject) -> int:
    lines = log.read_bytes().split(b"\n")[:-1]
    index = data.draw(st.integers(0, len(lines) - 1), label="line")
    mutation = data.draw(st.sampled_from(MUTATIONS), label="mutation")
    new = mutation(orjson.loads(lines[index]), data)
    if new == lines[index]:
        new = b"[" + new + b"]"  # make sure something changed
    lines[index] = new
    log.write_bytes(b"".join(x + b"\n" for x in lines))
    return index


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


@_HYP
@given(data=st.data())
def test_structured_mutation_of_an_entry_is_a_typed_finding(base: Path, tmp_path: Path,
                                                           data: st.DataObject) -> None:
    log, index = mutated(base, tmp_path, _mutate_line, data)
    report = report_of(log, workers=1)
    assert report.result > Code.WARNINGS, report.render()
    assert any(f.line in (index + 1, index + 2) or f.file == "checkpoint"
               for f in report.findings), report.render()
    code, out, err = _cli("verify", str(log), "--key", str(tmp_path / "log.key.pub"))
    assert code == report.result and f"RESULT: {report.result.name}" in out, err
    assert "Traceback" not in out + err
    for sub in (["show", str(log)], ["show", str(log), "--json"], ["tail", str(log)],
                ["prove", "--seq", "0", str(log)], ["checkpoint", str(log)],
                ["consistency", "1", "2", str(log)]):
        code, out, err = _cli(*sub)
        assert code not in (EXIT_INTERNAL,) and "Traceback" not in out + err, (sub, err)


@pytest.mark.parametrize("mutate", [_mutate_line, flip_one_byte],
                         ids=["structured-mutation", "any-byte-change"])
@_HYP
@given(data=st.data())
def test_a_mutated_log_makes_the_writer_refuse_to_start(
    base: Path, tmp_path: Path, data: st.DataObject,
    mutate: Callable[[Path, st.DataObject], int],
) -> None:
    log, _ = mutated(base, tmp_path, mutate, data)
    _writer_refuses(log)


def _mutate_checkpoint(ckpt: Path, data: st.DataObject) -> None:
    lines = ckpt.read_bytes().split(b"\n")[:-1]
    index = data.draw(st.integers(0, len(lines) - 1), label="checkpoint")
    obj = orjson.loads(lines[index])
    how = data.draw(st.sampled_from(["type", "drop", "duplicate", "nest", "whole", "note"]))
    if how == "type":
        name = data.draw(st.sampled_from([n for n in sorted(_VALUES)
                                          if not isinstance(_VALUES[n](), str)]))
        obj["note"] = _VALUES[name]()
        new = _encode(obj)
    elif how == "drop":
        new = b"{}"
    elif how == "duplicate":
        new = _encode(obj)[:-1] + b',"note":"x"}'
    elif how == "nest":
        new = _encode({"note": _deep(data.draw(st.sampled_from([40, 300, 1100])))})
    elif how == "whole":
        new = _encode(data.draw(_HOSTILE))
    else:  # a note with a hostile line: non-ASCII digits, huge size, a control character
        bad = data.draw(st.sampled_from(["\u00b2", "\u0661\u0662", "9" * 5000, "1\x1b[2J"]))
        parts = obj["note"].split("\n")
        parts[1] = bad
        new = _encode({"note": "\n".join(parts)})
    lines[index] = new
    ckpt.write_bytes(b"".join(x + b"\n" for x in lines))


@_HYP
@given(data=st.data())
def test_crafted_checkpoint_line_is_malformed_everywhere(base: Path, tmp_path: Path,
                                                        data: st.DataObject) -> None:
    log = copy_log(base, tmp_path)
    _mutate_checkpoint(tmp_path / "vak.log.ckpt", data)
    report = report_of(log, workers=1)
    assert report.result >= Code.MALFORMED, report.render()
    assert any(f.file == "checkpoint" and f.code == Code.MALFORMED for f in report.findings)
    code, out, err = _cli("verify", str(log), "--key", str(tmp_path / "log.key.pub"))
    assert code == report.result and "Traceback" not in out + err
    code, out, err = _cli("checkpoint", str(log))
    assert code != EXIT_INTERNAL and "Traceback" not in out + err
    _writer_refuses(log, "is not a checkpoint")


@pytest.mark.parametrize("state", [
    b"[]", b'"x"', b"5", b"null", b'{"origin": 5, "size": 1, "root": "' + b"ab" * 32 + b'"}',
    b'{"origin": "o", "size": "1", "root": "' + b"ab" * 32 + b'"}',
    b'{"origin": "o", "size": true, "root": "' + b"ab" * 32 + b'"}',
    b'{"origin": "o", "size": 1, "root": null}', b'{"origin": "o", "size": 1}',
    b'{"origin": "o", "size": 1, "root": "' + b"AB" * 32 + b'"}',
    b'{"origin": "o", "size": 1, "root": "' + b"ab" * 32 + b'", "time": []}',
    b'{"origin": "o", "size": 1, "root": "' + b"ab" * 32 + b'", "keys": [1]}',
    b'{"origin": "o", "size": 1, "root": "' + b"ab" * 32 + b'", "keys": ["not a key"]}',
    b"[" * 2000, b"\xff\xfe",
], ids=["list", "string", "number", "null", "origin-number", "size-string", "size-bool",
        "root-null", "root-missing", "root-upper", "time-list", "keys-number", "keys-garbage",
        "deep", "not-utf8"])
def test_crafted_state_file_is_a_usage_error_not_a_verdict(base: Path, tmp_path: Path,
                                                           state: bytes) -> None:
    log = copy_log(base, tmp_path)
    (tmp_path / "s.json").write_bytes(state)
    code, out, err = _cli("verify", str(log), "--key", str(tmp_path / "log.key.pub"),
                          "--state", str(tmp_path / "s.json"))
    assert code == Code.USAGE, out + err
    assert "state" in err and "Traceback" not in out + err


@pytest.mark.parametrize("receipt", [
    b"[]", b"5", b'{"seq": "1"}', b'{"seq": 1, "leaf_hash": 5, "proof": [], "checkpoint": "x"}',
    b'{"seq": 1, "leaf_hash": "' + b"00" * 32 + b'", "proof": {}, "checkpoint": "x"}',
    b'{"seq": 1, "leaf_hash": "' + b"00" * 32 + b'", "proof": [], "checkpoint": 7}',
    b'{"seq": 1, "leaf_hash": "' + b"00" * 32 + b'", "proof": [[]], "checkpoint": "x"}',
    b'{"seq": true, "leaf_hash": "' + b"00" * 32 + b'", "proof": [], "checkpoint": "x"}',
], ids=["list", "number", "seq-string", "leaf-number", "proof-object", "note-number",
        "proof-item-list", "seq-bool"])
def test_crafted_receipt_is_refused_with_a_code(base: Path, tmp_path: Path,
                                               receipt: bytes) -> None:
    copy_log(base, tmp_path)
    (tmp_path / "r.json").write_bytes(receipt)
    code, out, err = _cli("verify-receipt", str(tmp_path / "r.json"), "--key",
                          str(tmp_path / "log.key.pub"))
    assert code > Code.WARNINGS and code != EXIT_INTERNAL, out + err
    assert "Traceback" not in out + err


def test_key_file_that_is_not_text_is_a_usage_error(base: Path, tmp_path: Path) -> None:
    log = copy_log(base, tmp_path)
    (tmp_path / "bad.pub").write_bytes(b"\xff\xfe\x00garbage")
    code, _out, err = _cli("verify", str(log), "--key", str(tmp_path / "bad.pub"))
    assert code == Code.USAGE and "Traceback" not in err


def test_internal_error_has_its_own_exit_code(base: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import vak.cli.audit as cli

    log = copy_log(base, tmp_path)

    def broken(*a: object, **k: object) -> None:
        raise RuntimeError("defect \x1b[31m\nRESULT: OK")

    monkeypatch.setattr(cli, "verify_log", broken)
    code, out, err = _cli("verify", str(log), "--key", str(tmp_path / "log.key.pub"))
    assert code == EXIT_INTERNAL not in {c.value for c in Code}
    assert "RESULT: INTERNAL" in out and "RESULT: OK" not in out.splitlines()
    assert "\x1b" not in err and "internal error" in err and err.count("\n") == 1


def test_show_and_verify_escape_control_characters(tmp_path: Path) -> None:
    log = AuditLog.open(tmp_path / "vak.log", key_path=tmp_path / "log.key", origin=ORIGIN)
    forged = "kv:ns/a\n     9  2026-01-01T00:00:00.000000Z  host_decision  allow\x1b[2J\u202e"
    log.append("host_decision", {"invocation": "i", "host_function": "kv_get",
                                 "resource": forged, "decision": {"effect": "allow"},
                                 "skill": {"id": "s\x1b]0;x\x07"}}, durable=True)
    log.close()
    for args in (["show", str(tmp_path / "vak.log")],
                 ["show", str(tmp_path / "vak.log"), "--json"],
                 ["tail", str(tmp_path / "vak.log")]):
        code, out, _err = _cli(*args)
        assert code == 0
        assert out.count("\n") == 3, out  # log_opened, the decision, log_closed: one line each
        assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out
        assert "host_decision" in out
    lines = (tmp_path / "vak.log").read_bytes().split(b"\n")[:-1]
    lines[-1] = lines[-1].replace(b'"log_closed"', b'"log\\n\\u001b[2Jclosed"')
    (tmp_path / "vak.log").write_bytes(b"".join(x + b"\n" for x in lines))
    code, out, _err = _cli("verify", str(tmp_path / "vak.log"), "--key",
                           str(tmp_path / "log.key.pub"))
    assert code > Code.WARNINGS and "\x1b" not in out and "RESULT: " in out


@pytest.mark.parametrize("what", ["log-is-a-directory", "lock-is-a-directory"])
def test_unusable_paths_are_an_audit_error_not_an_os_error(tmp_path: Path, what: str) -> None:
    from vak.errors import AuditError

    (tmp_path / ("vak.log" if what == "log-is-a-directory" else "vak.log.lock")).mkdir()
    with pytest.raises(AuditError, match="cannot open the audit log"):
        AuditLog.open(tmp_path / "vak.log", key_path=tmp_path / "log.key", origin=ORIGIN)
