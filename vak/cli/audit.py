"""``vak-audit``: verify, inspect and prove things about a VAK audit log offline.

Example::

    vak-audit verify audit/vak.log --key audit/log.key.pub
    vak-audit verify --config vak.toml --state ~/.vak-audit.state --update-state --json
    vak-audit show audit/vak.log --kind host_decision --decision deny
    vak-audit prove --seq 42 audit/vak.log > receipt.json
    vak-audit verify-receipt receipt.json --key audit/log.key.pub

Exit codes are :class:`vak.audit.verify.Code` (0 verified ... 14 fork; 2 usage
or I/O error) plus :data:`EXIT_INTERNAL` (70, a defect in vak-audit itself);
docs/AUDIT-FORMAT.md lists them. Everything printed has its control and
invisible formatting characters escaped (:func:`safe_text`): log content can
never forge a line, move the cursor or recolour the terminal.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

import orjson

from vak.audit.checkpoint import (
    CheckpointSignatureError,
    SignedCheckpoint,
    UntrustedKeyError,
    checkpoint_path_for,
    read_checkpoints,
)
from vak.audit.keys import TrustedKey, load_trusted_keys, parse_verifier_key, public_path_for
from vak.audit.merkle import MerkleTree, verify_consistency
from vak.audit.receipt import Receipt, verify_receipt
from vak.audit.settings import AuditSettings
from vak.audit.state import VerifierState, load_state, save_state
from vak.audit.verify import Code, verify_log
from vak.cli import fleet as fleet_cli
from vak.cli._common import add_standard_flags, debug_requested, guarded
from vak.errors import AuditVerificationError, KeyFileError, VakError
from vak.text import json_safe, terminal

__all__ = ["EXIT_INTERNAL", "main", "safe_text"]

#: exit code of a defect in ``vak-audit`` itself (not a verdict on the log); distinct
#: from every :class:`~vak.audit.verify.Code` (0..14), so it never reads as OK or WARNINGS
EXIT_INTERNAL = 70

def safe_text(text: str, *, keep_newlines: bool = True) -> str:
    """``text`` with every control and invisible formatting character escaped.

    Every line ``vak-audit`` prints goes through here; with ``keep_newlines``
    False a newline is escaped too (one field must stay on one line). The rule
    is :func:`vak.text.terminal` (the one escaping rule of VAK).
    """
    return terminal(text, keep_newlines=keep_newlines)


def _json_text(value: Any, **opts: Any) -> str:
    """JSON for the terminal: orjson escapes C0 controls; every other non-printable
    character is escaped here (:func:`vak.text.json_safe`), so the JSON still parses."""
    return json_safe(orjson.dumps(value, **opts).decode())


class _Usage(Exception):
    pass


def _out(text: str) -> None:
    sys.stdout.write(safe_text(text) + "\n")


def _err(text: str) -> None:
    sys.stderr.write(safe_text(text) + "\n")


@dataclass(frozen=True, slots=True)
class _Keys:
    """The keys to verify with, and whether the verifier pinned them."""

    keys: list[TrustedKey]
    pinned: bool
    source: str


def _load_keys(path: Path) -> list[TrustedKey]:
    try:
        return load_trusted_keys(path)
    except (UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, VakError):
            raise
        raise _Usage(f"{path}: not a key file (not UTF-8 text)") from None


def _settings(config: str) -> AuditSettings:
    """The audit settings of a ``vak.toml``, paths resolved; reads no other room's table."""
    from vak.config import audit_settings_from_toml

    return audit_settings_from_toml(config)


def _state_keys(state: VerifierState | None, source: str) -> list[TrustedKey] | None:
    if state is None or not state.keys:
        return None
    try:
        return [parse_verifier_key(line) for line in state.keys]
    except KeyFileError as exc:
        raise _Usage(f"{source}: a pinned key is malformed: {exc.message}") from None


