"""Files VAK writes for its users: a kernel directory (``vak init``) and a new skill.

``init_dir(DIR)`` lays out a working kernel directory::

    DIR/vak.toml            every option, its default and its meaning (generated
                            from the settings dataclasses, see vak/_configdoc.py)
    DIR/trust.yaml          the trust store (empty, or the author key with --author)
    DIR/policies/operator.cedar   a commented operator policy template
    DIR/skills/             where skills go (listed in vak.toml's skill_dirs)
    DIR/keys/author.key     with ``author=True``: a signing key trusted at tier trusted
    DIR/audit-pin.pub       the audit log key, pinned for ``vak-audit verify --config``
                            (when the audit settings have a ``trust`` field)

``new_skill(PARENT, NAME, lang)`` writes ``PARENT/NAME/skill.yaml`` and a C or
Zig source that builds with the packaged SDK (``vak skill build``)::

    >>> skill = new_skill(Path("skills"), "hello", "c")     # doctest: +SKIP
    >>> sorted(p.name for p in skill.iterdir())             # doctest: +SKIP
    ['hello.c', 'skill.yaml']

Nothing is overwritten unless ``force`` is given; every refusal names the file
and the flag that allows it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vak._configdoc import render_config
from vak.errors import ConfigError

__all__ = ["LANGS", "InitResult", "config_text", "init_dir", "new_skill", "trust_store_text"]

#: languages ``vak skill new`` scaffolds (components join when they land)
LANGS = ("c", "zig", "python", "js", "ts")
#: languages built as vak:skill components (vak/componentbuild.py), and their entry file
COMPONENT_SOURCES = {"python": "app.py", "js": "app.js", "ts": "app.ts"}
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")

#: the log key's pinned copy, beside vak.toml and outside the state directory
AUDIT_PIN = "audit-pin.pub"

CONFIG_HEADER = """\
vak.toml: the kernel's configuration, written by `vak init`.

Every option is listed with its default; a commented-out key keeps that
default. Relative paths resolve against this file's directory.

Signing. require_signature = true (the default) loads only skills whose
signer is in trust_store; keep it on in production. Development mode
(require_signature = false) also loads unsigned skills, as untrusted, in the
OS-sandboxed worker, and marks their skill_loaded audit entries with
"dev_mode": true. `vak skill test` runs a skill that way in a throw-away
kernel of its own, never in this one.

Secrets. A skill reads a secret it declares (capabilities.secrets) through
the secret_get host function, when policy allows. Values come from
host.secrets_file (a TOML file of name = "value", readable by the kernel's
user only) or, for `vak` commands, from the environment variables named in
host.secrets_env. A value never appears in outputs, errors or the audit log.

The meaning of each host function: docs/ABI.md; policies: docs/POLICY.md."""

OPERATOR_POLICY = """\
// Operator policies, evaluated together with the base policies shipped in VAK
// (`vak policy validate --config vak.toml` checks them against the schema).
// The shipped base forbids what no skill may ever do (cloud metadata, private
// and loopback networks unless permitted here, paths outside the fs mounts);
// a forbid always wins over a permit. Give each policy an @id: it is the name
// recorded in the audit log for every decision it takes part in.
//
// Example: let the skill "fetch" call one API over HTTPS.
//
// @id("operator.fetch-example-api")
// permit (principal == Vak::Skill::"fetch", action == Vak::Action::"http_request", resource)
// when { resource.host == "api.example.com" && resource.scheme == "https" };
//
// Try a decision without running anything:
//   vak policy test --config vak.toml --skill skills/fetch --action http_request \\
//       --resource https://api.example.com/v1
"""


@dataclass(frozen=True, slots=True)
class InitResult:
    """What ``init_dir`` wrote, for the CLI to print."""

    directory: Path
    config: Path
    trust_store: Path
    policy: Path
    skills: Path
    author_key: Path | None = None
    author_key_id: str = ""
    written: tuple[Path, ...] = field(default=())


def config_text(values: dict[str, object]) -> str:
    """The commented ``vak.toml`` with ``values`` set (see :mod:`vak._configdoc`)."""
    return render_config(values, header=CONFIG_HEADER)


def trust_store_text(entries: Iterable[tuple[str, str, str]], header: str) -> str:
    """A trust store of ``(public key line, tier, comment)`` entries (docs/MANIFEST.md)."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    items = list(entries)
    if not items:
        return "\n".join([*lines, "keys: []", ""])
    lines.append("keys:")
    for key, tier, comment in items:
        lines += [f"  - key: {json.dumps(key)}", f"    tier: {tier}",
                  f"    comment: {json.dumps(comment)}"]
    return "\n".join(lines) + "\n"


def _refuse_existing(paths: Iterable[Path], force: bool) -> None:
    for path in paths:
        if path.exists() and not force:
            raise ConfigError(f"{path}: already exists", file=str(path),
                              fix="choose another directory, or pass --force to overwrite")


