"""Tampered audit logs: every attack in the table gets its own code and location."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vak.audit.checkpoint import Checkpoint, sign_checkpoint
from vak.audit.keys import load_or_create_private_key, load_trusted_keys
from vak.audit.log import AuditLog
from vak.audit.state import VerifierState
from vak.audit.verify import Code, Report, verify_log

SKILL = {"id": "calc", "version": "1.0.0", "manifest_digest": "sha256:" + "ab" * 32,
         "signer": "k1"}


def make_log(root: Path, n_invocations: int = 6, origin: str = "test.vak/k1") -> Path:
    """A realistic closed log with a checkpoint after every invocation."""
    log = AuditLog.open(root / "vak.log", key_path=root / "log.key", origin=origin)
    for i in range(n_invocations):
        inv = f"inv-{i}"
        log.append("invocation_started", {"invocation": inv, "session": "s1", "skill": SKILL,
                                          "export": "add"})
        log.append("host_decision", {
            "invocation": inv, "session": "s1", "skill": SKILL, "host_function": "fs_read",
            "resource": "/workspace/a.txt", "args_hmac": log.args_digest(b'{"path":"a"}'),
            "decision": {"effect": "allow" if i % 2 else "deny", "policy_ids": ["p1"],
                         "policy_set": "sha256:" + "cd" * 32},
        }, durable=True)
        log.append("host_result", {"invocation": inv, "host_function": "fs_read",
                                   "outcome": {"status": "ok", "duration_us": 12}})
        log.append("invocation_finished", {"invocation": inv, "skill": SKILL,
                                           "outcome": {"status": "ok", "duration_us": 99}})
        log.checkpoint()
    log.close()
    return root / "vak.log"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_log(tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_log(tmp_path_factory.mktemp("other"), 2, origin="test.vak/k2")


def _lines(p: Path) -> list[bytes]:
    return p.read_bytes().split(b"\n")[:-1]


def _write(p: Path, lines: list[bytes]) -> None:
    p.write_bytes(b"".join(line + b"\n" for line in lines))


Tamper = Callable[[Path, Path], dict]


def t_none(log: Path, other: Path) -> dict:
    return {}


def t_torn_tail(log: Path, other: Path) -> dict:
    with log.open("ab") as f:
        f.write(b'{"kind":"heartb')
    return {}


def t_no_checkpoints(log: Path, other: Path) -> dict:
    (log.parent / "vak.log.ckpt").unlink()
    return {}


def t_non_canonical(log: Path, other: Path) -> dict:
    lines = _lines(log)
    lines[5] = lines[5].replace(b'"kind":', b'"kind": ')
    _write(log, lines)
    return {"line": 6}


def t_truncated(log: Path, other: Path) -> dict:
    _write(log, _lines(log)[:-3])
    return {}


def t_missing(log: Path, other: Path) -> dict:
    lines = _lines(log)
    del lines[7]
    _write(log, lines)
    return {"seq": 7}


def t_duplicated(log: Path, other: Path) -> dict:
    lines = _lines(log)
    lines.insert(9, lines[8])
    _write(log, lines)
    return {"line": 10}


def t_inserted(log: Path, other: Path) -> dict:
    lines = _lines(log)
    forged = orjson.loads(lines[8])
    forged["resource"] = "/etc/shadow"
    lines.insert(9, orjson.dumps(forged, option=orjson.OPT_SORT_KEYS))
    _write(log, lines)
    return {"line": 10}


def t_reordered(log: Path, other: Path) -> dict:
    lines = _lines(log)
    lines[10], lines[11] = lines[11], lines[10]
    _write(log, lines)
    return {}


def t_modified(log: Path, other: Path) -> dict:
    lines = _lines(log)
    assert b'"effect":"deny"' in lines[2]
    lines[2] = lines[2].replace(b'"effect":"deny"', b'"effect":"allow"')
    _write(log, lines)
    return {"line": 3}


def t_spliced(log: Path, other: Path) -> dict:
    lines = _lines(log)
    lines[4] = _lines(other)[4]
    _write(log, lines)
    return {"line": 5}


def t_rollback(log: Path, other: Path) -> dict:
    keys = load_trusted_keys(log.parent / "log.key.pub")
    full = verify_log(log, keys)
    assert full.latest is not None
    cp = full.latest.checkpoint
    ck = log.parent / "vak.log.ckpt"
    _write(log, _lines(log)[:9])
    _write(ck, [line for line in _lines(ck) if orjson.loads(line)["note"].split("\n")[1]
                in ("1", "5", "9")])
    return {"state": VerifierState(cp.origin, cp.size, cp.root.hex(), cp.time)}


def t_fork(log: Path, other: Path) -> dict:
    key = load_or_create_private_key(log.parent / "log.key")
    forged = sign_checkpoint(Checkpoint("test.vak/k1", 9, b"\x07" * 32, "2026-01-01T00:00:00Z"),
                             key)
    with (log.parent / "vak.log.ckpt").open("ab") as f:
        f.write(orjson.dumps({"note": forged.note}) + b"\n")
    return {}


def t_bad_signature(log: Path, other: Path) -> dict:
    ck = log.parent / "vak.log.ckpt"
    lines = _lines(ck)
    note = orjson.loads(lines[2])["note"]
    head, sig = note.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(sig))
    raw[10] ^= 1
    lines[2] = orjson.dumps({"note": f"{head} {base64.b64encode(bytes(raw)).decode()}\n"})
    _write(ck, lines)
    return {}


def t_untrusted_key(log: Path, other: Path) -> dict:
    return {"keys": other.parent / "log.key.pub"}


def t_revoked_key(log: Path, other: Path) -> dict:
    trust = log.parent / "trust"
    trust.write_text((log.parent / "log.key.pub").read_text().strip() + " revoked\n")
    return {"keys": trust}


def t_expired_key(log: Path, other: Path) -> dict:
    trust = log.parent / "trust"
    trust.write_text((log.parent / "log.key.pub").read_text().strip()
                     + " not-after=2001-01-01T00:00:00Z\n")
    return {"keys": trust}


def t_effect_without_approval(log: Path, other: Path) -> dict:
    """Rewritten by the key holder: an effect whose decision needed approval, none cited."""
    for name in ("vak.log", "vak.log.ckpt"):
        (log.parent / name).unlink()
    w = AuditLog.open(log, key_path=log.parent / "log.key", origin="test.vak/k1")
    ref = w.append("host_decision", {
        "invocation": "i", "session": "s1", "skill": SKILL, "host_function": "fs_write",
        "resource": "/workspace/a.txt", "args_hmac": w.args_digest(b"{}"),
        "decision": {"effect": "approval_required", "policy_ids": ["p1"],
                     "policy_set": "sha256:" + "cd" * 32},
        "approval": {"id": "0" * 32, "binding": "sha256:" + "0" * 64}}, durable=True)
    w.append("host_result", {"invocation": "i", "host_function": "fs_write",
                             "decision_seq": ref.seq, "outcome": {"status": "ok"}})
    w.close()
    return {"seq": ref.seq + 1}


CASES: list[tuple[str, Tamper, Code]] = [
    ("intact", t_none, Code.OK),
    ("torn-tail-beyond-checkpoint", t_torn_tail, Code.WARNINGS),
    ("no-checkpoint", t_no_checkpoints, Code.UNVERIFIABLE),
    ("non-canonical", t_non_canonical, Code.MALFORMED),
    ("truncated", t_truncated, Code.TRUNCATED),
    ("entry-deleted", t_missing, Code.MISSING),
    ("entry-duplicated", t_duplicated, Code.INSERTED),
    ("entry-inserted", t_inserted, Code.INSERTED),
    ("entries-swapped", t_reordered, Code.REORDERED),
    ("decision-edited", t_modified, Code.MODIFIED),
    ("spliced-from-other-log", t_spliced, Code.SPLICED),
    ("untrusted-key", t_untrusted_key, Code.KEY_UNTRUSTED),
    ("revoked-key", t_revoked_key, Code.KEY_UNTRUSTED),
    ("expired-key", t_expired_key, Code.KEY_UNTRUSTED),
    ("bad-checkpoint-signature", t_bad_signature, Code.BAD_SIGNATURE),
    ("rollback", t_rollback, Code.ROLLBACK),
    ("fork", t_fork, Code.FORK),
    ("effect-without-approval", t_effect_without_approval, Code.APPROVAL),
]


#: the files of a log made by :func:`make_log` (the args key only when written)
LOG_FILES = ("vak.log", "vak.log.ckpt", "log.key", "log.key.pub", "args.hmac")


def copy_log(base: Path, dest: Path) -> Path:
    """A copy of the log ``base`` (and its checkpoints and keys) in ``dest``, to tamper with."""
    for name in LOG_FILES:
        with contextlib.suppress(FileNotFoundError):
            shutil.copy2(base.parent / name, dest / name)
    return dest / "vak.log"


def report_of(log: Path, workers: int | None = None) -> Report:
    """The verifier's report on ``log`` with the log key beside it trusted."""
    return verify_log(log, load_trusted_keys(log.parent / "log.key.pub"), workers=workers)


