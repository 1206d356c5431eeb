"""``vak trust``: add, list and revoke the keys whose signatures a kernel accepts.

The trust store is the file ``trust_store`` names in ``vak.toml`` (or the one
given with ``--trust FILE``). Edits go through
:class:`vak.identity.trustfile.TrustFile`: the file's comments and layout are
kept, the write is atomic, and concurrent editors do not lose changes. This
module only maps flags onto that API and prints the result.

Examples::

    vak trust add ci.key.pub --tier trusted --skills calculator,notes
    vak trust add alice.pub --tier untrusted --expires 2027-01-01 --comment "Alice, contractor"
    vak trust list --json
    vak trust revoke ed25519:5bf5603f

Registered into the ``vak`` command by ``register(subparsers)``; also runnable
alone as ``python -m vak.cli.trust``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from vak.cli._common import EXIT_OK, add_command, emit, make_parser, run
from vak.errors import ConfigError
from vak.identity.keys import load_public_key
from vak.identity.trust import ROLES, Tier, TrustedKey, parse_expires
from vak.identity.trustfile import TrustFile
from vak.text import printable

__all__ = ["EXAMPLES", "entry_dict", "main", "register"]

EXAMPLES = """examples:
  vak trust add ci.key.pub --tier trusted --skills calculator,notes
  vak trust add alice.pub --tier untrusted --expires 2027-01-01 --comment "Alice"
  vak trust list --json
  vak trust revoke ed25519:5bf5603f

