"""AuditLog: keys, durability modes, receipts, rotation, recovery, concurrency, crashes."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import orjson
import pytest

from vak.audit.keys import load_trusted_keys
from vak.audit.log import AuditLog, Receipt, verify_receipt
from vak.audit.merkle import verify_consistency
from vak.audit.settings import AuditSettings
from vak.audit.verify import Code, verify_log
from vak.canonical import CanonicalError
from vak.config import KernelConfig
from vak.errors import AuditIntegrityError, AuditVerificationError, KeyFileError

ORIGIN = "test.vak/log"


def _open(root: Path, **kw: object) -> AuditLog:
    return AuditLog.open(root / "vak.log", key_path=root / "log.key", origin=ORIGIN, **kw)


def _verify(root: Path) -> Code:
    report = verify_log(root / "vak.log", load_trusted_keys(root / "log.key.pub"))
    assert report.result <= Code.WARNINGS, report.render()
    return report.result


def test_first_use_creates_private_key_and_public_export(tmp_path: Path) -> None:
    log = _open(tmp_path)
    log.close()
    for name in ("log.key", "args.hmac"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    pub = (tmp_path / "log.key.pub").read_text()
    assert pub.startswith(ORIGIN + "+") and "PRIVATE" not in pub
    assert log.public_key_path == tmp_path / "log.key.pub"
    assert _verify(tmp_path) == Code.OK


def test_permissive_key_file_is_refused(tmp_path: Path) -> None:
    _open(tmp_path).close()
    os.chmod(tmp_path / "log.key", 0o644)
    with pytest.raises(KeyFileError, match="readable by group"):
        _open(tmp_path)


@pytest.mark.parametrize("fsync", ["strict", "batched:2"])
def test_append_receipt_and_reopen(tmp_path: Path, fsync: str) -> None:
    log = _open(tmp_path, fsync=fsync)
    refs = [log.append("heartbeat", {}, durable=i % 3 == 0) for i in range(20)]
    assert [r.seq for r in refs] == list(range(1, 21))
    receipt = log.receipt(refs[4].seq)
    verify_receipt(receipt, log.public_key_path)
    verify_receipt(Receipt.from_json(orjson.loads(orjson.dumps(receipt.to_json()))),
                   load_trusted_keys(log.public_key_path))
    log.close()
    log2 = _open(tmp_path, fsync=fsync)
    assert log2.append("heartbeat", {}).seq == 23  # log_closed + log_opened in between
    log2.close()
    assert _verify(tmp_path) == Code.OK


def test_receipt_from_earlier_invocation_proves_inclusion_in_later_checkpoint(
        tmp_path: Path) -> None:
    log = _open(tmp_path)
    ref = log.append("heartbeat", {}, durable=True)
    early = log.receipt(ref.seq)
    for _ in range(30):
        log.append("heartbeat", {})
    later = log.checkpoint()
    old, new = early.checkpoint.checkpoint, later.checkpoint
    verify_consistency(old.size, new.size, log.consistency_proof(old.size, new.size),
                       old.root, new.root)
    line = (tmp_path / "vak.log").read_bytes().split(b"\n")[ref.seq]
    verify_receipt(log.receipt(ref.seq), log.public_key_path, line=line)
    with pytest.raises(AuditVerificationError):
        verify_receipt(early, log.public_key_path, line=line + b" ")
    log.close()


def test_receipt_rejects_tampering(tmp_path: Path) -> None:
    log = _open(tmp_path)
    receipt = log.receipt(log.append("heartbeat", {}).seq)
    log.close()
    data = receipt.to_json()
    data["seq"] += 1
    with pytest.raises(AuditVerificationError):
        verify_receipt(Receipt.from_json(data), log.public_key_path)


@pytest.mark.parametrize(
    ("kind", "fields"),
    [("no_such_kind", {}), ("host_result", {"invocation": "i"}),
     ("heartbeat", {"seq": 5}), ("heartbeat", {"x": 1.5}), ("heartbeat", {"x": 2**60})],
    ids=["unknown-kind", "missing-field", "header-override", "float", "big-int"],
)
def test_bad_fields_are_refused(tmp_path: Path, kind: str, fields: dict) -> None:
    log = _open(tmp_path)
    with pytest.raises(CanonicalError):
        log.append(kind, fields)
    log.close()
    assert _verify(tmp_path) == Code.OK


def test_second_process_without_multiprocess_is_refused(tmp_path: Path) -> None:
    log = _open(tmp_path)
    code = f"""
from vak.audit.log import AuditLog
try:
    AuditLog.open({str(tmp_path / 'vak.log')!r}, key_path={str(tmp_path / 'log.key')!r},
                  origin={ORIGIN!r})
except Exception as exc:
    print(type(exc).__name__)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    log.close()
    assert out.stdout.strip() == "AuditError"


def test_args_digest_is_keyed_and_stable(tmp_path: Path) -> None:
    a = _open(tmp_path / "a")
    b = _open(tmp_path / "b")
    assert a.args_digest(b"x") == a.args_digest(b"x") != b.args_digest(b"x")
    digest = a.args_digest(b"secret")
    assert digest.startswith("hmac-sha256:") and len(digest) == 12 + 64
    assert "secret" not in digest and bytes.fromhex(digest[12:])
    a.close()
    b.close()


