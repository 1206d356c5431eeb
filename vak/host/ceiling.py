"""The declared-capability ceiling: nothing the signed manifest did not declare.

Applied by the mediation, and only there, to every normalised call before Cedar
is asked (``vak.capability-ceiling``): whatever an operator policy permits, a
skill never gets more than it declared. Each catalog row names the capability
key its function needs; :func:`ceiling_violation` maps the key and the
normalised target onto the manifest's declarations.

| key | allowed when |
| --- | --- |
| ``fs.read`` | the path lies within (by component) an ``fs.read`` or ``fs.write`` grant |
| ``fs.write`` | the path lies within an ``fs.write`` grant |
| ``http`` | ``host:port`` matches a declared http pattern (:func:`host_allowed`) |
| ``kv`` | the skill declared ``kv`` |
| ``secrets`` | the secret's name is declared |
| ``log`` / ``clock`` / ``random`` | the skill declared it |
"""

from __future__ import annotations

from vak.host.base import NormalCall
from vak.host.normalize import (
    NormalizedUrl,
    NormalizeError,
    normalize_grants,
    normalize_host,
    path_within,
)
from vak.identity.manifest import Capabilities

__all__ = ["CAPABILITY_KEYS", "ceiling_violation", "host_allowed"]

#: capability key -> what the manifest must declare for a call needing it
CAPABILITY_KEYS: dict[str, str] = {
    "fs.read": "the path lies within (by component) an `fs.read` or `fs.write` grant",
    "fs.write": "the path lies within an `fs.write` grant",
    "http": "`host:port` matches a declared `http` pattern (`host`, `host:port`, `*.domain`)",
    "kv": "the skill declares `kv` (its own namespace only)",
    "secrets": "the secret's name is among the declared `secrets`",
    "log": "the skill declares `log`",
    "clock": "the skill declares `clock`",
    "random": "the skill declares `random`",
}


def ceiling_violation(capability: str, call: NormalCall, caps: Capabilities) -> str | None:
    """None when ``caps`` declare what ``call`` needs; else why not (no guest text).

    Raises:
        ValueError: ``capability`` is not a catalog capability key (a kernel bug).
    """
    if capability in ("fs.read", "fs.write"):
        grants = normalize_grants(caps.fs_write)
        if capability == "fs.read":
            grants = normalize_grants(caps.fs_read) + grants
        if any(path_within(call.target, g) for g in grants):
            return None
        return f"the path is outside the skill's declared {capability} grants"
    if capability == "http":
        if call.url is not None and host_allowed(call.url, caps.http):
            return None
        return "the host is not among the skill's declared http hosts"
    if capability == "secrets":
        if call.target in caps.secrets:
            return None
        return "the secret is not among the skill's declared secrets"
    if capability in ("kv", "log", "clock", "random"):
        return None if getattr(caps, capability) else f"the skill did not declare {capability}"
    raise ValueError(f"unknown capability key {capability!r}")


def host_allowed(n: NormalizedUrl, patterns: tuple[str, ...]) -> bool:
    """Whether ``n`` matches a manifest http pattern (``host``, ``host:port``, ``*.dom``).

    A pattern without a port matches any port of that host (as Deno's
    ``--allow-net=host`` does); ``host:port`` only that port; ``*.dom`` matches
    strict subdomains of ``dom``, never ``dom`` itself. Operator policy still
    decides on the pinned address and its class.
    """
    for pattern in patterns:
        host_part, port = pattern, n.port
        if pattern.startswith("["):
            end = pattern.find("]")
            host_part, rest = pattern[: end + 1], pattern[end + 1 :]
            if rest.startswith(":") and rest[1:].isdigit():
                port = int(rest[1:])
        elif pattern.count(":") == 1:
            host_part, _, p = pattern.partition(":")
            if not p.isdigit():
                continue
            port = int(p)
        if port != n.port:
            continue
        if host_part.startswith("*."):
            try:
                suffix = normalize_host(host_part[2:])
            except NormalizeError:
                continue
            if n.host.endswith("." + suffix):
                return True
            continue
        try:
            if normalize_host(host_part) == n.host:
                return True
        except NormalizeError:
            continue
    return False