def mutated(base: Path, dest: Path, mutate: Callable[[Path, st.DataObject], int],
            data: st.DataObject) -> tuple[Path, int]:
    """A copy of ``base`` in ``dest`` changed by ``mutate`` (which returns the line index)."""
    log = copy_log(base, dest)
    return log, mutate(log, data)


@pytest.mark.parametrize(("tamper", "want"), [(c[1], c[2]) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_tamper_case(base: Path, other: Path, tmp_path: Path, tamper: Tamper, want: Code) -> None:
    log = copy_log(base, tmp_path)
    info = tamper(log, other)
    keys = load_trusted_keys(info.get("keys", log.parent / "log.key.pub"))
    report = verify_log(log, keys, state=info.get("state"))
    assert report.result == want, report.render()
    if want > Code.WARNINGS:
        top = [f for f in report.findings if f.code == want]
        assert top and all(f.message for f in top)
    if "line" in info:
        assert any(f.line == info["line"] for f in report.findings if f.file == "log"), \
            report.render()
    if "seq" in info:
        assert any(f.seq == info["seq"] for f in report.findings), report.render()
    assert f"RESULT: {want.name}" in report.render()


def test_codes_are_distinct() -> None:
    wanted = {c[2] for c in CASES}
    assert wanted | {Code.USAGE} == set(Code)


def flip_one_byte(log: Path, data: st.DataObject) -> int:
    """Change one byte of ``log`` (drawn); returns the index of the line it was on."""
    raw = bytearray(log.read_bytes())
    pos = data.draw(st.integers(0, len(raw) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != raw[pos]))
    index = raw[:pos].count(b"\n")
    raw[pos] = new
    log.write_bytes(bytes(raw))
    return index


def _located(report: Report, index: int) -> bool:
    return any((f.file == "log" and f.line in (index + 1, index + 2)) or f.seq == index
               for f in report.findings)


_HYP = settings(max_examples=80, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@_HYP
@given(data=st.data())
def test_any_single_byte_change_is_detected_and_located(base: Path, tmp_path: Path,
                                                        data: st.DataObject) -> None:
    log, index = mutated(base, tmp_path, flip_one_byte, data)
    report = report_of(log)
    assert report.result > Code.WARNINGS, report.render()
    assert _located(report, index), (index, report.render())


@_HYP
@given(data=st.data())
def test_any_line_deleted_duplicated_or_moved_is_detected(base: Path, tmp_path: Path,
                                                          data: st.DataObject) -> None:
    log = copy_log(base, tmp_path)
    lines = _lines(log)
    op = data.draw(st.sampled_from(["delete", "duplicate", "move"]))
    i = data.draw(st.integers(0, len(lines) - 1))
    if op == "delete":
        del lines[i]
        want = {Code.MISSING, Code.TRUNCATED}
    elif op == "duplicate":
        j = data.draw(st.integers(0, len(lines)))
        lines.insert(j, lines[i])
        want = {Code.INSERTED}
    else:
        j = data.draw(st.integers(0, len(lines) - 1).filter(lambda j: j != i))
        lines.insert(j, lines.pop(i))
        want = {Code.REORDERED}
    _write(log, lines)
    report = report_of(log)
    assert report.result in want, (op, i, report.render())
    assert any(f.seq == i or f.line is not None for f in report.findings if f.code in want)


def test_changed_prev_is_blamed_on_its_own_line_when_a_checkpoint_vouches_for_the_one_before(
        base: Path, tmp_path: Path) -> None:
    # a lone broken link a -> b: a checkpoint of size b.seq covers a and matches, so b changed
    log = copy_log(base, tmp_path)
    lines = _lines(log)
    entry = orjson.loads(lines[-1])
    entry["prev"] = "0" * 64
    lines[-1] = orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)
    _write(log, lines)
    report = report_of(log)
    assert report.result == Code.MODIFIED, report.render()
    assert [f.line for f in report.findings if f.file == "log"] == [len(lines)]
    assert report.trusted_prefix == len(lines) - 1


@pytest.fixture
def parallel_always(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the forked fast path run on the table's small logs too."""
    import vak.audit.scan

    monkeypatch.setattr(vak.audit.scan, "PARALLEL_MIN_BYTES", 0)


@pytest.mark.parametrize(("tamper", "want"), [(c[1], c[2]) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_tamper_case_gives_the_same_report_serial_and_parallel(
        base: Path, other: Path, tmp_path: Path, tamper: Tamper, want: Code,
        parallel_always: None) -> None:
    log = copy_log(base, tmp_path)
    info = tamper(log, other)
    keys = load_trusted_keys(info.get("keys", log.parent / "log.key.pub"))
    serial = verify_log(log, keys, state=info.get("state"), workers=1)
    assert serial.result == want
    for workers in (2, 3, 5):
        parallel = verify_log(log, keys, state=info.get("state"), workers=workers)
        assert parallel == serial, (workers, parallel.render(), serial.render())


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_edits_give_the_same_report_serial_and_parallel(
        base: Path, tmp_path: Path, data: st.DataObject, parallel_always: None) -> None:
    log = copy_log(base, tmp_path)
    lines = _lines(log)
    op = data.draw(st.sampled_from(["none", "byte", "delete", "duplicate", "truncate"]))
    i = data.draw(st.integers(0, len(lines) - 1))
    if op == "byte":
        raw = bytearray(lines[i])
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(32, 126))
        lines[i] = bytes(raw)
    elif op == "delete":
        del lines[i]
    elif op == "duplicate":
        lines.insert(data.draw(st.integers(0, len(lines))), lines[i])
    elif op == "truncate":
        del lines[i:]
    _write(log, lines)
    keys = load_trusted_keys(tmp_path / "log.key.pub")
    serial = verify_log(log, keys, workers=1)
    workers = data.draw(st.integers(2, 6))
    assert verify_log(log, keys, workers=workers) == serial, op


def test_a_broken_link_on_any_line_gives_the_same_report_serial_and_parallel(
        base: Path, tmp_path: Path, parallel_always: None) -> None:
    # whichever line starts a worker's range, its prev is checked across the boundary
    log = copy_log(base, tmp_path)
    keys = load_trusted_keys(tmp_path / "log.key.pub")
    original = _lines(log)
    for i in range(len(original)):
        lines = list(original)
        prev = "1" * 64
        for j in range(i, len(lines)):  # re-chain the rest: only the link into i is broken
            entry = orjson.loads(lines[j])
            entry["prev"] = prev
            lines[j] = orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)
            prev = hashlib.sha256(b"\x00" + lines[j]).hexdigest()
        _write(log, lines)
        serial = verify_log(log, keys, workers=1)
        assert serial.result == Code.MODIFIED, i
        for workers in (2, 3, 4):
            assert verify_log(log, keys, workers=workers) == serial, (i, workers)


@pytest.mark.parametrize("edit", [
    lambda raw: b"",
    lambda raw: raw + b'{"torn":',
    lambda raw: raw + b"\n",
    lambda raw: raw[: len(raw) // 2] + b"\n" + raw[len(raw) // 2:],
    lambda raw: raw.replace(b"\n", b"\r\n", 3),
], ids=["empty", "torn-tail", "blank-last-line", "split-line", "crlf"])
def test_odd_files_give_the_same_report_serial_and_parallel(
        base: Path, tmp_path: Path, edit: Callable[[bytes], bytes],
        parallel_always: None) -> None:
    log = copy_log(base, tmp_path)
    log.write_bytes(edit(log.read_bytes()))
    keys = load_trusted_keys(tmp_path / "log.key.pub")
    serial = verify_log(log, keys, workers=1)
    for workers in (2, 7):
        assert verify_log(log, keys, workers=workers) == serial, workers
