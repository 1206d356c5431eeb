"""``vak policy validate`` and ``vak policy test``: the policy set, offline.

``validate [DIR ...]`` loads the shipped schema and policies plus each DIR
(or, without DIR, the ``policy_dirs`` of ``--config`` when that file exists)
exactly as the kernel does at start, and prints the policy ids and the
policy-set digest; an invalid policy exits 24 (docs/CLI.md) naming its file and line.

``test`` asks the kernel's own mediation what it would do with one host call
(:meth:`vak.host.mediation.Mediator.explain`: the same normaliser, ceiling,
Cedar context and policy engine; nothing is counted, recorded or performed)
and prints the decision and the determining policies::

    vak policy test --skill skills/notes --action fs_read \\
        --resource /workspace/a.txt --context '{"max_bytes": 100}'

``--skill`` is a skill directory (its ``skill.yaml`` gives the declared
capabilities; the declared-capability ceiling is reported too) or a bare name
(no capabilities). ``--resource`` is the target as the guest would name it: a
path (fs), a URL (http_request: the URL decision, then the address decision on
``--ip`` or, without it and only when the URL decision and the ceiling allow,
on what this tool resolves the name to), a key (kv), a secret name, or nothing
(log, clock_now, random_bytes). ``--context`` is merged
over the action's context.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vak.audit.sink import AuditRef
from vak.cli._common import Exit
from vak.config import SHIPPED_POLICY_DIR, KernelConfig
from vak.errors import ABIError, ConfigError
from vak.host.catalog import host_function
from vak.host.context import CallContext
from vak.host.http import SystemResolver
from vak.host.mediation import Mediator
from vak.host.normalize import NormalizeError, normalize_url
from vak.host.settings import HostSettings
from vak.identity.manifest import Capabilities, Limits, Manifest, ModuleRef, load_manifest
from vak.identity.trust import Tier
from vak.policy.engine import PolicyEngine

__all__ = ["register"]

#: a Deny has the code of a denied call in `vak run` (docs/CLI.md)
EXIT_OK, EXIT_DENY = int(Exit.OK), int(Exit.POLICY_DENIED)


def register(subparsers: Any) -> None:
    """Add ``policy validate`` and ``policy test`` to a ``vak`` subparsers object."""
    policy = subparsers.add_parser(
        "policy",
        help="Validate and test Cedar policies.",
        description="Validate and test Cedar policies.",
    )
    psub = policy.add_subparsers(dest="policy_command", metavar="ACTION", required=True)

    v = psub.add_parser("validate", help="Validate the schema and policy files.")
    v.add_argument("dirs", nargs="*", metavar="DIR", help="operator policy directories")
    v.add_argument(
        "--config",
        default="vak.toml",
        metavar="vak.toml",
        help="take policy_dirs from this config when no DIR is given",
    )
    v.add_argument("--json", action="store_true", help="print JSON instead of text")
    v.set_defaults(func=cmd_validate)

    t = psub.add_parser("test", help="Decide one host call and print the determining policies.")
    t.add_argument("--skill", required=True, help="skill directory (or a bare skill name)")
    t.add_argument("--action", required=True, help="host function, e.g. fs_read")
    t.add_argument("--resource", default="", help="path, URL, kv key or secret name")
    t.add_argument("--context", default="{}", metavar="JSON", help="context fields to merge")
    t.add_argument("--ip", default=None, help="pin the URL's host to this address (no DNS)")
    t.add_argument(
        "--policies",
        nargs="*",
        default=None,
        metavar="DIR",
        help="operator policy dirs (default: the config's policy_dirs)",
    )
    t.add_argument("--config", default="vak.toml", metavar="vak.toml",
                   help="take the operator policy dirs from this config (if it exists)")
    t.add_argument("--tier", default=Tier.TRUSTED.value, choices=[tier.value for tier in Tier],
                   help="the skill's trust tier in the request (default: trusted)")
    t.add_argument("--json", action="store_true", help="print JSON instead of text")
    t.set_defaults(func=cmd_test)


def _dirs(args: argparse.Namespace, explicit: list[str] | None) -> tuple[Path, ...]:
    if explicit:
        dirs = tuple(Path(d) for d in explicit)
        if any(list(d.glob("*.cedarschema")) for d in dirs if d.is_dir()):
            return dirs
        return (SHIPPED_POLICY_DIR, *dirs)
    cfg_path = Path(args.config)
    if cfg_path.is_file():
        return KernelConfig.from_toml(cfg_path).all_policy_dirs
    return (SHIPPED_POLICY_DIR,)


def cmd_validate(args: argparse.Namespace) -> int:
    """Load every policy as the kernel would; PolicyError propagates to the CLI runner."""
    dirs = _dirs(args, args.dirs)
    engine = PolicyEngine.load(dirs)
    ids = list(engine.loaded.ids)
    data = {"ok": True, "dirs": [str(d) for d in dirs], "policies": ids, "digest": engine.digest}
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(f"ok: {len(ids)} policies valid against {engine.loaded.schema_file}")
        for pid in ids:
            print(f"  {pid}")
        print(f"policy-set digest: {engine.digest}")
    return EXIT_OK


class _NoAudit:
    """The audit sink of an offline explanation: nothing may be recorded."""

    def append(self, kind: str, fields: Mapping[str, Any], *, durable: bool = False,
               flush: bool = False) -> AuditRef:
        raise AssertionError("Mediator.explain recorded an entry")


def _manifest(skill: str) -> Manifest:
    path = Path(skill)
    if path.is_dir() or path.name == "skill.yaml":
        return load_manifest(path if path.is_dir() else path.parent)
    return Manifest(
        name=skill,
        version="0.0.0",
        description="",
        author="",
        license="",
        module=ModuleRef("", None),
        capabilities=Capabilities(),
        limits=Limits(),
        exports=(),
    )


def _args(function: str, resource: str) -> dict[str, Any]:
    """The guest arguments naming ``resource`` for ``function``."""
    if function.startswith("fs_"):
        return {"path": resource, "content": ""}
    if function == "http_request":
        return {"url": resource}
    if function == "kv_list":
        return {"prefix": resource}
    if function.startswith("kv_"):
        return {"key": resource, "value": ""}
    if function == "secret_get":
        return {"name": resource}
    if function == "log":
        return {"message": ""}
    return {}


def _lookup(resource: str) -> tuple[str, ...]:
    """This tool's own lookup of the URL's host (made only after the URL decision allows)."""
    n = normalize_url(resource)
    try:
        return SystemResolver().resolve(n.host, n.port)
    except (OSError, UnicodeError):
        return ()


def cmd_test(args: argparse.Namespace) -> int:
    """Print the decision for one host call; exit 0 on Allow, 20 (as a denied call) on Deny."""
    try:
        extra = json.loads(args.context)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--context is not JSON: {exc}", field="--context") from None
    if not isinstance(extra, dict):
        raise ConfigError("--context must be a JSON object", field="--context")
    function = args.action.removeprefix('Vak::Action::"').removesuffix('"')
    if host_function(function) is None:
        raise ConfigError(f"unknown action {args.action!r}", field="--action")
    engine = PolicyEngine.load(_dirs(args, args.policies))
    # an in-memory kv store: explain performs nothing, but decides kv calls as the kernel does
    mediator = Mediator(HostSettings(kv_path=Path(":memory:")), engine, _NoAudit(),
                        args_digest=lambda data: "")
    manifest = _manifest(args.skill)
    ctx = CallContext(manifest, "sha256:cli", manifest.module.sha256 or "", "", Tier(args.tier),
                      "cli")
    call_args = _args(function, args.resource)
    try:
        why = mediator.explain(ctx, function, call_args,
                               addresses=(args.ip,) if args.ip else None, extra_context=extra)
        if why.address_pending and why.ceiling is None:
            # as in the kernel: a name is looked up only once its URL decision allows it
            why = mediator.explain(ctx, function, call_args,
                                   addresses=_lookup(args.resource), extra_context=extra)
    except (NormalizeError, ABIError) as exc:
        raise ConfigError(f"--resource refused: {exc}", field="--resource") from None
    finally:
        mediator.close()
    cedar = why.cedar
    verdict = "allow" if why.allowed else "deny"
    data: dict[str, Any] = {
        "decision": verdict,
        "cedar_decision": "allow" if cedar.allowed else "deny",
        "policy_ids": list(cedar.policy_ids),
        "errors": list(cedar.errors),
        "ceiling": why.ceiling,
        "stages": [dict(s) for s in why.stages],
        "address_pending": why.address_pending,
        "request": dict(why.request),
        "policy_set_digest": engine.digest,
    }
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        resource = why.request["resource"]["uid"]
        print(f"decision: {verdict.upper()}")
        print(f"resource: {resource['type']}::{json.dumps(resource['id'])}")
        for stage in why.stages:
            print(f"{stage['stage']} decision: {'allow' if stage['allowed'] else 'deny'} "
                  f"by {', '.join(stage['policy_ids'])}")
        print(f"cedar: {data['cedar_decision']} by {', '.join(cedar.policy_ids)}")
        if why.ceiling:
            print(f"ceiling: vak.capability-ceiling ({why.ceiling})")
        for err in cedar.errors:
            print(f"error: {err}")
    return EXIT_OK if why.allowed else EXIT_DENY
