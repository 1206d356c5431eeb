"""``vak-skill-sign``: create keys, sign, verify and inspect skills.

All logic lives in :mod:`vak.identity.keys`, :mod:`vak.identity.signing` and
:mod:`vak.identity.trust`; this module only maps flags onto them and errors onto
exit codes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vak.cli._common import ERROR_CODES, add_command, emit, make_parser, read_secret, run
from vak.errors import (
    ManifestError,
)
from vak.identity.keys import generate_key_file, load_public_key, load_signing_key, public_key_id
from vak.identity.manifest import load_manifest
from vak.identity.signing import manifest_digest, read_module, sign_skill, verify_skill
from vak.identity.trust import TrustStore
from vak.text import printable

__all__ = ["EXIT_CODES", "main"]

#: the shared table of docs/CLI.md (3 manifest ... 8 config), the same codes as `vak`'s
EXIT_CODES: Mapping[type[BaseException], int] = ERROR_CODES

_EPILOG = """\
examples:
  vak-skill-sign verify skills/calculator --trust trust.yaml --json
  vak-skill-sign keygen --out signer.key              # writes signer.key (0600) + signer.key.pub
  vak-skill-sign sign skills/calculator --key signer.key
  vak-skill-sign verify skills/calculator --key signer.key.pub
  vak-skill-sign inspect skills/calculator
  vak-skill-sign sign skills/calculator --key ~/.ssh/id_ed25519   # reuse an OpenSSH key

exit codes:
  0 ok                      5 module digest does not match the signed digest
  1 other error             6 signer not trusted (unknown, revoked, expired, skill not allowed)
  2 usage or I/O error      7 key file error (missing, wrong format, wrong passphrase)
  3 invalid manifest        8 trust store or passphrase source invalid
  4 missing/bad signature   70 internal error (--debug shows the traceback)

