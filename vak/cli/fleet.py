"""``vak-audit ship`` and ``vak-audit verify --fleet / --witness``: the fleet's CLI.

Registered into ``vak-audit``'s parser by :func:`register` (one call in
``vak/cli/audit.py``), so the fleet room owns its commands::

    vak-audit ship audit/vak.log --to postgresql://vak@db/audit --key audit/log.key.pub
    vak-audit ship audit/vak.log --to postgresql://... --config vak.toml --follow
    vak-audit verify --fleet postgresql://vak@db/audit --trust fleet.trust --json
    vak-audit verify audit/vak.log --key audit/log.key.pub \\
        --witness w1.pub --witness w2.pub --min-witnesses 2

Exit codes are those of ``vak-audit verify`` (docs/AUDIT-FORMAT.md): a refused
shipment exits with the code of its problem (``MISSING`` for a gap, ``FORK``,
``ROLLBACK``, ...); usage and store errors exit 2. Passwords belong in
``PGPASSWORD`` or ``~/.pgpass`` (libpq reads them), not in the URL.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from vak.audit.keys import TrustedKey, load_trusted_keys
from vak.audit.verify import Code
from vak.errors import FleetRefusedError
from vak.witness.cosignature import WitnessKey, load_witness_keys

__all__ = ["register"]

_PROBLEM_CODES = {"gap": Code.MISSING, "fork": Code.FORK, "rollback": Code.ROLLBACK,
                  "spliced": Code.SPLICED, "malformed": Code.MALFORMED,
                  "bad_signature": Code.BAD_SIGNATURE}

Handler = Callable[[argparse.Namespace], int]


def _print(text: str) -> None:
    sys.stdout.write(text + "\n")


def _witness_keys(args: argparse.Namespace) -> list[WitnessKey]:
    keys: list[WitnessKey] = []
    for path in args.witness or ():
        keys.extend(load_witness_keys(path))
    return keys


def _cmd_ship(args: argparse.Namespace, resolve: Callable[..., Any]) -> int:
    from vak.fleet.ship import ship_log
    from vak.fleet.store import connect, migrate

    log, found = resolve(args, need_keys=True)
    keys = getattr(found, "keys", found)  # vak-audit's key lookup: a list, or one with .keys
    conn = connect(args.to)
    try:
        migrate(conn)
        while True:
            try:
                report = ship_log(conn, log, keys,
                                  checkpoints=Path(args.checkpoints) if args.checkpoints
                                  else None)
            except FleetRefusedError as exc:
                code = _PROBLEM_CODES.get(str(exc.details.get("problem")), Code.MALFORMED)
                sys.stderr.write(f"vak-audit: {exc.message}\n")
                _print(f"RESULT: {code.name}")
                return int(code)
            if args.json:
                _print(orjson.dumps({"origin": report.origin, "shipped": report.shipped,
                                     "size": report.size, "checkpoints": report.checkpoints,
                                     "skipped": list(report.skipped)}).decode())
            elif report.shipped or not args.follow:
                _print(f"{report.origin}: shipped {report.shipped} entries, "
                       f"{report.checkpoints} checkpoints (stored size {report.size})")
                for why in report.skipped:
                    _print(f"  skipped checkpoint {why}")
            sys.stdout.flush()
            if not args.follow:
                return 0
            time.sleep(args.interval_ms / 1000)
    finally:
        conn.close()


def _verify_fleet(args: argparse.Namespace) -> int:
    from vak.fleet.store import connect, migrate
    from vak.fleet.verify import verify_fleet

    trust: list[TrustedKey] | None = None
    if args.trust or args.key:
        trust = load_trusted_keys(args.trust or args.key)
    conn = connect(args.fleet)
    try:
        migrate(conn)
        report = verify_fleet(conn, trust, origins=args.origin or (),
                              witnesses=_witness_keys(args),
                              min_witnesses=args.min_witnesses,
                              update_heads=not args.no_update_heads)
    finally:
        conn.close()
    if args.json:
        _print(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        _print(report.render())
    return int(report.result)


def _witness_part(args: argparse.Namespace, log: Path) -> tuple[Code, dict[str, Any]]:
    from vak.witness.sidecar import check_log_cosignatures

    check = check_log_cosignatures(log, _witness_keys(args), args.min_witnesses,
                                   Path(args.cosignatures) if args.cosignatures else None)
    code = Code.OK
    if len(check.witnesses) < args.min_witnesses or (not check.size and args.min_witnesses):
        code = Code.UNVERIFIABLE
    if check.bad:
        code = max(code, Code.BAD_SIGNATURE)
    if check.forks:
        code = max(code, Code.FORK)
    data = {"result": code.name, "witnesses": list(check.witnesses), "size": check.size,
            "required": args.min_witnesses, "forks": list(check.forks), "bad": list(check.bad)}
    return code, data


def _verify(args: argparse.Namespace, original: Handler, resolve: Callable[..., Any]) -> int:
    if args.fleet:
        return _verify_fleet(args)
    if not args.witness:
        if args.min_witnesses:
            sys.stderr.write("vak-audit: --min-witnesses needs --witness KEYFILE\n")
            return int(Code.USAGE)
        return original(args)
    log, _ = resolve(args, need_keys=False)
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        code = original(args)
    wcode, data = _witness_part(args, log)
    result = Code(max(code, int(wcode)))
    out = captured.getvalue()
    if code == int(Code.USAGE):
        sys.stdout.write(out)
        return code
    if args.json:
        merged = orjson.loads(out)
        merged["witness"] = data
        merged["result"] = result.name
        _print(orjson.dumps(merged, option=orjson.OPT_INDENT_2).decode())
    else:
        body = "\n".join(line for line in out.splitlines() if not line.startswith("RESULT: "))
        _print(body)
        _print(f"witnesses: {len(data['witnesses'])} of {args.min_witnesses} required "
               f"({', '.join(data['witnesses']) or 'none'}), confirmed size {data['size']}")
        for line in data["forks"] + data["bad"]:
            _print(f"  {line}")
        _print(f"RESULT: {result.name}")
    return int(result)


def register(sub: Any, verify: argparse.ArgumentParser,
             resolve: Callable[..., Any]) -> None:
    """Add ``ship`` to ``vak-audit`` and the fleet and witness options to ``verify``.

    ``resolve(args, need_keys=...)`` is vak-audit's own log-and-keys lookup
    (``LOG``, ``--config``, ``--key``, ``--trust``), so both commands read
    their inputs the same way.
    """
    s = sub.add_parser("ship", help="ship a log and its checkpoints into a fleet store")
    s.add_argument("log", nargs="?", help="audit log file (default: from --config)")
    s.add_argument("--to", required=True, metavar="postgresql://...",
                   help="fleet store URL (password via PGPASSWORD or ~/.pgpass)")
    s.add_argument("--config", help="vak.toml: take the log and key from the kernel config")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--key", help="public key file (<audit_key>.pub)")
    g.add_argument("--trust", help="trust file: verifier keys with revoked/not-after=")
    s.add_argument("--checkpoints", help="checkpoint file (default: LOG.ckpt)")
    s.add_argument("--follow", action="store_true", help="keep shipping new entries")
    s.add_argument("--interval-ms", type=int, default=500, help="poll interval with --follow")
    s.add_argument("--json", action="store_true", help="print one JSON object per step")
    s.set_defaults(fn=lambda a: _cmd_ship(a, resolve))

    verify.add_argument("--fleet", metavar="postgresql://...",
                        help="verify every origin in this fleet store instead of one log")
    verify.add_argument("--origin", action="append",
                        help="with --fleet: verify only this origin (repeatable)")
    verify.add_argument("--no-update-heads", action="store_true",
                        help="with --fleet: do not remember the verified heads")
    verify.add_argument("--witness", action="append", metavar="KEYFILE",
                        help="trusted witness verifier keys (repeatable)")
    verify.add_argument("--min-witnesses", type=int, default=0, metavar="K",
                        help="require K distinct witnesses' cosignatures")
    verify.add_argument("--cosignatures", help="cosigned checkpoints (default: LOG.witness)")
    original: Handler = verify.get_default("fn")
    verify.set_defaults(fn=lambda a: _verify(a, original, resolve))
