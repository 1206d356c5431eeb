"""Per-entry signatures (``sign_entries=True``): sidecar format, recovery, tamper rows."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vak.audit.entrysig import entry_message, read_entry_sigs, sigs_path_for
from vak.audit.keys import generate_private_key, load_or_create_private_key, load_trusted_keys
from vak.audit.log import AuditLog
from vak.audit.verify import Code, Report, verify_log

ORIGIN = "test.vak/sigs"


def make_log(root: Path, n: int = 12, *, rotate: bool = False) -> Path:
    log = AuditLog.open(root / "vak.log", key_path=root / "log.key", origin=ORIGIN,
                        sign_entries=True)
    for i in range(n):
        log.append("heartbeat", {"i": i}, durable=i % 4 == 0)
        if rotate and i == n // 2:
            log.rotate_key()
    log.close()
    return root / "vak.log"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_log(tmp_path_factory.mktemp("sigs-base"))


def _copy(base: Path, tmp_path: Path) -> Path:
    for f in base.parent.iterdir():
        shutil.copy(f, tmp_path / f.name)
    return tmp_path / "vak.log"


def _verify(log: Path, pub: Path | None = None) -> Report:
    return verify_log(log, load_trusted_keys(pub or log.parent / "log.key.pub"))


def _records(log: Path) -> list[dict]:
    return [orjson.loads(x) for x in sigs_path_for(log).read_bytes().splitlines()]


def _write_records(log: Path, records: list[dict]) -> None:
    sigs_path_for(log).write_bytes(b"".join(
        orjson.dumps(r, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)
        for r in records))


def test_every_entry_is_signed_and_verifies(base: Path) -> None:
    lines = base.read_bytes().splitlines()
    records = read_entry_sigs(sigs_path_for(base))
    assert [r.seq for r in records] == list(range(len(lines)))
    assert orjson.loads(lines[0])["entry_sigs"] is True
    report = _verify(base)
    assert report.result == Code.OK, report.render()


def test_off_by_default_writes_no_sidecar(tmp_path: Path) -> None:
    log = AuditLog.open(tmp_path / "vak.log", key_path=tmp_path / "log.key", origin=ORIGIN)
    log.append("heartbeat", {})
    log.close()
    assert not sigs_path_for(tmp_path / "vak.log").exists()
    assert "entry_sigs" not in orjson.loads((tmp_path / "vak.log").read_bytes().splitlines()[0])


def test_signatures_follow_a_key_rotation(tmp_path: Path) -> None:
    log = make_log(tmp_path, rotate=True)
    kids = {r.key_id for r in read_entry_sigs(sigs_path_for(log))}
    assert len(kids) == 2
    first = (tmp_path / "log.key.pub").read_text().splitlines()[0]
    (tmp_path / "orig.pub").write_text(first + "\n")
    report = _verify(log, tmp_path / "orig.pub")
    assert report.result == Code.OK, report.render()


def test_recovery_cuts_the_signature_of_a_torn_entry(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    n = len(log.read_bytes().splitlines())
    records = _records(log)
    torn = dict(records[-1], seq=n)  # the signature of a line that never made it whole
    _write_records(log, [*records, torn])
    with log.open("ab") as f:
        f.write(b'{"kind":"heartb')
    AuditLog.open(log, key_path=tmp_path / "log.key", origin=ORIGIN, sign_entries=True).close()
    report = _verify(log)
    assert report.result == Code.OK, report.render()


# --------------------------------------------------------------------- tampering
Tamper = Callable[[Path], None]


def t_flip_sig(log: Path) -> None:
    records = _records(log)
    sig = bytearray(base64.b64decode(records[3]["sig"]))
    sig[10] ^= 1
    records[3]["sig"] = base64.b64encode(bytes(sig)).decode()
    _write_records(log, records)


def t_delete_record(log: Path) -> None:
    records = _records(log)
    del records[5]
    _write_records(log, records)


def t_delete_sidecar(log: Path) -> None:
    sigs_path_for(log).unlink()


def t_replay_other_seq(log: Path) -> None:
    records = _records(log)
    records[4] = dict(records[6], seq=4)
    _write_records(log, records)


def t_untrusted_key(log: Path) -> None:
    records = _records(log)
    other = generate_private_key()
    leaf = bytes.fromhex(records[2]["leaf"])
    records[2]["sig"] = base64.b64encode(other.sign(entry_message(ORIGIN, 2, leaf))).decode()
    records[2]["key_id"] = "00000000"
    _write_records(log, records)


def t_malformed_record(log: Path) -> None:
    with sigs_path_for(log).open("ab") as f:
        f.write(b'{"seq": "x"}\n')


def t_signed_other_entry(log: Path) -> None:
    # the key holder signs a different entry for seq 3: the log's seq 3 is not it
    key = load_or_create_private_key(log.parent / "log.key")
    records = _records(log)
    leaf = bytes(32)
    records[3]["leaf"] = leaf.hex()
    records[3]["sig"] = base64.b64encode(key.sign(entry_message(ORIGIN, 3, leaf))).decode()
    _write_records(log, records)


def t_signature_beyond_checkpointed_log(log: Path) -> None:
    key = load_or_create_private_key(log.parent / "log.key")
    records = _records(log)
    leaf = bytes(32)
    records.append(dict(records[0], seq=2, leaf=leaf.hex()))
    records[-1]["seq"] = 1000
    records[-1]["sig"] = base64.b64encode(key.sign(entry_message(ORIGIN, 1000, leaf))).decode()
    _write_records(log, records)


TABLE: list[tuple[str, Tamper, Code]] = [
    ("flipped-signature", t_flip_sig, Code.BAD_SIGNATURE),
    ("deleted-record", t_delete_record, Code.BAD_SIGNATURE),
    ("deleted-sidecar", t_delete_sidecar, Code.BAD_SIGNATURE),
    ("replayed-for-other-seq", t_replay_other_seq, Code.BAD_SIGNATURE),
    ("untrusted-key", t_untrusted_key, Code.KEY_UNTRUSTED),
    ("malformed-record", t_malformed_record, Code.MALFORMED),
    ("key-signed-another-entry", t_signed_other_entry, Code.MODIFIED),
    ("signed-entry-not-in-log", t_signature_beyond_checkpointed_log, Code.WARNINGS),
]


@pytest.mark.parametrize(("tamper", "code"), [(t, c) for _, t, c in TABLE],
                         ids=[name for name, _, _ in TABLE])
def test_tampered_sidecar_is_detected(base: Path, tmp_path: Path, tamper: Tamper,
                                      code: Code) -> None:
    log = _copy(base, tmp_path)
    tamper(log)
    report = _verify(log)
    assert report.result == code, report.render()
    assert any(f.file == "sigs" and f.code == code for f in report.findings)


def test_entry_edit_is_reported_against_its_signature_too(base: Path, tmp_path: Path) -> None:
    log = _copy(base, tmp_path)
    lines = log.read_bytes().splitlines()
    lines[-1] = lines[-1].replace(b'"kind":"log_closed"', b'"kind":"heartbeat"')
    log.write_bytes(b"".join(x + b"\n" for x in lines))
    report = _verify(log)
    assert report.result >= Code.MODIFIED, report.render()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_single_byte_change_in_the_sidecar_is_detected(base: Path, tmp_path_factory:
                                                           pytest.TempPathFactory,
                                                           data: st.DataObject) -> None:
    log = _copy(base, tmp_path_factory.mktemp("sigs-byte"))
    raw = bytearray(sigs_path_for(log).read_bytes())
    pos = data.draw(st.integers(0, len(raw) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != raw[pos]))
    raw[pos] = new
    sigs_path_for(log).write_bytes(bytes(raw))
    report = _verify(log)
    assert report.result > Code.WARNINGS, (pos, report.render())


@pytest.mark.parametrize("field", ["leaf", "key_id", "sig"])
def test_a_record_in_another_spelling_of_the_same_bytes_is_malformed(
        base: Path, tmp_path: Path, field: str) -> None:
    log = _copy(base, tmp_path)
    records = _records(log)
    value = records[3][field]
    if field == "sig":  # the last base64 digit before "==" carries 4 unused bits
        digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        last = digits.index(value[-3])
        records[3][field] = value[:-3] + digits[last ^ 1] + "=="
    else:
        records[3][field] = value.upper()
    assert records[3][field] != value
    _write_records(log, records)
    report = _verify(log)
    assert report.result > Code.WARNINGS, report.render()
    assert any(f.file == "sigs" and f.line == 4 for f in report.findings), report.render()