def _supports_audit_pin() -> bool:
    from vak._configdoc import config_keys

    return any(k.dotted in ("audit.trust", "audit_trust") for k in config_keys())


def _pin_audit_key(config: Path, pin: Path) -> None:
    """Start the new kernel once so it creates its log key, and pin that key.

    ``vak-audit verify --config`` then checks the log against this copy, kept
    outside the state directory, instead of the key file beside the log (which
    whoever can write the log could replace).
    """
    from vak.kernel import Kernel

    with Kernel.from_config(config) as kernel:
        public = Path(kernel.audit.public_key_path)
    pin.write_bytes(public.read_bytes())


def init_dir(directory: Path, *, author: bool = False, force: bool = False) -> InitResult:
    """Write a kernel directory (module docstring); return what was written.

    Raises:
        ConfigError: a file exists and ``force`` is not set.
        KeyFileError: the author key cannot be written.
    """
    from vak.identity.keys import generate_key_file

    directory = Path(directory)
    config, trust, policies = (directory / "vak.toml", directory / "trust.yaml",
                               directory / "policies")
    policy = policies / "operator.cedar"
    key = directory / "keys" / "author.key"
    _refuse_existing([config, trust, policy, *([key] if author else [])], force)
    directory.mkdir(parents=True, exist_ok=True)
    for sub in (policies, directory / "skills"):
        sub.mkdir(exist_ok=True)
    entries: list[tuple[str, str, str]] = []
    key_id = ""
    if author:
        key.parent.mkdir(exist_ok=True)
        key_id = generate_key_file(key, force=force, comment="vak-author")
        pub = key.with_name(key.name + ".pub").read_text(encoding="utf-8").strip()
        entries.append((pub, "trusted", "author key written by vak init"))
    pin = directory / AUDIT_PIN if _supports_audit_pin() else None
    values: dict[str, object] = {"trust_store": "trust.yaml", "policy_dirs": ["policies"],
                                 "skill_dirs": [], "state_dir": ".vak"}
    if pin is not None:
        values.update({"audit.trust": AUDIT_PIN, "audit_trust": AUDIT_PIN})
    config.write_text(config_text(values), encoding="utf-8")
    trust.write_text(trust_store_text(
        entries, "Trust store: the keys whose signatures this kernel accepts, and at which\n"
        "tier (trusted: in-process; untrusted: OS-sandboxed worker). Manage it with\n"
        "`vak trust add KEY.pub --tier trusted|untrusted`, `vak trust list`, "
        "`vak trust revoke KEYID`."), encoding="utf-8")
    policy.write_text(OPERATOR_POLICY, encoding="utf-8")
    written = [config, trust, policy, *([key, key.with_name(key.name + ".pub")] if author
                                        else [])]
    if pin is not None:
        _pin_audit_key(config, pin)
        written.append(pin)
    return InitResult(directory, config, trust, policy, directory / "skills",
                      key if author else None, key_id, tuple(written))


# ---------------------------------------------------------------------- new skill
_MANIFEST = """\
# {name}: written by `vak skill new`. The format: docs/MANIFEST.md.
name: {name}
version: 0.1.0
description: Greet someone by name (a starting point; edit me).
author: {author}
license: Apache-2.0
module:
  path: {name}.wasm{kind}
# host functions this skill may ask for; each call is still decided by policy
capabilities: {capabilities}
limits:
  max_memory_pages: {pages}
  max_execution_time_ms: 1000
  max_fuel: {fuel}
  max_output_bytes: 4096
  max_host_calls: {host_calls}
exports:
  - name: execute
    description: Return a greeting for the given name.
    input_schema:
      type: object
      properties:
        name: {{type: string, maxLength: 200}}
      required: [name]
      additionalProperties: false
    output_schema:
      type: object
      properties:
        greeting: {{type: string}}
        error: {{type: string}}
      minProperties: 1
"""

_C_SOURCE = """\
/* {name}: {{name}} -> {{greeting}}. Build: vak skill build {name}  (SDK: vak.h, docs/ABI.md) */
#include "vak.h"

VAK_EXPORT(execute) {{
    vak_str raw, name;
    if (!vak_json_get(vak_input, "name", &raw) || !vak_json_string_raw(raw, &name))
        return vak_return_error("name must be a string");
    vak_buf out = vak_buf_new(64 + name.len);
    vak_buf_lit(&out, "{{\\"greeting\\":\\"Hello, ");
    vak_buf_str(&out, name); /* still JSON-escaped, so it is pasted as is */
    vak_buf_lit(&out, "!\\"}}");
    return vak_buf_return(&out);
}}
"""

