"""``vak-audit``: verify, inspect and prove things about a VAK audit log offline.

Example::

    vak-audit verify audit/vak.log --key audit/log.key.pub
    vak-audit verify --config vak.toml --state ~/.vak-audit.state --update-state --json
    vak-audit show audit/vak.log --kind host_decision --decision deny
    vak-audit prove --seq 42 audit/vak.log > receipt.json
    vak-audit verify-receipt receipt.json --key audit/log.key.pub

Exit codes are :class:`vak.audit.verify.Code` (0 verified ... 14 fork; 2 usage
or I/O error); docs/AUDIT-FORMAT.md lists them.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence
from hashlib import sha256
from pathlib import Path
from typing import Any

import orjson

from vak.audit.checkpoint import (
    CheckpointSignatureError,
    SignedCheckpoint,
    UntrustedKeyError,
)
from vak.audit.keys import TrustedKey, load_trusted_keys, public_path_for
from vak.audit.log import Receipt, checkpoint_path_for, read_checkpoints, verify_receipt
from vak.audit.merkle import MerkleTree, verify_consistency
from vak.audit.state import VerifierState, load_state, save_state
from vak.audit.verify import Code, verify_log
from vak.cli import fleet as fleet_cli
from vak.config import KernelConfig
from vak.errors import AuditVerificationError, VakError

__all__ = ["main"]


class _Usage(Exception):
    pass


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _log_and_keys(args: argparse.Namespace, *, need_keys: bool) -> tuple[Path, list[TrustedKey]]:
    log: Path | None = Path(args.log) if getattr(args, "log", None) else None
    key_file: Path | None = None
    if getattr(args, "config", None):
        cfg = KernelConfig.from_toml(args.config)
        log = log or cfg.resolved("audit_log")
        key_file = public_path_for(cfg.resolved("audit_key"))
    if getattr(args, "trust", None):
        key_file = Path(args.trust)
    if getattr(args, "key", None):
        key_file = Path(args.key)
    if log is None:
        raise _Usage("no log given: pass LOG or --config vak.toml")
    if not log.exists():
        raise _Usage(f"{log}: audit log not found")
    if not need_keys:
        return log, []
    if key_file is None:
        raise _Usage("no trusted key: pass --key PUB, --trust FILE or --config vak.toml")
    return log, load_trusted_keys(key_file)


def _cmd_verify(args: argparse.Namespace) -> int:
    log, keys = _log_and_keys(args, need_keys=True)
    state = load_state(args.state) if args.state else None
    report = verify_log(log, keys, checkpoint_path=args.checkpoints, state=state,
                        sigs_path=args.sigs)
    if args.json:
        _out(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        _out(report.render())
    if args.update_state and args.state and report.result <= Code.WARNINGS and report.latest:
        cp = report.latest.checkpoint
        save_state(args.state, VerifierState(cp.origin, cp.size, cp.root.hex(), cp.time))
    return int(report.result)


def _entries(log: Path, start: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    with log.open("rb") as f:
        f.seek(start)
        for raw in f:
            if not raw.endswith(b"\n"):
                return
            try:
                yield len(raw), orjson.loads(raw)
            except orjson.JSONDecodeError:
                yield len(raw), {"kind": "<malformed>", "raw": raw[:200].decode("utf-8", "replace")}


def _match(e: dict[str, Any], args: argparse.Namespace) -> bool:
    skill = e.get("skill") if isinstance(e.get("skill"), dict) else {}
    decision = e.get("decision") if isinstance(e.get("decision"), dict) else {}
    checks = (
        (args.kind, e.get("kind")),
        (args.skill, skill.get("id")),
        (args.session, e.get("session")),
        (args.decision, decision.get("effect")),
    )
    if any(want is not None and want != got for want, got in checks):
        return False
    stamp = str(e.get("time", ""))
    return not ((args.since and stamp < args.since) or (args.until and stamp > args.until))


def _fmt(e: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return orjson.dumps(e, option=orjson.OPT_SORT_KEYS).decode()
    skill = e.get("skill") if isinstance(e.get("skill"), dict) else {}
    decision = e.get("decision") if isinstance(e.get("decision"), dict) else {}
    outcome = e.get("outcome") if isinstance(e.get("outcome"), dict) else {}
    parts = [f"{e.get('seq', '?'):>6}", str(e.get("time", "")), f"{e.get('kind', '?'):<19}"]
    for value in (skill.get("id"), e.get("host_function"), e.get("resource"),
                  decision.get("effect"), outcome.get("status")):
        if value is not None:
            parts.append(str(value))
    return "  ".join(parts)


def _cmd_show(args: argparse.Namespace) -> int:
    log, _ = _log_and_keys(args, need_keys=False)
    for _, e in _entries(log):
        if _match(e, args):
            _out(_fmt(e, args.json))
    return 0


def _cmd_tail(args: argparse.Namespace) -> int:
    log, _ = _log_and_keys(args, need_keys=False)
    matched: list[dict[str, Any]] = []
    offset = 0
    for size, e in _entries(log):
        offset += size
        if _match(e, args):
            matched.append(e)
    for e in matched[-args.n:] if args.n else []:
        _out(_fmt(e, args.json))
    sys.stdout.flush()
    while args.follow:
        time.sleep(0.2)
        for size, e in _entries(log, offset):
            offset += size
            if _match(e, args):
                _out(_fmt(e, args.json))
        sys.stdout.flush()
    return 0


def _tree_of(log: Path) -> tuple[MerkleTree, list[bytes]]:
    tree = MerkleTree()
    lines = log.read_bytes().split(b"\n")[:-1]
    for line in lines:
        tree.append(sha256(b"\x00" + line).digest())
    return tree, lines


def _matching_checkpoint(log: Path, tree: MerkleTree, above: int) -> SignedCheckpoint:
    best: SignedCheckpoint | None = None
    for _, cp, _ in read_checkpoints(checkpoint_path_for(log)):
        if cp is None or cp.checkpoint.size <= above or cp.checkpoint.size > len(tree):
            continue
        if tree.root(cp.checkpoint.size) == cp.checkpoint.root and (
                best is None or cp.checkpoint.size > best.checkpoint.size):
            best = cp
    if best is None:
        raise AuditVerificationError(f"no checkpoint in {checkpoint_path_for(log)} covers "
                                     f"seq {above} and matches the log")
    return best


def _cmd_prove(args: argparse.Namespace) -> int:
    log, _ = _log_and_keys(args, need_keys=False)
    tree, _lines = _tree_of(log)
    if not 0 <= args.seq < len(tree):
        raise _Usage(f"no entry with seq {args.seq} (log has {len(tree)})")
    cp = _matching_checkpoint(log, tree, args.seq)
    receipt = Receipt(args.seq, tree.leaf(args.seq),
                      tuple(tree.inclusion_proof(args.seq, cp.checkpoint.size)), cp)
    _out(orjson.dumps(receipt.to_json(), option=orjson.OPT_INDENT_2).decode())
    return 0


def _verification_code(exc: AuditVerificationError) -> int:
    if isinstance(exc, UntrustedKeyError):
        return int(Code.KEY_UNTRUSTED)
    if isinstance(exc, CheckpointSignatureError):
        return int(Code.BAD_SIGNATURE)
    return int(Code.MODIFIED)


def _cmd_verify_receipt(args: argparse.Namespace) -> int:
    args.log = None
    keys = _keys_only(args)
    try:
        data = orjson.loads(Path(args.receipt).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise _Usage(f"{args.receipt}: cannot read receipt: {exc}") from None
    receipt = Receipt.from_json(data)
    verify_receipt(receipt, keys)
    cp = receipt.checkpoint.checkpoint
    _out(f"receipt OK: seq {receipt.seq} is included in {cp.origin} at size {cp.size}")
    _out("RESULT: OK")
    return 0


def _keys_only(args: argparse.Namespace) -> list[TrustedKey]:
    if args.key or args.trust:
        return load_trusted_keys(args.key or args.trust)
    if args.config:
        return load_trusted_keys(public_path_for(KernelConfig.from_toml(args.config)
                                                 .resolved("audit_key")))
    raise _Usage("no trusted key: pass --key PUB, --trust FILE or --config vak.toml")


def _cmd_consistency(args: argparse.Namespace) -> int:
    log, _ = _log_and_keys(args, need_keys=False)
    tree, _lines = _tree_of(log)
    if not 0 < args.a <= args.b <= len(tree):
        raise _Usage(f"need 0 < A <= B <= {len(tree)}")
    proof = tree.consistency_proof(args.a, args.b)
    r1, r2 = tree.root(args.a), tree.root(args.b)
    verify_consistency(args.a, args.b, proof, r1, r2)
    _out(orjson.dumps({"size1": args.a, "size2": args.b, "root1": r1.hex(), "root2": r2.hex(),
                       "proof": [p.hex() for p in proof]}, option=orjson.OPT_INDENT_2).decode())
    return 0


def _cmd_checkpoint(args: argparse.Namespace) -> int:
    log, _ = _log_and_keys(args, need_keys=False)
    cps = [cp for _, cp, _ in read_checkpoints(checkpoint_path_for(log)) if cp is not None]
    if not cps:
        raise _Usage(f"{checkpoint_path_for(log)}: no checkpoint")
    sys.stdout.write(max(cps, key=lambda c: c.checkpoint.size).note)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vak-audit", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser, *, log: bool = True, keys: bool = False) -> None:
        if log:
            sp.add_argument("log", nargs="?", help="audit log file (default: from --config)")
        sp.add_argument("--config", help="vak.toml: take the log and key from the kernel config")
        if keys:
            g = sp.add_mutually_exclusive_group()
            g.add_argument("--key", help="public key file (<audit_key>.pub)")
            g.add_argument("--trust", help="trust file: verifier keys with revoked/not-after=")

    def filters(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--skill")
        sp.add_argument("--session")
        sp.add_argument("--decision", choices=["allow", "deny"])
        sp.add_argument("--kind")
        sp.add_argument("--since", help="RFC 3339 time, inclusive")
        sp.add_argument("--until", help="RFC 3339 time, inclusive")
        sp.add_argument("--json", action="store_true")

    v = sub.add_parser("verify", help="verify a whole log")
    common(v, keys=True)
    v.add_argument("--checkpoints", help="checkpoint file (default: LOG.ckpt)")
    v.add_argument("--sigs", help="per-entry signature file (default: LOG.sigs, if present)")
    v.add_argument("--state", help="remembered verifier state (rollback/fork detection)")
    v.add_argument("--update-state", action="store_true")
    v.add_argument("--json", action="store_true")
    v.set_defaults(fn=_cmd_verify)

    s = sub.add_parser("show", help="print entries matching filters")
    common(s)
    filters(s)
    s.set_defaults(fn=_cmd_show)

    t = sub.add_parser("tail", help="print the last entries; --follow for new ones")
    common(t)
    filters(t)
    t.add_argument("-n", type=int, default=10)
    t.add_argument("--follow", "-f", action="store_true")
    t.set_defaults(fn=_cmd_tail)

    pr = sub.add_parser("prove", help="receipt (checkpoint + inclusion proof) for one entry")
    common(pr)
    pr.add_argument("--seq", type=int, required=True)
    pr.set_defaults(fn=_cmd_prove)

    vr = sub.add_parser("verify-receipt", help="verify a receipt JSON offline")
    vr.add_argument("receipt")
    common(vr, log=False, keys=True)
    vr.set_defaults(fn=_cmd_verify_receipt)

    c = sub.add_parser("consistency", help="consistency proof between tree sizes A and B")
    c.add_argument("a", type=int)
    c.add_argument("b", type=int)
    common(c)
    c.set_defaults(fn=_cmd_consistency)

    ck = sub.add_parser("checkpoint", help="print the newest signed checkpoint")
    common(ck)
    ck.set_defaults(fn=_cmd_checkpoint)
    fleet_cli.register(sub, v, _log_and_keys)  # ship, verify --fleet / --witness
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (see module docstring)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) and int(Code.USAGE)
    try:
        return int(args.fn(args))
    except _Usage as exc:
        sys.stderr.write(f"vak-audit: {exc}\nRESULT: USAGE\n")
        return int(Code.USAGE)
    except AuditVerificationError as exc:
        code = _verification_code(exc)
        sys.stderr.write(f"vak-audit: {exc.message}\n")
        _out(f"RESULT: {Code(code).name}")
        return code
    except VakError as exc:
        sys.stderr.write(f"vak-audit: {exc.diagnostics()}\nRESULT: USAGE\n")
        return int(Code.USAGE)
    except OSError as exc:
        sys.stderr.write(f"vak-audit: {exc}\nRESULT: USAGE\n")
        return int(Code.USAGE)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
