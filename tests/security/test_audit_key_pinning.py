"""The log's key is pinned: by its first entry for the writer, by the verifier's own records.

Attacks: a kernel restarted with another ``log.key`` must not continue the old
log under the new key; a whole history replaced by one signed with a new key
(its line appended to the ``.pub`` beside the log) must not verify as a plain
OK; a rotation is accepted only as written by :meth:`AuditLog.rotate_key`.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import orjson
import pytest

from vak.audit.keys import load_trusted_keys
from vak.audit.log import AuditLog
from vak.audit.verify import Code, verify_log
from vak.cli.audit import main
from vak.errors import AuditIntegrityError

ORIGIN = "test.vak/pin"


def _open(root: Path, key: str = "log.key") -> AuditLog:
    return AuditLog.open(root / "vak.log", key_path=root / key, origin=ORIGIN,
                         hmac_key_path=root / "args.hmac")


def _write(root: Path, n: int = 3, key: str = "log.key") -> None:
    log = _open(root, key)
    for i in range(n):
        log.append("heartbeat", {"i": i}, durable=True)
    log.close()


def _cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(list(args))
    return code, out.getvalue()


def _config(root: Path, trust: str | None = None) -> Path:
    toml = root / "vak.toml"
    extra = f'trust = "{trust}"\n' if trust else ""
    toml.write_text(f'[audit]\nlog = "state/vak.log"\nkey = "state/log.key"\n'
                    f'hmac_key = "state/args.hmac"\norigin = "{ORIGIN}"\n{extra}')
    return toml


def _another_key(root: Path, dest: Path) -> None:
    """Put a different key of the same origin at ``dest`` (as a restored image might)."""
    other = root / "other-key"
    _open(other).close()
    shutil.copy2(other / "log.key", dest)


def test_restart_with_another_key_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    _write(tmp_path)
    _another_key(tmp_path, tmp_path / "log.key")
    with pytest.raises(AuditIntegrityError, match="not the key this log is bound to") as exc:
        _open(tmp_path)
    assert "rotate_key" in str(exc.value.details.get("fix"))
    assert exc.value.details["file"] == str(tmp_path / "log.key")
    # nothing was appended under the new key
    kinds = [orjson.loads(x)["kind"] for x in (tmp_path / "vak.log").read_bytes().splitlines()]
    assert kinds[-1] == "log_closed"


def test_missing_key_for_an_existing_log_is_refused_and_none_is_minted(tmp_path: Path) -> None:
    _write(tmp_path)
    (tmp_path / "log.key").unlink()
    with pytest.raises(AuditIntegrityError, match="no key file"):
        _open(tmp_path)
    assert not (tmp_path / "log.key").exists()


def test_rotation_moves_the_pin_and_survives_restarts(tmp_path: Path) -> None:
    _write(tmp_path)
    log = _open(tmp_path)
    new_vkey = log.rotate_key()
    log.append("heartbeat", {}, durable=True)
    log.close()
    log = _open(tmp_path)  # the new key is the bound one now
    assert log._vkey == new_vkey
    log.close()
    first = (tmp_path / "log.key.pub").read_text().splitlines()[0]
    (tmp_path / "orig.pub").write_text(first + "\n")
    report = verify_log(tmp_path / "vak.log", load_trusted_keys(tmp_path / "orig.pub"))
    assert report.result == Code.OK, report.render()
    retired = next(tmp_path.glob("log.key.retired-*"))
    shutil.copy2(retired, tmp_path / "log.key")  # the old key, after the rotation
    with pytest.raises(AuditIntegrityError, match="not the key this log is bound to"):
        _open(tmp_path)


def test_rotation_interrupted_before_its_checkpoint_is_completed_on_open(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path)
    log = _open(tmp_path)

    def crash() -> None:
        raise KeyboardInterrupt  # the process dies right after key_rotated is durable

    monkeypatch.setattr(log, "_checkpoint", crash)
    with pytest.raises(KeyboardInterrupt):
        log.rotate_key()
    monkeypatch.undo()
    log._release()
    assert (tmp_path / "log.key.next").exists()
    staged = (tmp_path / "log.key.next").read_bytes()
    log = _open(tmp_path)  # finishes the rotation with the staged key
    log.close()
    assert (tmp_path / "log.key").read_bytes() == staged
    first = (tmp_path / "log.key.pub").read_text().splitlines()[0]
    (tmp_path / "orig.pub").write_text(first + "\n")
    report = verify_log(tmp_path / "vak.log", load_trusted_keys(tmp_path / "orig.pub"))
    assert report.result == Code.OK, report.render()
    _open(tmp_path).close()


def test_forged_rotation_entry_is_refused(tmp_path: Path) -> None:
    _write(tmp_path)
    lines = (tmp_path / "vak.log").read_bytes().split(b"\n")[:-1]
    log = _open(tmp_path / "other")  # a key of the same origin the attacker holds
    attacker = log._vkey
    log.close()
    first = orjson.loads(lines[0])
    forged = {**orjson.loads(lines[-1]), "kind": "key_rotated", "old_key_id": first["key_id"],
              "new_key_id": attacker.split("+")[1], "new_vkey": attacker}
    del forged["seq"], forged["prev"]
    # appended as the writer would, but no checkpoint of the old key covers it
    from vak.audit.entry import encode_entry
    from vak.audit.merkle import leaf_hash

    prev = leaf_hash(lines[-1]).hex()
    line = encode_entry({**forged, "seq": len(lines), "prev": prev})
    with (tmp_path / "vak.log").open("ab") as f:
        f.write(line)
    shutil.copy2(tmp_path / "other" / "log.key", tmp_path / "log.key")
    with pytest.raises(AuditIntegrityError):
        _open(tmp_path)


def test_history_replaced_with_a_new_key_is_not_a_plain_ok(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    _write(state, 4)
    toml = _config(tmp_path)
    code, out = _cli("verify", "--config", str(toml))
    assert code == Code.WARNINGS and "NOT PINNED" in out and "RESULT: WARNINGS" in out
    pinned = tmp_path / "verifier.state"
    code, _ = _cli("verify", "--config", str(toml), "--state", str(pinned), "--update-state")
    assert code == Code.WARNINGS and orjson.loads(pinned.read_bytes())["keys"]
    (tmp_path / "pin.pub").write_bytes((state / "log.key.pub").read_bytes())
    # the attack: a new history under a new key, its line appended to the .pub file
    attacker = tmp_path / "attacker"
    attacker.mkdir()
    _write(attacker, 6)
    for name in ("vak.log", "vak.log.ckpt"):
        shutil.copy2(attacker / name, state / name)
    with (state / "log.key.pub").open("a") as f:
        f.write((attacker / "log.key.pub").read_text())
    code, out = _cli("verify", "--config", str(toml))
    assert code != Code.OK and "RESULT: OK" not in out
    code, out = _cli("verify", "--config", str(toml), "--state", str(pinned))
    assert code > Code.WARNINGS, out  # the pinned key signed none of it
    code, out = _cli("verify", "--config", str(_config(tmp_path, "pin.pub")))
    assert code > Code.WARNINGS and "keys: pinned" in out
    code, out = _cli("verify", str(state / "vak.log"), "--key", str(tmp_path / "pin.pub"))
    assert code > Code.WARNINGS
    # and the kernel with the original key refuses the replaced log
    shutil.copy2(tmp_path / "state" / "log.key", tmp_path / "orig.key")
    with pytest.raises(AuditIntegrityError):
        AuditLog.open(state / "vak.log", key_path=tmp_path / "orig.key", origin=ORIGIN)


def test_pinned_config_verifies_as_plain_ok(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    _write(tmp_path / "state")
    (tmp_path / "pin.pub").write_bytes((tmp_path / "state/log.key.pub").read_bytes())
    code, out = _cli("verify", "--config", str(_config(tmp_path, "pin.pub")))
    assert code == Code.OK and "keys: pinned ([audit] trust" in out, out


def test_kernel_restarted_with_another_log_key_is_refused(tmp_path: Path,
                                                         built_skills: Path) -> None:
    from vak.demo import prepare_workdir
    from vak.kernel import Kernel

    config = prepare_workdir(tmp_path, 9)
    Kernel.from_config(config).close()
    key = tmp_path / "audit" / "log.key"
    key.rename(tmp_path / "elsewhere.key")
    _another_key(tmp_path, key)  # another key file takes its place on restart
    with pytest.raises(AuditIntegrityError, match="not the key this log is bound to"):
        Kernel.from_config(config)
    (tmp_path / "elsewhere.key").replace(key)  # the right key: the kernel starts again
    Kernel.from_config(config).close()
