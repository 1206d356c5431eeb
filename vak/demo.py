"""``vak demo``: the whole product in one scripted agent session, verified at the end.

What it does, in order (everything local; no network beyond 127.0.0.1, no model):

1. copies the example skills shipped in the package (``vak/examples``) into
   ``DIR/skills`` and builds their modules there with the packaged SDK (Zig
   from the ``build`` extra; a module already built and up to date is reused),
   and the Python component ``pynotes`` with componentize-py (also in the
   ``build`` extra; seconds, so a build is kept in the cache directory, below);
2. generates a fresh demo signing key, signs the copies and writes a trust
   store that trusts only that key;
3. writes ``DIR/vak.toml`` (audit log and key, an fs mount ``/workspace`` ->
   ``DIR/workspace`` with a sample file, a policy dir with one demo policy
   that lets the ``fetch`` skill reach the demo's own HTTP server on
   127.0.0.1), and starts that server on an ephemeral port;
4. plays a scripted agent session through the tool-use loop, with tool calls
   shaped as a model would send them for ``tool_specs("openai")``:
   calculator, a read inside the grant, a read outside it (denied), HTTP to
   the local server (allowed), HTTP to 169.254.169.254 (denied), a runaway
   skill (stopped by its deadline), then the Python skill reading a file
   inside its grant and one outside it (denied);
5. closes the kernel and verifies the audit log with :func:`vak.audit.verify.verify_log`.

The Python component is the slow part of a first run: building it (about
10 s) and compiling it with wasmtime (about 10 s). With ``cache_dir`` (the
CLI passes ``~/.cache/vak``, or ``$VAK_CACHE_DIR``) both results are kept
there, the build under its source digest and the compiled component in the
engine's keyed, HMAC-checked module cache (``[engine] module_cache_dir`` of
the demo's ``vak.toml``), so a second run, in any work directory, takes
about a second. ``progress`` hears what the slow steps are doing.

The demo is *ok* only if every step behaved as expected and the log verifies.
Afterwards ``vak run --config DIR/vak.toml ...`` and
``vak-audit verify --config DIR/vak.toml`` work on the same state.
"""

from __future__ import annotations

import http.server
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vak.errors import ConfigError, PolicyDeniedError, ToolCallError

__all__ = ["DemoReport", "DemoStep", "prepare_workdir", "run_demo"]

#: the packaged examples (vak/examples) the demo builds, signs and loads
DEMO_SKILLS = ("calculator", "notes", "fetch", "loop")
#: the packaged component examples the full demo adds (a Python skill)
DEMO_COMPONENTS = ("pynotes",)
SAMPLE_TEXT = "Hello from the VAK demo workspace.\n"
#: what the Python skill finds under its grant (/data, a mount of DIR/data)
NOTE_TEXT = "A note the Python skill may read.\n"
METADATA_URL = "http://169.254.169.254/latest/meta-data/"


@dataclass(frozen=True, slots=True)
class DemoStep:
    """One scripted tool call and what happened to it."""

    step: int
    title: str
    tool: str
    input: dict[str, Any]
    expected: str  # "ok" | "denied" | "timeout"
    decision: str  # "allow" | "deny" | "n/a"
    outcome: str  # "ok" | error code
    audit_seq: int | None
    output: Any = None
    message: str = ""

    @property
    def as_expected(self) -> bool:
        if self.expected == "ok":
            return self.outcome == "ok"
        if self.expected == "denied":
            return self.outcome == "policy_denied"
        return self.outcome == "timeout"

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step, "title": self.title, "tool": self.tool, "input": self.input,
            "decision": self.decision, "outcome": self.outcome, "expected": self.expected,
            "as_expected": self.as_expected, "audit_seq": self.audit_seq,
            "output": self.output, "message": self.message,
        }