Formats of skill.yaml, key files and the trust store: docs/MANIFEST.md
"""


def _passphrase(args: argparse.Namespace) -> bytes | None:
    return read_secret(args.passphrase_file, args.passphrase_env, os.environ)


def _add_passphrase_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--passphrase-file", metavar="FILE",
                       help="read the key passphrase from the first line of FILE")
    group.add_argument("--passphrase-env", metavar="VAR",
                       help="read the key passphrase from environment variable VAR")


def _keygen(args: argparse.Namespace) -> int:
    key_id = generate_key_file(
        args.out, passphrase=_passphrase(args), force=args.force, comment=args.comment
    )
    print(f"wrote {args.out} (private, mode 0600) and {args.out}.pub")
    print(f"key id: {key_id}")
    return 0


def _sign(args: argparse.Namespace) -> int:
    key = load_signing_key(args.key, _passphrase(args))
    manifest = sign_skill(args.skill_dir, key)
    print(f"signed {manifest.name} {manifest.version} in {args.skill_dir}")
    print(f"module sha256: {manifest.module.sha256}")
    print(f"key id: {public_key_id(key.verify_key)}")
    return 0


def _trust(args: argparse.Namespace) -> TrustStore:
    if args.trust is not None:
        return TrustStore.load(args.trust)
    return TrustStore.from_keys(*(load_public_key(k) for k in args.key))


def _verify(args: argparse.Namespace) -> int:
    skill = verify_skill(args.skill_dir, _trust(args))
    data = {
        "ok": True,
        "skill": skill.manifest.name,
        "version": skill.manifest.version,
        "signer_key_id": skill.signer_key_id,
        "tier": skill.tier.value,
        "module_sha256": skill.module_sha256,
        "manifest_sha256": skill.manifest_sha256,
    }
    emit(args, data, (
        f"OK: {skill.manifest.name} {skill.manifest.version} signed by "
        f"{skill.signer_key_id} (tier: {skill.tier.value})\n"
        f"module sha256: {skill.module_sha256}"
    ))
    return 0


def _inspect_data(skill_dir: Path) -> dict[str, Any]:
    m = load_manifest(skill_dir)
    try:
        actual: str | None = hashlib.sha256(read_module(skill_dir, m)).hexdigest()
    except ManifestError:
        actual = None
    caps = m.capabilities
    return {
        "name": m.name,
        "version": m.version,
        "description": m.description,
        "author": m.author,
        "license": m.license,
        "module": {
            "path": m.module.path,
            "signed_sha256": m.module.sha256,
            "actual_sha256": actual,
            "matches": actual is not None and actual == m.module.sha256,
        },
        "exports": [{"name": e.name, "description": e.description} for e in m.exports],
        "capabilities": {
            "fs_read": list(caps.fs_read), "fs_write": list(caps.fs_write),
            "http": list(caps.http), "kv": caps.kv, "secrets": list(caps.secrets),
            "log": caps.log, "clock": caps.clock, "random": caps.random,
        },
        "limits": {
            "max_memory_pages": m.limits.max_memory_pages,
            "max_execution_time_ms": m.limits.max_execution_time_ms,
            "max_fuel": m.limits.max_fuel,
            "max_output_bytes": m.limits.max_output_bytes,
            "max_host_calls": m.limits.max_host_calls,
        },
        "signer_key_id": m.signature.key_id if m.signature else None,
        "manifest_sha256": manifest_digest(m),
    }


def _inspect_text(d: dict[str, Any]) -> str:
    mod = d["module"]
    if mod["actual_sha256"] is None:
        state = "module missing, unreadable or outside the skill directory"
    elif mod["signed_sha256"] is None:
        state = "no digest recorded (unsigned)"
    else:
        state = "matches" if mod["matches"] else "DOES NOT MATCH"
    granted = [k for k, v in d["capabilities"].items() if v]
    # the manifest is not verified here: its text must not be able to forge an output line
    p = printable
    lines = [
        f"{d['name']} {d['version']} by {p(d['author'])} ({p(d['license'])})",
        f"  {p(d['description'])}",
        f"module:   {p(mod['path'])}",
        f"  signed sha256: {mod['signed_sha256'] or '-'}",
        f"  actual sha256: {mod['actual_sha256'] or '-'}  [{state}]",
        f"signer:   {d['signer_key_id'] or 'UNSIGNED'} (inspect does not check the signature;"
        " use verify)",
        "exports:  " + ", ".join(e["name"] for e in d["exports"]),
        "capabilities: " + (", ".join(
            p(f"{k}={v}") if not isinstance(v, bool) else k
            for k, v in d["capabilities"].items() if v
        ) if granted else "none"),
        "limits:   " + ", ".join(f"{k}={v}" for k, v in d["limits"].items()),
    ]
    return "\n".join(lines)


def _inspect(args: argparse.Namespace) -> int:
    data = _inspect_data(Path(args.skill_dir))
    emit(args, data, _inspect_text(data))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``vak-skill-sign`` argument parser."""
    parser = make_parser(
        "vak-skill-sign",
        "Create Ed25519 keys, sign skills (skill.yaml + module), and verify them "
        "against a key or a trust store.",
        _EPILOG,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = add_command(sub, "keygen", "Create a signing key pair: KEY (private) and KEY.pub.",
                    _keygen, epilog="example:\n  vak-skill-sign keygen --out signer.key "
                    "--passphrase-env VAK_KEY_PASS")
    p.add_argument("--out", required=True, metavar="KEY", help="private key path")
    p.add_argument("--force", action="store_true", help="overwrite existing key files")
    p.add_argument("--comment", default="", help="comment stored with the key")
    _add_passphrase_flags(p)

    p = add_command(sub, "sign", "Fill in the module digest and sign skill.yaml in place.",
                    _sign, epilog="example:\n  vak-skill-sign sign skills/calculator "
                    "--key signer.key")
    p.add_argument("skill_dir", metavar="SKILL_DIR", help="the skill directory (skill.yaml)")
    p.add_argument("--key", required=True, metavar="KEY",
                   help="private key: a keygen KEY file or an OpenSSH ed25519 private key")
    _add_passphrase_flags(p)

    p = add_command(sub, "verify", "Verify signature, signer and module digest.", _verify,
                    json_flag=True, epilog="examples:\n"
                    "  vak-skill-sign verify skills/calculator --key signer.key.pub\n"
                    "  vak-skill-sign verify skills/calculator --trust trust.yaml --json")
    p.add_argument("skill_dir", metavar="SKILL_DIR", help="the skill directory (skill.yaml)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--key", action="append", metavar="KEY.pub",
                     help="trust this public key (vak-ed25519 or ssh-ed25519 line); repeatable")
    src.add_argument("--trust", metavar="FILE", help="trust store YAML file")

    p = add_command(sub, "inspect", "Show a skill's manifest, digest and signer (no trust check).",
                    _inspect, json_flag=True,
                    epilog="example:\n  vak-skill-sign inspect skills/calculator --json")
    p.add_argument("skill_dir", metavar="SKILL_DIR", help="the skill directory (skill.yaml)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vak-skill-sign`` console script."""
    return run(build_parser, argv, EXIT_CODES, prog="vak-skill-sign")


if __name__ == "__main__":
    raise SystemExit(main())
