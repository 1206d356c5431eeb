"""``vak approvals``: list, show, approve or deny host calls awaiting a person.

A call a ``@approval("required")`` permit allowed fails with
``ApprovalPendingError`` naming an approval ID until an operator answers::

    vak approvals list --config vak.toml
    vak approvals show ID --config vak.toml
    vak approvals approve ID --key operator.key [--ttl 15m] --config vak.toml
    vak approvals deny ID --key operator.key --config vak.toml

The answer is an Ed25519 statement signed with ``--key``, whose public key the
trust store must list with ``roles: [approver]`` (``vak trust add KEY.pub
--tier trusted --role approver``); it is checked here and again by the kernel
when the retried call consumes it. See docs/POLICY.md, 'Approvals'.
"""

from __future__ import annotations

import argparse
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from vak.cli._common import EXIT_OK, add_command, emit
from vak.errors import ConfigError
from vak.text import printable

__all__ = ["parse_ttl", "register"]

_TTL = re.compile(r"([1-9][0-9]{0,6})([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: longest lifetime of one approval (a retried call must come soon)
MAX_TTL = timedelta(days=7)


def parse_ttl(text: str) -> timedelta:
    """``30s``, ``15m``, ``2h``, ``1d`` -> a timedelta (at most :data:`MAX_TTL`).

    Raises:
        ConfigError: another form, or longer than MAX_TTL.
    """
    m = _TTL.fullmatch(text)
    if m is None:
        raise ConfigError(f"--ttl {text[:40]!r} is not a duration", field="ttl",
                          valid="a number and a unit: 30s, 15m, 2h, 1d")
    ttl = timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    if ttl > MAX_TTL:
        raise ConfigError(f"--ttl {text} is longer than {MAX_TTL.days} days", field="ttl")
    return ttl


def _context(args: argparse.Namespace) -> tuple[Any, Any]:
    """The config's approval store and trust store (None when none is configured)."""
    from vak.approvals.store import ApprovalStore
    from vak.config import KernelConfig
    from vak.identity.trust import TrustStore

    config = Path(args.config)
    if not config.exists():
        raise ConfigError(f"{config}: config file not found", file=str(config),
                          fix="pass --config DIR/vak.toml")
    cfg = KernelConfig.from_toml(config)
    trust = TrustStore.load(cfg.trust_store) if cfg.trust_store is not None else None
    return ApprovalStore(cfg.state_dir / "approvals"), trust


def _row(rec: Any) -> dict[str, Any]:
    out = {"state": rec.state, **rec.request.to_json()}
    if rec.answer is not None:
        out["answer"] = rec.answer.to_json()
    if rec.consumed is not None:
        out["consumed"] = dict(rec.consumed)
    return out


def cmd_list(args: argparse.Namespace) -> int:
    """``vak approvals list [--all]``: pending approvals (every one with --all)."""
    store, _ = _context(args)
    recs = [r for r in store.records() if args.all or r.state == "pending"]
    lines = [f"{len(recs)} approval(s){'' if args.all else ' pending'}"]
    lines += [f"  {r.request.id}  {r.state:<8}  {r.request.created}  {r.request.describe()}"
              for r in recs]
    emit(args, {"ok": True, "approvals": [_row(r) for r in recs]}, "\n".join(lines))
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    """``vak approvals show ID``: the exact call an approval is for."""
    store, _ = _context(args)
    rec = store.get(args.id)
    req = rec.request
    lines = [f"approval {req.id}: {rec.state}", f"  {req.describe()}",
             f"  skill:    {req.skill} ({req.manifest_digest})",
             f"  function: vak.{req.function}", f"  target:   {req.resource}",
             f"  session:  {req.session}", f"  asked by invocation {req.invocation} at "
             f"{req.created}", f"  binding:  {req.binding}"]
    lines += [f"  {k}: {v!r:.200}" for k, v in sorted(req.summary.items())]
    lines = [printable(line) for line in lines]  # guest-chosen text: no terminal control
    if rec.answer is not None:
        lines.append(f"  answer:   {rec.answer.statement['verdict']} by {rec.answer.key_id} "
                     f"until {rec.answer.statement['not_after']}")
    emit(args, {"ok": True, "approval": _row(rec)}, "\n".join(lines))
    return EXIT_OK


def _answer(args: argparse.Namespace, approve: bool) -> int:
    from datetime import UTC, datetime

    from vak.approvals.answer import sign_answer
    from vak.identity.keys import load_signing_key

    store, trust = _context(args)
    rec = store.get(args.id)
    key = load_signing_key(args.key)
    answer = sign_answer(rec.request.id, rec.request.binding, approve, key,
                         parse_ttl(args.ttl))
    # the same check the kernel makes when the call consumes it: fail here, not later
    answer.check(trust, rec.request.id, rec.request.binding, datetime.now(UTC))
    store.answer(rec.request.id, answer)
    verb = "approved" if approve else "denied"
    emit(args, {"ok": True, "approval": _row(store.get(rec.request.id))},
         f"{verb} {rec.request.id} ({rec.request.describe()}) with {answer.key_id}, "
         f"until {answer.statement['not_after']}"
         + ("\nthe same call, retried in that time, proceeds once" if approve else ""))
    return EXIT_OK


def cmd_approve(args: argparse.Namespace) -> int:
    """``vak approvals approve ID --key KEY [--ttl D]``."""
    return _answer(args, True)


def cmd_deny(args: argparse.Namespace) -> int:
    """``vak approvals deny ID --key KEY``."""
    return _answer(args, False)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``approvals`` command (list, show, approve, deny) to ``subparsers``."""
    top: argparse.ArgumentParser = subparsers.add_parser(
        "approvals", help="List, show, approve or deny host calls awaiting approval.",
        description="Answer host calls that a @approval(\"required\") policy holds for a "
        "person: list, show, approve or deny them (docs/POLICY.md, 'Approvals').")
    sub = top.add_subparsers(dest="approvals_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", default="vak.toml", metavar="vak.toml",
                       help="kernel configuration (its state_dir holds the approvals)")
        return p

    p = common(add_command(sub, "list", "List pending approvals.", cmd_list, json_flag=True))
    p.add_argument("--all", action="store_true", help="also answered and used ones")
    p = common(add_command(sub, "show", "Show the exact call of one approval.", cmd_show,
                           json_flag=True))
    p.add_argument("id", metavar="ID", help="the approval id (vak approvals list)")
    for name, func, text in (("approve", cmd_approve, "Approve a call (signed with --key)."),
                             ("deny", cmd_deny, "Refuse a call (signed with --key).")):
        p = common(add_command(sub, name, text, func, json_flag=True))
        p.add_argument("id", metavar="ID", help="the approval id (vak approvals list)")
        p.add_argument("--key", required=True, metavar="OPERATOR_KEY",
                       help="the operator's private key; the trust store lists its public "
                       "key with roles: [approver]")
        p.add_argument("--ttl", default="15m", metavar="DURATION",
                       help="how long the answer is valid: 30s, 15m, 2h, 1d (default 15m)")
    return top
