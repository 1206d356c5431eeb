"""Real logs for fleet tests: written by the audit writer, rewritten like an insider would."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from vak.audit.checkpoint import Checkpoint, sign_checkpoint
from vak.audit.entry import encode_entry, entry_leaf_hash
from vak.audit.keys import load_or_create_private_key, load_trusted_keys
from vak.audit.log import AuditLog
from vak.audit.merkle import MerkleTree

SKILL = {"id": "notes", "version": "1.0.0", "manifest_digest": "sha256:" + "ab" * 32,
         "signer": "a1b2c3d4"}


def open_log(root: Path, name: str) -> AuditLog:
    return AuditLog.open(root / name / "vak.log", key_path=root / name / "log.key",
                         origin=f"test.vak/{name}", fsync="batched:2")


def decision(i: int, effect: str = "allow", skill: dict[str, Any] = SKILL) -> dict[str, Any]:
    return {"invocation": f"inv-{i}", "host_function": "kv_get", "resource": f"kv:ns/k{i}",
            "skill": skill, "session": "s",
            "decision": {"effect": effect, "policy_ids": ["p"],
                         "policy_set": "sha256:" + "cd" * 32}}


def write_log(root: Path, name: str, n: int, *, denials: int = 0) -> tuple[Path, list[Any]]:
    """A closed log of ``n`` host decisions (the first ``denials`` of them denied)."""
    log = open_log(root, name)
    for i in range(n):
        log.append("host_decision", decision(i, "deny" if i < denials else "allow"))
    log.close()
    return log.path, keys_of(root, name)


def keys_of(root: Path, name: str) -> list[Any]:
    return load_trusted_keys(root / name / "log.key.pub")


def rewrite(log: Path, key_path: Path, seq: int, *, keep_checkpoints: bool = True,
            extend: int = 0) -> None:
    """Change entry ``seq``, re-chain everything after it and re-sign one checkpoint with the
    log's own key: a history only consistency with what others saw can expose."""
    lines = log.read_bytes().split(b"\n")[:-1]
    last = orjson.loads(lines[-1])
    for n in range(extend):  # a longer forged history: heartbeats after the last entry
        lines.append(orjson.dumps({**{k: last[k] for k in ("v", "origin", "time")},
                                   "seq": last["seq"] + 1 + n, "kind": "heartbeat",
                                   "prev": ""}))
    key = load_or_create_private_key(key_path)
    out, prev = [], "0" * 64
    tree = MerkleTree()
    for i, raw in enumerate(lines):
        e = orjson.loads(raw)
        if i == seq:
            e["resource"] = "kv:ns/rewritten"
        e["prev"] = prev
        line = encode_entry(e)
        prev = entry_leaf_hash(line).hex()
        tree.append(entry_leaf_hash(line))
        out.append(line)
    log.write_bytes(b"".join(out))
    origin = orjson.loads(lines[0])["origin"]
    cp = sign_checkpoint(Checkpoint(origin, len(out), tree.root(), "2026-01-01T00:00:00Z"), key)
    ckpt = log.with_name(log.name + ".ckpt")
    if not keep_checkpoints:
        ckpt.write_bytes(b"")
    with ckpt.open("ab") as f:  # appended: the old checkpoints stay, as an insider would leave them
        f.write(orjson.dumps({"note": cp.note}) + b"\n")


def _vak(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from vak.cli.main import main; "
            "sys.exit(main(sys.argv[1:]))", *args]


@contextlib.contextmanager
def witness_processes(root: Path, logs: Path, n: int = 2) -> Iterator[list[tuple[str, Path]]]:
    """``n`` `vak witness serve` processes on 127.0.0.1 trusting the log keys in ``logs``;
    yields ``(url, witness key file)`` of each."""
    procs, out = [], []
    try:
        for i in range(1, n + 1):
            key = root / f"w{i}.key"
            subprocess.run(_vak("witness", "keygen", "--name", f"witness.test/w{i}",
                                "--key", str(key)), check=True, capture_output=True)
            p = subprocess.Popen(_vak("witness", "serve", "--name", f"witness.test/w{i}",
                                      "--key", str(key), "--logs", str(logs),
                                      "--state", str(root / f"w{i}.db"),
                                      "--listen", "127.0.0.1:0"),
                                 stdout=subprocess.PIPE, text=True)
            procs.append(p)
            assert p.stdout is not None
            first = p.stdout.readline().strip()
            assert first.startswith("listening on http://127.0.0.1:"), first
            out.append((first.split(" ")[-1], Path(f"{key}.pub")))
        yield out
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