def _log_and_keys(args: argparse.Namespace, *, need_keys: bool,
                  state: VerifierState | None = None) -> tuple[Path, _Keys]:
    """The log, and the keys in order of precedence: --key/--trust, state, config trust, .pub."""
    log: Path | None = Path(args.log) if getattr(args, "log", None) else None
    settings = _settings(args.config) if getattr(args, "config", None) else None
    if settings is not None:
        log = log or settings.log
    if log is None:
        raise _Usage("no log given: pass LOG or --config vak.toml")
    if not log.exists():
        raise _Usage(f"{log}: audit log not found")
    if not need_keys:
        return log, _Keys([], True, "")
    explicit = getattr(args, "key", None) or getattr(args, "trust", None)
    if explicit:
        return log, _Keys(_load_keys(Path(explicit)), True, f"key file {explicit}")
    pinned = _state_keys(state, getattr(args, "state", None) or "state")
    if pinned is not None:
        return log, _Keys(pinned, True, f"state file {args.state}")
    if settings is not None and settings.trust is not None:
        return log, _Keys(_load_keys(settings.trust), True, f"[audit] trust {settings.trust}")
    if settings is not None:
        beside = public_path_for(settings.key)
        return log, _Keys(_load_keys(beside), False, str(beside))
    raise _Usage("no trusted key: pass --key PUB, --trust FILE or --config vak.toml")


def _approvers(args: argparse.Namespace) -> dict[str, Any] | None:
    """Approver keys by id: ``--approvers TRUST.yaml``, else the config's trust_store."""
    from vak.identity.trust import TrustStore

    path = getattr(args, "approvers", None)
    if path is not None:
        try:
            return {k.key_id: k for k in TrustStore.load(path).keys}
        except VakError as exc:
            raise _Usage(f"--approvers: {exc.message}") from None
    if not getattr(args, "config", None):
        return None
    from vak.config import trust_store_from_toml

    try:  # the config's store is a default: unusable means "not checked" (a WARNINGS finding)
        trust = trust_store_from_toml(args.config)
        return None if trust is None else {k.key_id: k for k in TrustStore.load(trust).keys}
    except VakError:
        return None


def _cmd_verify(args: argparse.Namespace) -> int:
    state = load_state(args.state) if args.state else None
    log, keys = _log_and_keys(args, need_keys=True, state=state)
    report = verify_log(log, keys.keys, checkpoint_path=args.checkpoints, state=state,
                        sigs_path=args.sigs, pinned=keys.pinned, key_source=keys.source,
                        approvers=_approvers(args))
    if args.json:
        _out(_json_text(report.to_json(), option=orjson.OPT_INDENT_2))
    else:
        _out(report.render())
    if args.update_state and args.state and report.result <= Code.WARNINGS and report.latest:
        cp = report.latest.checkpoint
        save_state(args.state, VerifierState(cp.origin, cp.size, cp.root.hex(), cp.time,
                                             report.keys))
    return int(report.result)