The trust store is --trust FILE, else the trust_store of --config (./vak.toml).
`add` creates the file if it does not exist. Revoking is permanent: a revoked
key cannot be added again (edit the file by hand if you must)."""


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(entry: TrustedKey, now: datetime) -> str:
    if entry.revoked:
        return "revoked"
    if entry.expires is not None and now >= entry.expires:
        return "expired"
    return "active"


def entry_dict(entry: TrustedKey, now: datetime | None = None) -> dict[str, Any]:
    """The JSON form of one trust store entry (``--json`` output)."""
    out: dict[str, Any] = {
        "key_id": entry.key_id,
        "tier": str(entry.tier),
        "skills": None if entry.skills is None else sorted(entry.skills),
        "comment": entry.comment,
        "expires": _when(entry.expires),
        "revoked": entry.revoked,
        "status": _status(entry, now or datetime.now(UTC)),
    }
    if entry.roles:  # only when held: the entry shape of keys without roles is unchanged
        out["roles"] = sorted(entry.roles)
    return out


def _trust_path(args: argparse.Namespace) -> Path:
    if args.trust is not None:
        return Path(args.trust)
    from vak.config import KernelConfig

    config = Path(args.config)
    if not config.exists():
        raise ConfigError(
            f"{config}: config file not found, and no --trust FILE given", file=str(config),
            fix="pass --trust trust.yaml, or --config DIR/vak.toml (vak init writes one)",
        )
    trust_store = KernelConfig.from_toml(config).trust_store
    if trust_store is None:
        raise ConfigError(
            f"{config}: no trust_store is configured", file=str(config), field="trust_store",
            fix="set trust_store = \"trust.yaml\" in vak.toml, or pass --trust FILE",
        )
    return Path(trust_store)


def _skills(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ConfigError("--skills names no skill", field="--skills",
                          fix="name the skills (--skills calculator,notes) or omit --skills "
                          "to allow any skill")
    return names


def _expires(text: str | None, now: datetime) -> datetime | None:
    if text is None:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        when = parse_expires(text, "--expires", "<command line>") or now
    else:
        when = datetime(day.year, day.month, day.day, tzinfo=UTC)
    if when <= now:
        raise ConfigError(f"--expires {text} is not in the future", field="--expires",
                          fix="give a later date, e.g. --expires 2027-01-01")
    return when


def _summary(entry: TrustedKey) -> str:
    parts = [str(entry.tier)]
    parts.append("any skill" if entry.skills is None
                 else "skills: " + (", ".join(sorted(entry.skills)) or "none"))
    if entry.roles:
        parts.append("roles: " + ", ".join(sorted(entry.roles)))
    if entry.expires is not None:
        parts.append(f"expires {_when(entry.expires)}")
    return f"{entry.key_id} ({'; '.join(parts)})"


def cmd_add(args: argparse.Namespace) -> int:
    """``vak trust add KEY.pub --tier T [--skills a,b] [--expires DATE] [--comment C]``."""
    now = datetime.now(UTC)
    path = _trust_path(args)
    key = load_public_key(args.key)
    skills, expires = _skills(args.skills), _expires(args.expires, now)
    created = not path.exists()
    with TrustFile.edit(path, create=True) as trust:
        entry = trust.add(key, Tier(args.tier), skills=skills, comment=args.comment,
                          expires=expires, roles=args.role or ())
    verb = "created" if created else "updated"
    emit(args, {"ok": True, "trust_store": str(path), "created": created,
                "key": entry_dict(entry, now)},
         f"added {_summary(entry)}\n{verb} {path}")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    """``vak trust list``: every entry with tier, skills, expiry and status."""
    now = datetime.now(UTC)
    path = _trust_path(args)
    entries = TrustFile.load(path).store.keys
    rows = [entry_dict(e, now) for e in entries]
    lines = [f"{path}: {len(rows)} key(s)"]
    for row in rows:
        skills = "any" if row["skills"] is None else ",".join(row["skills"]) or "none"
        line = (f"  {row['key_id']}  {row['tier']:<9}  {row['status']:<7}  skills={skills}"
                f"  expires={row['expires'] or 'never'}")
        if row["comment"]:
            line += f"  # {printable(row['comment'])}"
        lines.append(line)
    emit(args, {"ok": True, "trust_store": str(path), "keys": rows}, "\n".join(lines))
    return EXIT_OK


def cmd_revoke(args: argparse.Namespace) -> int:
    """``vak trust revoke KEYID``: mark the key revoked (permanent)."""
    path = _trust_path(args)
    with TrustFile.edit(path) as trust:
        before = trust.find(args.key_id)
        entry = trust.revoke(before.key_id)
    state = "was already revoked" if before.revoked else "revoked"
    emit(args, {"ok": True, "trust_store": str(path), "already_revoked": before.revoked,
                "key": entry_dict(entry)},
         f"{entry.key_id} {state} in {path}")
    return EXIT_OK


def _location(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust", metavar="FILE",
                        help="the trust store file (default: trust_store of --config)")
    parser.add_argument("--config", default="vak.toml", metavar="vak.toml",
                        help="kernel configuration naming the trust store (default: ./vak.toml)")


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``trust`` command (``add``, ``list``, ``revoke``) to ``subparsers``."""
    trust: argparse.ArgumentParser = subparsers.add_parser(
        "trust", help="Add, list or revoke the keys whose signatures the kernel accepts.",
        description="Manage the trust store: which signing keys are trusted, at which tier "
        "(trusted: in-process; untrusted: OS-sandboxed worker), for which skills, until when.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = trust.add_subparsers(dest="trust_command", metavar="ACTION", required=True)
    p = add_command(sub, "add", "Trust a public key (a KEY.pub or ssh-ed25519 .pub file).",
                    cmd_add, json_flag=True, epilog=EXAMPLES)
    p.add_argument("key", metavar="KEY.pub", help="the signer's public key file")
    p.add_argument("--tier", required=True, choices=[t.value for t in Tier],
                   help="trusted: skills run in-process; untrusted: in the OS-sandboxed worker")
    p.add_argument("--skills", metavar="A,B",
                   help="comma-separated skill names the key may sign (default: any skill)")
    p.add_argument("--expires", metavar="DATE",
                   help="stop trusting the key at this time: YYYY-MM-DD (midnight UTC) or an "
                   "RFC 3339 date-time with a zone")
    p.add_argument("--comment", default="", help="a note stored with the entry")
    p.add_argument("--role", action="append", choices=list(ROLES), metavar="ROLE",
                   help="an operator role of the key (repeatable): approver = may sign "
                   "approvals of host calls (docs/POLICY.md, 'Approvals')")
    _location(p)
    p = add_command(sub, "list", "List the trusted keys with tier, skills, expiry and status.",
                    cmd_list, json_flag=True)
    _location(p)
    p = add_command(sub, "revoke", "Revoke a key (permanent; its skills stop loading).",
                    cmd_revoke, json_flag=True)
    p.add_argument("key_id", metavar="KEYID",
                   help="the key id from `vak trust list` (or at least 8 hex digits of it)")
    _location(p)
    return trust


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vak.cli.trust ...``: the ``trust`` command on its own."""
    parser = make_parser("vak", "Manage the VAK trust store.", epilog=EXAMPLES)
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    return run(parser, argv, {})


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
