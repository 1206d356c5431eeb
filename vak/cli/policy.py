"""``vak policy validate`` and ``vak policy test``: the policy set, offline.

``validate [DIR ...]`` loads the shipped schema and policies plus each DIR
(or, without DIR, the ``policy_dirs`` of ``--config`` when that file exists)
exactly as the kernel does at start, and prints the policy ids and the
policy-set digest; an invalid policy exits 24 (docs/CLI.md) naming its file and line.

``test`` builds the same Cedar request the mediation would for one host call
and prints the decision and the determining policies::

    vak policy test --skill skills/notes --action fs_read \\
        --resource /workspace/a.txt --context '{"max_bytes": 100}'

``--skill`` is a skill directory (its ``skill.yaml`` gives the declared
capabilities; the declared-capability ceiling is reported too) or a bare name
(no capabilities). ``--resource`` is the target as the guest would name it: a
path (fs), a URL (http_request; resolved once, or pinned with ``--ip``), a key
(kv), a secret name, or nothing (log, clock_now, random_bytes). ``--context``
is merged over the action's context.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from vak.cli._common import Exit
from vak.config import SHIPPED_POLICY_DIR, KernelConfig
from vak.errors import ConfigError
from vak.host.base import Prepared
from vak.host.catalog import host_function
from vak.host.clock import ClockFamily
from vak.host.context import CallContext
from vak.host.fs import FsFamily
from vak.host.http import HttpFamily
from vak.host.kv import KvFamily
from vak.host.log import LogFamily
from vak.host.random import RandomFamily
from vak.host.secrets import NoSecrets, SecretsFamily
from vak.identity.manifest import Capabilities, Limits, Manifest, ModuleRef, load_manifest
from vak.identity.trust import Tier
from vak.policy.engine import PolicyEngine
from vak.policy.entities import CedarRequest, principal_for
from vak.policy.normalize import NormalizeError, normalize_url

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
    data = {
        "ok": True,
        "dirs": [str(d) for d in dirs],
        "policies": list(engine.loaded.ids),
        "digest": engine.digest,
    }
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(f"ok: {len(data['policies'])} policies valid against {engine.loaded.schema_file}")
        for pid in data["policies"]:
            print(f"  {pid}")
        print(f"policy-set digest: {engine.digest}")
    return EXIT_OK


class _PinnedResolver:
    def __init__(self, ip: str) -> None:
        self._ip = ip

    def resolve(self, host: str, port: int) -> tuple[str, ...]:
        return (self._ip,)


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


def _prepare(action: str, resource: str, ctx: CallContext, ip: str | None) -> Prepared:
    fn = host_function(action.removeprefix('Vak::Action::"').removesuffix('"'))
    if fn is None:
        raise ConfigError(f"unknown action {action!r}", field="--action")
    args: dict[str, Any] = {}
    if fn.family == "fs":
        return FsFamily({}).prepare(fn.name, {"path": resource, "content": ""}, ctx)
    if fn.family == "net":
        family = HttpFamily(_PinnedResolver(ip) if ip else None)
        prepared = family.prepare(fn.name, {"url": resource}, ctx)
        if prepared.ceiling_violation is None:
            return prepared
        # The mediation never resolves an undeclared host (no DNS leak); this
        # offline tool does, so the Cedar half of the answer is still shown.
        url = normalize_url(resource)
        caps = replace(ctx.manifest.capabilities, http=(url.authority,))
        wide = replace(ctx, manifest=replace(ctx.manifest, capabilities=caps))
        return replace(family.prepare(fn.name, {"url": resource}, wide),
                       ceiling_violation=prepared.ceiling_violation)
    if fn.family == "kv":
        args = {"prefix": resource} if fn.name == "kv_list" else {"key": resource, "value": ""}
        return KvFamily(None).prepare(fn.name, args, ctx)  # type: ignore[arg-type]
    if fn.family == "secrets":
        return SecretsFamily(NoSecrets()).prepare(fn.name, {"name": resource}, ctx)
    if fn.name == "log":
        return LogFamily().prepare(fn.name, {"message": ""}, ctx)
    if fn.name == "random_bytes":
        return RandomFamily().prepare(fn.name, {}, ctx)
    return ClockFamily().prepare(fn.name, {}, ctx)


def cmd_test(args: argparse.Namespace) -> int:
    """Print the decision for one host call; exit 0 on Allow, 20 (as a denied call) on Deny."""
    try:
        extra = json.loads(args.context)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--context is not JSON: {exc}", field="--context") from None
    if not isinstance(extra, dict):
        raise ConfigError("--context must be a JSON object", field="--context")
    engine = PolicyEngine.load(_dirs(args, args.policies))
    manifest = _manifest(args.skill)
    ctx = CallContext(manifest, "sha256:cli", manifest.module.sha256 or "", "", Tier(args.tier),
                      "cli")
    try:
        prepared = _prepare(args.action, args.resource, ctx, args.ip)
    except NormalizeError as exc:
        raise ConfigError(f"--resource refused: {exc}", field="--resource") from None
    principal = principal_for(
        manifest,
        manifest_digest="sha256:cli",
        module_sha256=ctx.module_sha256,
        signer="",
        trust_tier=ctx.trust_tier,
    )
    fn_name = args.action.removeprefix('Vak::Action::"').removesuffix('"')
    request = CedarRequest(
        principal, fn_name, prepared.resource, {"session": {}, **prepared.context, **extra}
    )
    decision = engine.decide(request)
    allowed = decision.allowed and prepared.ceiling_violation is None
    data = {
        "decision": "allow" if allowed else "deny",
        "cedar_decision": "allow" if decision.allowed else "deny",
        "policy_ids": list(decision.policy_ids),
        "errors": list(decision.errors),
        "ceiling": prepared.ceiling_violation,
        "request": request.to_data(),
        "policy_set_digest": engine.digest,
    }
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(f"decision: {data['decision'].upper()}")
        print(f"resource: {prepared.resource.display}")
        print(f"cedar: {data['cedar_decision']} by {', '.join(decision.policy_ids)}")
        if prepared.ceiling_violation:
            print(f"ceiling: vak.capability-ceiling ({prepared.ceiling_violation})")
        for err in decision.errors:
            print(f"error: {err}")
    return EXIT_OK if allowed else EXIT_DENY