def _entries(log: Path, start: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(bytes, entry)`` of each complete line; anything not an object is a placeholder."""
    with log.open("rb") as f:
        f.seek(start)
        for raw in f:
            if not raw.endswith(b"\n"):
                return
            try:
                e = orjson.loads(raw)
            except orjson.JSONDecodeError:
                e = None
            if type(e) is not dict:
                e = {"kind": "<malformed>", "raw": raw[:200].decode("utf-8", "replace")}
            yield len(raw), e


def _obj(e: dict[str, Any], name: str) -> dict[str, Any]:
    value = e.get(name)
    return value if type(value) is dict else {}


def _match(e: dict[str, Any], args: argparse.Namespace) -> bool:
    checks = (
        (args.kind, e.get("kind")),
        (args.skill, _obj(e, "skill").get("id")),
        (args.session, e.get("session")),
        (args.decision, _obj(e, "decision").get("effect")),
    )
    if any(want is not None and want != got for want, got in checks):
        return False
    stamp = e.get("time") if type(e.get("time")) is str else ""
    return not ((args.since and stamp < args.since) or (args.until and stamp > args.until))


def _field(value: Any) -> str:
    """One value of the text format: on one line, escaped, bounded; containers named."""
    if type(value) is str:
        text = value if len(value) <= 300 else value[:300] + "..."
        return safe_text(text, keep_newlines=False)
    if value is None or type(value) in (int, bool):
        return str(value)
    return f"<{type(value).__name__}>"


def _fmt(e: dict[str, Any], as_json: bool) -> str:
    if as_json:
        try:
            return _json_text(e, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # nesting orjson will not re-encode
            return _json_text({"seq": e.get("seq") if type(e.get("seq")) is int else None,
                               "kind": "<too deeply nested to print>"})
    parts = [f"{_field(e.get('seq', '?')):>6}", _field(e.get("time", "")),
             f"{_field(e.get('kind', '?')):<19}"]
    for value in (_obj(e, "skill").get("id"), e.get("host_function"), e.get("resource"),
                  _obj(e, "decision").get("effect"), _obj(e, "outcome").get("status")):
        if value is not None:
            parts.append(_field(value))
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
    for e in matched[-args.n:] if args.n > 0 else []:
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
    _out(_json_text(receipt.to_json(), option=orjson.OPT_INDENT_2))
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
        return _load_keys(Path(args.key or args.trust))
    if args.config:
        settings = _settings(args.config)
        return _load_keys(settings.trust or public_path_for(settings.key))
    raise _Usage("no trusted key: pass --key PUB, --trust FILE or --config vak.toml")


def _cmd_consistency(args: argparse.Namespace) -> int:
    log, _ = _log_and_keys(args, need_keys=False)
    tree, _lines = _tree_of(log)
    if not 0 < args.a <= args.b <= len(tree):
        raise _Usage(f"need 0 < A <= B <= {len(tree)}")
    proof = tree.consistency_proof(args.a, args.b)
    r1, r2 = tree.root(args.a), tree.root(args.b)
    verify_consistency(args.a, args.b, proof, r1, r2)
    _out(_json_text({"size1": args.a, "size2": args.b, "root1": r1.hex(), "root2": r2.hex(),
                     "proof": [p.hex() for p in proof]}, option=orjson.OPT_INDENT_2))
    return 0


def _cmd_checkpoint(args: argparse.Namespace) -> int:
    log, _ = _log_and_keys(args, need_keys=False)
    cps = [cp for _, cp, _ in read_checkpoints(checkpoint_path_for(log)) if cp is not None]
    if not cps:
        raise _Usage(f"{checkpoint_path_for(log)}: no checkpoint")
    sys.stdout.write(safe_text(max(cps, key=lambda c: c.checkpoint.size).note))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vak-audit", description=__doc__.split("\n")[0],
        epilog="examples:\n" + __doc__.split("Example::\n\n")[1].split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_standard_flags(p, "vak-audit")
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
        sp.add_argument("--skill", help="only entries naming this skill id")
        sp.add_argument("--session", help="only entries of this session id")
        sp.add_argument("--decision", choices=["allow", "deny", "approval_required"],
                        help="only host decisions with this effect")
        sp.add_argument("--kind", help="only entries of this kind, e.g. host_decision")
        sp.add_argument("--since", help="RFC 3339 time, inclusive")
        sp.add_argument("--until", help="RFC 3339 time, inclusive")
        sp.add_argument("--json", action="store_true", help="print entries as JSON lines")

    v = sub.add_parser("verify", help="verify a whole log")
    common(v, keys=True)
    v.add_argument("--checkpoints", help="checkpoint file (default: LOG.ckpt)")
    v.add_argument("--sigs", help="per-entry signature file (default: LOG.sigs, if present)")
    v.add_argument("--state", help="remembered verifier state (rollback/fork detection)")
    v.add_argument("--update-state", action="store_true",
                   help="after a successful verify, remember this log's size and root in --state")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.add_argument("--approvers", metavar="TRUST.yaml",
                   help="trust store listing the approver keys (roles: [approver]); default: "
                   "trust_store of --config")
    v.set_defaults(fn=_cmd_verify)

    s = sub.add_parser("show", help="print entries matching filters")
    common(s)
    filters(s)
    s.set_defaults(fn=_cmd_show)

    t = sub.add_parser("tail", help="print the last entries; --follow for new ones")
    common(t)
    filters(t)
    t.add_argument("-n", type=int, default=10, help="how many entries (default: 10)")
    t.add_argument("--follow", "-f", action="store_true",
                   help="keep printing entries as they are appended (Ctrl-C stops)")
    t.set_defaults(fn=_cmd_tail)

    pr = sub.add_parser("prove", help="receipt (checkpoint + inclusion proof) for one entry")
    common(pr)
    pr.add_argument("--seq", type=int, required=True, help="sequence number of the entry")
    pr.set_defaults(fn=_cmd_prove)

    vr = sub.add_parser("verify-receipt", help="verify a receipt JSON offline")
    vr.add_argument("receipt", help="receipt JSON file written by `vak-audit prove`")
    common(vr, log=False, keys=True)
    vr.set_defaults(fn=_cmd_verify_receipt)

    c = sub.add_parser("consistency", help="consistency proof between tree sizes A and B")
    c.add_argument("a", type=int, help="the older tree size")
    c.add_argument("b", type=int, help="the newer tree size")
    common(c)
    c.set_defaults(fn=_cmd_consistency)

    ck = sub.add_parser("checkpoint", help="print the newest signed checkpoint")
    common(ck)
    ck.set_defaults(fn=_cmd_checkpoint)
    fleet_cli.register(sub, v, _log_and_keys)  # ship, verify --fleet / --witness
    from vak.cli.review import add_commands as review_commands

    review_commands(sub, common, _log_and_keys)  # replay, report
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (see module docstring).

    Run under :func:`vak.cli._common.guarded` (the contract of docs/CLI.md): a
    closed stdout (``vak-audit show | head -1``) exits 141 quietly, and nothing,
    not even building the parser, can end in a traceback.
    """
    return guarded(lambda: _main(argv), "vak-audit", debug=debug_requested(argv))


def _main(argv: Sequence[str] | None) -> int:
    """The command itself.

    Every failure ends here as one escaped message and a ``RESULT:`` line:
    usage and I/O problems exit ``USAGE`` (2), a proof that does not verify its
    own code, and a defect in ``vak-audit`` itself :data:`EXIT_INTERNAL` (70),
    never a traceback and never a code that reads as OK or WARNINGS.
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0) and int(Code.USAGE)
    try:
        return int(args.fn(args))
    except _Usage as exc:
        _fail(str(exc))
        return int(Code.USAGE)
    except AuditVerificationError as exc:
        code = _verification_code(exc)
        _fail(exc.message, Code(code).name, to_stdout=True)
        return code
    except VakError as exc:
        _fail(exc.message, details=exc.details)
        return int(Code.USAGE)
    except BrokenPipeError:
        raise  # stdout closed (`| head`): guarded() ends quietly with 141
    except OSError as exc:
        _fail(str(exc))
        return int(Code.USAGE)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a defect: say so, with its own exit code, and no traceback
        if debug_requested(argv):
            raise  # guarded() prints the traceback and exits 70
        _fail(f"internal error ({type(exc).__name__}): {str(exc)[:500]}", "INTERNAL",
              to_stdout=True)
        return EXIT_INTERNAL


def _fail(message: str, result: str = "USAGE", *, to_stdout: bool = False,
          details: Mapping[str, Any] | None = None) -> None:
    """One escaped message per line (a newline inside a value never starts a line)."""
    lines = [f"vak-audit: {message}"]
    lines += [f"  {k}: {v}" for k, v in (details or {}).items() if v is not None]
    for line in lines:
        sys.stderr.write(safe_text(line, keep_newlines=False) + "\n")
    (sys.stdout if to_stdout else sys.stderr).write(f"RESULT: {result}\n")


if __name__ == "__main__":
    sys.exit(main())