def test_rotation_verifies_with_the_original_key_only(tmp_path: Path) -> None:
    log = _open(tmp_path)
    first = (tmp_path / "log.key.pub").read_text().splitlines()[0]
    log.append("heartbeat", {}, durable=True)
    new_vkey = log.rotate_key()
    log.append("heartbeat", {}, durable=True)
    log.close()
    assert (tmp_path / "log.key.pub").read_text().splitlines() == [first, new_vkey]
    assert list(tmp_path.glob("log.key.retired-*"))
    (tmp_path / "orig.pub").write_text(first + "\n")
    report = verify_log(tmp_path / "vak.log", load_trusted_keys(tmp_path / "orig.pub"))
    assert report.result == Code.OK, report.render()
    (tmp_path / "new.pub").write_text(new_vkey + "\n")
    report = verify_log(tmp_path / "vak.log", load_trusted_keys(tmp_path / "new.pub"))
    assert report.result == Code.KEY_UNTRUSTED  # the new key alone cannot vouch for the past


def test_torn_tail_beyond_checkpoint_is_cut_and_recorded(tmp_path: Path) -> None:
    _open(tmp_path).close()
    with (tmp_path / "vak.log").open("ab") as f:
        f.write(b'{"kind":"host_deci')
    log = _open(tmp_path)
    log.close()
    entries = [orjson.loads(x) for x in (tmp_path / "vak.log").read_bytes().splitlines()]
    recovered = [e for e in entries if e["kind"] == "recovered"]
    assert recovered and recovered[0]["dropped_bytes"] == 18
    assert _verify(tmp_path) == Code.OK


def test_torn_line_inside_checkpointed_prefix_refuses_to_start(tmp_path: Path) -> None:
    _open(tmp_path).close()
    data = (tmp_path / "vak.log").read_bytes()
    (tmp_path / "vak.log").write_bytes(data[:-10])
    with pytest.raises(AuditIntegrityError, match="checkpoint covers"):
        _open(tmp_path)


def test_from_config(tmp_path: Path) -> None:
    cfg = KernelConfig(state_dir=tmp_path, audit_origin="cfg.vak/k")
    log = AuditLog.open(AuditSettings(cfg.resolved("audit_log"), cfg.resolved("audit_key"),
                                      cfg.resolved("audit_hmac_key"), origin=cfg.audit_origin))
    log.append("heartbeat", {})
    log.close()
    assert cfg.resolved("audit_log").exists() and cfg.resolved("audit_hmac_key").exists()
    report = verify_log(cfg.resolved("audit_log"),
                        load_trusted_keys(log.public_key_path))
    assert report.result == Code.OK


def test_eight_threads_one_chain(tmp_path: Path) -> None:
    log = _open(tmp_path, fsync="batched:2")

    def work(t: int) -> None:
        for i in range(200):
            log.append("heartbeat", {"thread": t, "i": i}, durable=i % 50 == 0)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    log.close()
    assert _verify(tmp_path) == Code.OK
    assert len((tmp_path / "vak.log").read_bytes().splitlines()) == 8 * 200 + 2


_WRITER = textwrap.dedent("""
    import sys
    from vak.audit.log import AuditLog
    root, n, mp = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "mp"
    log = AuditLog.open(root + "/vak.log", key_path=root + "/log.key",
                        origin="test.vak/log", multiprocess=mp)
    print("ready", flush=True)
    i = 0
    while n < 0 or i < n:
        log.append("heartbeat", {"pid_i": i}, durable=i % 10 == 0)
        i += 1
    log.close()
""")


def test_two_processes_one_chain(tmp_path: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), "300", "mp"],
                              stdout=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=120) == 0
    assert _verify(tmp_path) == Code.OK
    kinds = [orjson.loads(x)["kind"] for x in (tmp_path / "vak.log").read_bytes().splitlines()]
    assert kinds.count("heartbeat") == 600 and kinds.count("log_opened") == 2


def test_sigkill_mid_append_then_reopen(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), "-1", "x"],
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert verify_log(tmp_path / "vak.log",
                      load_trusted_keys(tmp_path / "log.key.pub")).result <= Code.WARNINGS
    log = _open(tmp_path)  # the dead writer's lock died with it
    log.append("heartbeat", {}, durable=True)
    log.close()
    assert _verify(tmp_path) == Code.OK


def test_skill_loaded_and_worker_crashed_entries_verify(tmp_path: Path) -> None:
    log = _open(tmp_path)
    skill = {"id": "calc", "version": "1.0.0", "manifest_digest": "sha256:" + "ab" * 32,
             "module_sha256": "sha256:" + "cd" * 32, "signer": "a1b2c3d4", "tier": "community"}
    log.append("skill_loaded", {"skill": skill, "tools": ["calc.add", "calc.mul"],
                                "route": "worker"})
    log.append("worker_crashed", {"skill": skill, "exit": {"signal": 9, "code": None},
                                  "pid": 4242, "invocation": "inv-1"}, durable=True)
    with pytest.raises(CanonicalError, match="tools"):
        log.append("skill_loaded", {"skill": skill, "route": "engine"})
    log.close()
    assert _verify(tmp_path) == Code.OK
    kinds = [orjson.loads(x)["kind"] for x in (tmp_path / "vak.log").read_bytes().splitlines()]
    assert kinds[1:3] == ["skill_loaded", "worker_crashed"]