_ZIG_SOURCE = """\
//! {name}: {{name}} -> {{greeting}}. Build: vak skill build {name}  (SDK: vak.zig, docs/ABI.md)
const vak = @import("vak");

export fn execute(ptr: u32, len: u32) u64 {{
    const bad = "{{\\"error\\":\\"name must be a string\\"}}";
    const in = vak.input(ptr, len);
    const raw = vak.get(in, "name") orelse return vak.pack(bad);
    const name = vak.stringRaw(raw) orelse return vak.pack(bad);
    const head = "{{\\"greeting\\":\\"Hello, ";
    const tail = "!\\"}}";
    // the name is still JSON-escaped, so it is pasted as is
    const out = vak.alloc(@intCast(head.len + name.len + tail.len));
    @memcpy(out[0..head.len], head);
    @memcpy(out[head.len .. head.len + name.len], name);
    @memcpy(out[head.len + name.len ..], tail);
    return vak.pack(out);
}}
"""


_PY_SOURCE = """\
\"\"\"{name}: {{name}} -> {{greeting}}. Build: vak skill build {name}  (docs/COMPONENTS.md)

A vak:skill component: the kernel calls Tool.call(tool name, input JSON text)
and validates the JSON text returned against the manifest's output schema.
Host functions are imported from wit_world.imports (fs, http, kv, log, ...).
\"\"\"

import json

from wit_world import exports


class Tool(exports.Tool):
    def call(self, name: str, input: str) -> str:
        if name != "execute":
            return json.dumps({{"error": "unknown tool"}})
        who = json.loads(input).get("name")
        if not isinstance(who, str):
            return json.dumps({{"error": "name must be a string"}})
        return json.dumps({{"greeting": "Hello, " + who + "!"}})
"""

_JS_SOURCE = """\
// {name}: {{name}} -> {{greeting}}. Build: vak skill build {name}  (docs/COMPONENTS.md)
//
// A vak:skill component: the kernel calls tool.call(tool name, input JSON text)
// and validates the JSON text returned against the manifest's output schema.
// Host functions are imported from "vak:skill/http@0.1.0", "vak:skill/log@0.1.0", ...

export const tool = {{
  call(name, input) {{
    if (name !== "execute") return JSON.stringify({{ error: "unknown tool" }});
    const who = JSON.parse(input).name;
    if (typeof who !== "string") return JSON.stringify({{ error: "name must be a string" }});
    return JSON.stringify({{ greeting: "Hello, " + who + "!" }});
  }},
}};
"""


_TS_SOURCE = """\
// {name}: {{name}} -> {{greeting}}. Build: vak skill build {name}  (docs/COMPONENTS.md)
//
// A vak:skill component in TypeScript: `vak skill build` type-checks this file
// with tsc against the WIT world's declarations (skill.d.ts, shipped with VAK),
// then builds the JavaScript with componentize-js. The kernel calls
// tool.call(tool name, input JSON text) and validates the JSON text returned.

import {{ write }} from "vak:skill/log@0.1.0";

interface Input {{
  name?: unknown;
}}

export const tool = {{
  call(name: string, input: string): string {{
    if (name !== "execute") return JSON.stringify({{ error: "unknown tool" }});
    const who = (JSON.parse(input) as Input).name;
    if (typeof who !== "string") return JSON.stringify({{ error: "name must be a string" }});
    write("info", "greeting someone");
    return JSON.stringify({{ greeting: "Hello, " + who + "!" }});
  }},
}};
"""


def source_name(name: str, lang: str) -> str:
    """The source file ``vak skill new`` writes for ``lang``."""
    return COMPONENT_SOURCES.get(lang, f"{name}.{lang}")


def new_skill(parent: Path, name: str, lang: str, *, author: str = "me",
              force: bool = False) -> Path:
    """Write a new skill ``parent/name`` in ``lang``; return its directory.

    Raises:
        ConfigError: the name or language is invalid, or the directory exists
            (without ``force``).
    """
    if not _NAME.match(name):
        raise ConfigError(f"skill name {name!r} is not valid", field="NAME",
                          valid="1-31 characters: a lowercase letter, then lowercase letters, "
                          "digits, '_' or '-'", fix="e.g. vak skill new hello --lang c")
    if lang not in LANGS:
        raise ConfigError(f"language {lang!r} is not supported", field="--lang",
                          valid=list(LANGS))
    skill = Path(parent) / name
    source = skill / source_name(name, lang)
    _refuse_existing([skill / "skill.yaml", source], force)
    skill.mkdir(parents=True, exist_ok=True)
    component = lang in COMPONENT_SOURCES
    # an interpreter in a component needs more memory and fuel than C (docs/COMPONENTS.md)
    (skill / "skill.yaml").write_text(_MANIFEST.format(
        name=name, author=json.dumps(author), kind="\n  kind: component" if component else "",
        pages=512 if component else 16, fuel=1_000_000_000 if component else 10_000_000,
        host_calls=16 if component else 0,
        # the TypeScript starter logs a line (a typed host call tsc checks)
        capabilities="\n  log: true" if lang == "ts" else "{}"),
        encoding="utf-8")
    template = {"c": _C_SOURCE, "zig": _ZIG_SOURCE, "python": _PY_SOURCE, "js": _JS_SOURCE,
                "ts": _TS_SOURCE}[lang]
    source.write_text(template.format(name=name), encoding="utf-8")
    return skill