@dataclass(slots=True)
class DemoReport:
    """All steps, the verification result and where the state was left."""

    workdir: Path
    steps: list[DemoStep] = field(default_factory=list)
    verification: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (bool(self.steps) and all(s.as_expected for s in self.steps)
                and self.verification.get("result") == "OK")

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "workdir": str(self.workdir),
            "steps": [s.to_dict() for s in self.steps], "verification": self.verification,
        }

    def render(self) -> str:
        rows = [("#", "STEP", "TOOL", "DECISION", "OUTCOME", "AUDIT SEQ", "")]
        for s in self.steps:
            rows.append((str(s.step), s.title, s.tool, s.decision, s.outcome,
                         "-" if s.audit_seq is None else str(s.audit_seq),
                         "ok" if s.as_expected else "UNEXPECTED"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                 for r in rows]
        v = self.verification
        lines.append("")
        lines.append(f"audit log: {v.get('path')}")
        lines.append(f"  {v.get('valid_entries')}/{v.get('entries')} entries valid, "
                     f"{v.get('checkpoints_verified')} checkpoints verified: "
                     f"RESULT: {v.get('result')}")
        cfg = self.workdir / "vak.toml"
        lines += [
            "",
            f"demo state left in {self.workdir}",
            "try next:",
            f"  vak run --config {cfg} calculator__execute "
            "--input '{\"operation\":\"add\",\"a\":1,\"b\":2}'",
            f"  vak run --config {cfg} pynotes__read_note "
            "--input '{\"path\":\"/data/note.txt\"}'",
            f"  vak-audit verify --config {cfg}",
            f"  vak skills list --config {cfg}",
            "",
            "DEMO: " + ("OK" if self.ok else "FAILED"),
        ]
        return "\n".join(lines)


# ---------------------------------------------------------------------- setup
def _copy_examples(skills: Path, names_wanted: tuple[str, ...]) -> list[str]:
    """Copy the packaged example sources (and any up-to-date build) into ``skills``."""
    from vak._resources import example_dir

    names = []
    for name in names_wanted:
        try:
            source = example_dir(name)
        except KeyError:
            raise ConfigError(f"example skill {name!r} is missing from the installed package",
                              skill=name, fix="reinstall vak: pip install --force-reinstall vak",
                              ) from None
        dest = skills / name
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(source, dest, ignore=shutil.ignore_patterns("*.tmp", "__pycache__"))
        names.append(f"skills/{name}")
    return names


def _write_policy(path: Path, port: int) -> None:
    path.write_text(
        "// Demo operator policy: the fetch skill may reach the demo's own HTTP\n"
        "// server on 127.0.0.1 (loopback is denied by the shipped policies).\n"
        '@id("demo.fetch-local-server")\n'
        'permit (principal == Vak::Skill::"fetch", '
        'action == Vak::Action::"http_request", resource)\n'
        f'when {{ resource.ip == "127.0.0.1" && resource.port == {port} }};\n',
        encoding="utf-8",
    )


def prepare_workdir(workdir: Path, port: int, *, components: bool = False,
                    cache_dir: Path | None = None,
                    progress: Callable[[str], None] | None = None) -> Path:
    """Build, copy, sign and trust the demo skills; write vak.toml. Returns its path.

    ``components`` adds the Python skill (``DEMO_COMPONENTS``, mounted
    ``/data``); ``cache_dir`` keeps its build and compiled form for later runs
    (module docstring); ``progress`` hears about the slow steps.

    Raises:
        ConfigError: an example is missing from the package, or Zig (or, with
            ``components``, componentize-py) is not installed: named, with the
            install command.
        SkillLoadError: an example does not compile.
        KeyFileError: the demo key cannot be written.
    """
    from vak.identity.keys import generate_key_file, load_signing_key
    from vak.identity.signing import sign_skill
    from vak.skillbuild import build_all

    workdir.mkdir(parents=True, exist_ok=True)
    wanted = DEMO_SKILLS + (DEMO_COMPONENTS if components else ())
    skill_dirs = _copy_examples(workdir / "skills", wanted)
    builds = None if cache_dir is None else Path(cache_dir) / "builds"
    build_all(workdir / "skills", reuse=builds, progress=progress)
    keys = workdir / "keys"
    keys.mkdir(exist_ok=True)
    key_path = keys / "demo-signer.key"
    generate_key_file(key_path, force=True, comment="vak-demo-signer")
    signing_key = load_signing_key(key_path)
    for rel in skill_dirs:
        sign_skill(workdir / rel, signing_key)
    pub = (keys / "demo-signer.key.pub").read_text(encoding="utf-8").strip()
    (workdir / "trust.yaml").write_text(
        "# Trust store written by `vak demo`: only the demo key, trusted tier.\n"
        f"keys:\n  - key: {json.dumps(pub)}\n    tier: trusted\n"
        "    comment: vak demo signer\n",
        encoding="utf-8",
    )
    (workdir / "workspace").mkdir(exist_ok=True)
    (workdir / "workspace" / "hello.txt").write_text(SAMPLE_TEXT, encoding="utf-8")
    (workdir / "policies").mkdir(exist_ok=True)
    _write_policy(workdir / "policies" / "demo.cedar", port)
    extra = ""
    if components:
        (workdir / "data").mkdir(exist_ok=True)
        (workdir / "data" / "note.txt").write_text(NOTE_TEXT, encoding="utf-8")
        extra = '"/data" = "data"\n'
    if cache_dir is not None:
        # the compiled components, shared by every demo run (keyed, HMAC-checked)
        modules = (Path(cache_dir) / "modules").resolve()
        extra += f"\n[engine]\nmodule_cache_dir = {json.dumps(str(modules))}\n"
    config = workdir / "vak.toml"
    config.write_text(
        "# Written by `vak demo`. Relative paths resolve against this file.\n"
        'state_dir = ".vak"\n'
        'trust_store = "trust.yaml"\n'
        'policy_dirs = ["policies"]\n'
        f"skill_dirs = {json.dumps(skill_dirs)}\n"
        "\n[audit]\n"
        'log = "audit/vak.log"\n'
        'key = "audit/log.key"\n'
        'origin = "vak.demo/kernel"\n'
        'fsync = "batched:5"\n'
        "# the log's key, pinned outside the audit directory (vak-audit verify --config)\n"
        'trust = "audit-pin.pub"\n'
        "\n[host.fs_mounts]\n"
        '"/workspace" = "workspace"\n' + extra,
        encoding="utf-8",
    )
    return config


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"message": "hello from the local demo server",
                           "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def _local_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, name="vak-demo-http", daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------- session
def _script(port: int) -> list[tuple[str, str, dict[str, Any], str]]:
    return [
        ("add two numbers", "calculator__execute",
         {"operation": "multiply", "a": 6, "b": 7}, "ok"),
        ("read a file inside the grant", "notes__read", {"path": "/workspace/hello.txt"}, "ok"),
        ("read a file outside the grant", "notes__read", {"path": "/etc/passwd"}, "denied"),
        ("HTTP to the local server (granted)", "fetch__fetch",
         {"url": f"http://127.0.0.1:{port}/status", "method": "GET"}, "ok"),
        ("HTTP to the cloud metadata address", "fetch__fetch",
         {"url": METADATA_URL, "method": "GET"}, "denied"),
        ("runaway skill", "loop__execute", {}, "timeout"),
        ("Python skill: a file inside its grant", "pynotes__read_note",
         {"path": "/data/note.txt"}, "ok"),
        ("Python skill: a file outside its grant", "pynotes__read_note",
         {"path": "/etc/passwd"}, "denied"),
    ]


def _model_calls(script: list[tuple[str, str, dict[str, Any], str]]) -> list[dict[str, Any]]:
    """The scripted 'model': OpenAI chat tool calls, as a real model would emit them."""
    return [
        {"id": f"call_{i}", "type": "function",
         "function": {"name": tool, "arguments": json.dumps(args)}}
        for i, (_, tool, args, _) in enumerate(script, 1)
    ]


def _play(kernel: Any, port: int, emit: Callable[[DemoStep], None] | None) -> list[DemoStep]:
    offered = {t["function"]["name"] for t in kernel.tool_specs("openai")}
    script = _script(port)
    steps: list[DemoStep] = []
    for (title, _, _, expected), call in zip(script, _model_calls(script), strict=True):
        name = call["function"]["name"]
        args = json.loads(call["function"]["arguments"])
        step_no = len(steps) + 1
        if name not in offered:
            step = DemoStep(step_no, title, name, args, expected, "n/a", "unknown_tool", None,
                            message="the kernel does not offer this tool")
        else:
            step = _call(kernel, step_no, title, name, args, expected, call["id"])
        steps.append(step)
        if emit is not None:
            emit(step)
    return steps


def _call(kernel: Any, n: int, title: str, name: str, args: dict[str, Any],
          expected: str, call_id: str) -> DemoStep:
    try:
        inv = kernel.invoke(name, args, session="demo", call_id=call_id)
    except PolicyDeniedError as exc:
        return DemoStep(n, title, name, args, expected, "deny", exc.code, exc.audit_seq,
                        message=exc.message)
    except ToolCallError as exc:
        return DemoStep(n, title, name, args, expected, "n/a", exc.code,
                        exc.details.get("finished_seq"), message=exc.message)
    decision = "allow" if inv.host_calls else "n/a"
    return DemoStep(n, title, name, args, expected, decision, "ok", inv.audit_seq_finished,
                    output=inv.output)


def _verify(log_path: Path, pub_path: Path) -> dict[str, Any]:
    from vak.audit.keys import load_trusted_keys
    from vak.audit.verify import verify_log

    report = verify_log(log_path, load_trusted_keys(pub_path))
    return report.to_json()


def run_demo(workdir: str | Path | None = None,
             emit: Callable[[DemoStep], None] | None = None, *,
             cache_dir: str | Path | None = None,
             progress: Callable[[str], None] | None = None) -> DemoReport:
    """Run the whole demo (see the module docstring) and return its report.

    ``cache_dir`` keeps the Python skill's build and compiled form for later
    runs (None: only in the work directory's state); ``progress`` is told
    about the slow steps (the CLI prints it on stderr).

    Raises:
        ConfigError, SigningError, PolicyError, AuditError: the demo could not
            be set up (a step that misbehaves is reported, not raised).
    """
    from vak.kernel import Kernel

    wd = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="vak-demo-"))
    wd = wd.resolve()
    report = DemoReport(wd)
    say = progress or (lambda _message: None)
    with _local_server() as port:
        config = prepare_workdir(wd, port, components=True,
                                 cache_dir=None if cache_dir is None else Path(cache_dir),
                                 progress=progress)
        say("starting the kernel: verifying and loading the skills (compiling the Python "
            "skill takes about 10 s unless it is in the cache)")
        started = time.monotonic()
        with Kernel.from_config(config) as kernel:
            say(f"kernel ready in {time.monotonic() - started:.1f} s")
            log_path = Path(kernel.audit.path)
            pub_path = Path(kernel.audit.public_key_path)
            pin = wd / "audit-pin.pub"
            if not pin.exists():  # trust on first use: later runs verify against this copy
                shutil.copyfile(pub_path, pin)
            report.steps = _play(kernel, port, emit)
    report.verification = _verify(log_path, pub_path)
    return report
