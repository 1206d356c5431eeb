"""A real kernel workdir for the secrets and data-flow tests (imported by the tests).

One signed, trusted ``relay`` skill (``tests/security/relay/relay.c``) that does
with host-call results whatever its input says; a secrets file; fs mounts
``/workspace`` and ``/workspace/private``; a recording HTTP server on
127.0.0.1 that the relay skill may reach. Everything is real: wasmtime, Cedar,
the audit log, SQLite kv, the worker pool.
"""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
RELAY_SRC = Path(__file__).resolve().parent / "relay" / "relay.c"

API_TOKEN = "tok-5ecr3t-ABCDEF123456"
GITHUB_TOKEN = "ghp_Zx9Lm2Qw8Rt4Yu6Io1Pa"
SECRETS = (API_TOKEN, GITHUB_TOKEN)
PRIVATE_TEXT = "merger plan: acquire ACME on friday"


def build_relay(out: Path) -> bytes:
    """Compile relay.c with the project's C flags (Zig from PyPI)."""
    sys.path.insert(0, str(REPO / "tools"))
    try:
        from build_skills import CFLAGS
    finally:
        sys.path.remove(str(REPO / "tools"))
    subprocess.run(
        [sys.executable, "-m", "ziglang", "cc", *CFLAGS, "-I", str(REPO / "skills" / "sdk"),
         str(RELAY_SRC), "-o", str(out)],
        check=True, capture_output=True, text=True,
    )
    return out.read_bytes()


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[str]

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        self.server.seen.append(f"{self.command} {self.path} {dict(self.headers)} {body}")  # type: ignore[attr-defined]
        payload = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def recording_server() -> Iterator[tuple[int, list[str]]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], server.seen  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class SecretEnv:
    root: Path
    config: Path
    port: int
    seen: list[str] = field(default_factory=list)

    @property
    def log(self) -> Path:
        return self.root / "audit" / "vak.log"

    def kernel_config(self, **changes: Any) -> Any:
        from vak.config import KernelConfig

        cfg = KernelConfig.from_toml(self.config)
        return cfg.with_(**changes) if changes else cfg

    def kernel(self, **changes: Any) -> Any:
        from vak.kernel import Kernel

        return Kernel(self.kernel_config(**changes))

    def enable_policy(self, text: str, name: str = "extra.cedar") -> None:
        (self.root / "policies" / name).write_text(text, encoding="utf-8")


def make_env(root: Path, relay_wasm: bytes, port: int, seen: list[str]) -> SecretEnv:
    """Write a signed, trusted workdir with the relay skill into ``root``."""
    from vak.identity.keys import generate_key_file, load_signing_key
    from vak.identity.signing import sign_skill

    root.mkdir(parents=True, exist_ok=True)
    keys = root / "keys"
    keys.mkdir(exist_ok=True)
    generate_key_file(keys / "signer.key", force=True, comment="secrets tests")
    pub = (keys / "signer.key.pub").read_text(encoding="utf-8").strip()
    (root / "trust.yaml").write_text(
        f"keys:\n  - key: {json.dumps(pub)}\n    tier: trusted\n", encoding="utf-8")
    skill = root / "skills" / "relay"
    skill.mkdir(parents=True, exist_ok=True)
    (skill / "relay.wasm").write_bytes(relay_wasm)
    manifest = {
        "name": "relay", "version": "1.0.0", "description": "Does what its input says.",
        "author": "VAK tests", "license": "Apache-2.0", "module": {"path": "relay.wasm"},
        "capabilities": {
            "fs": {"read": ["/workspace"], "write": ["/workspace/out"]},
            "http": {"hosts": ["127.0.0.1"]}, "kv": True,
            "secrets": ["API_TOKEN", "github_token"], "log": True, "clock": True,
        },
        "limits": {"max_memory_pages": 64, "max_execution_time_ms": 5000,
                   "max_fuel": 200_000_000, "max_output_bytes": 1 << 20, "max_host_calls": 16},
        "exports": [{"name": "run", "description": "relay", "input_schema": {"type": "object"},
                     "output_schema": {}}],
    }
    (skill / "skill.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    sign_skill(skill, load_signing_key(keys / "signer.key"))
    ws = root / "workspace"
    (ws / "private").mkdir(parents=True, exist_ok=True)
    (ws / "out").mkdir(exist_ok=True)
    (ws / "hello.txt").write_text("hello world", encoding="utf-8")
    (ws / "private" / "plan.txt").write_text(PRIVATE_TEXT, encoding="utf-8")
    (root / "secrets.toml").write_text(
        f'API_TOKEN = "{API_TOKEN}"\ngithub_token = "{GITHUB_TOKEN}"\n', encoding="utf-8")
    (root / "policies").mkdir(exist_ok=True)
    (root / "policies" / "local.cedar").write_text(
        '@id("test.relay-local-server")\n'
        'permit (principal == Vak::Skill::"relay", action == Vak::Action::"http_request", '
        f'resource) when {{ resource.ip == "127.0.0.1" && resource.port == {port} }};\n',
        encoding="utf-8")
    config = root / "vak.toml"
    config.write_text(
        'state_dir = ".vak"\ntrust_store = "trust.yaml"\npolicy_dirs = ["policies"]\n'
        'skill_dirs = ["skills/relay"]\n'
        '[audit]\nlog = "audit/vak.log"\nkey = "audit/log.key"\n'
        '[host]\nsecrets_file = "secrets.toml"\n'
        '[host.fs_mounts]\n"/workspace" = "workspace"\n'
        '"/workspace/private" = "workspace/private"\n',
        encoding="utf-8")
    return SecretEnv(root, config, port, seen)


# ---------------------------------------------------------------------- leak checks
_UESC = re.compile(r"\\u([0-9a-fA-F]{4})")


def _views(text: str) -> list[str]:
    """``text`` as a reader could see it: as is, lower-cased, with \\u escapes decoded."""
    decoded = _UESC.sub(lambda m: chr(int(m.group(1), 16)), text)
    return [text, text.lower(), decoded, decoded.lower()]


def leaks(text: str | bytes, secrets: tuple[str, ...] = SECRETS) -> list[str]:
    """The secrets that ``text`` gives away (in any of its views)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    found = []
    for secret in secrets:
        if any(secret.lower() in view.lower() for view in _views(text)):
            found.append(secret)
    return found


def strings_in(value: Any) -> Iterator[str]:
    """Every string and key in a decoded JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from strings_in(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from strings_in(v)


def log_leaks(env: SecretEnv) -> list[str]:
    """Secrets found anywhere in the audit log: raw bytes and every decoded string."""
    found = set(leaks(env.log.read_bytes()))
    for line in env.log.read_text(encoding="utf-8").splitlines():
        for s in strings_in(json.loads(line)):
            found.update(leaks(s))
    return sorted(found)


def error_text(exc: BaseException) -> str:
    """Everything an error shows: message, str, details, diagnostics, JSON form."""
    parts = [str(exc), repr(exc.args)]
    for attr in ("message", "details"):
        parts.append(repr(getattr(exc, attr, "")))
    if hasattr(exc, "diagnostics"):
        parts.append(exc.diagnostics())
    if hasattr(exc, "to_dict"):
        parts.append(json.dumps(exc.to_dict(), default=str))
    return "\n".join(parts)
