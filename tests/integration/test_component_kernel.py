"""A Python component skill through the whole kernel: signed, loaded, one allowed and
one denied fs read, the decisions in the audit log, and the log verifies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from component_helpers import (
    COMPONENT_DIRS,
    JS_DIR,
    Compiled,
    require_js_component,
)

from vak.audit.keys import load_trusted_keys
from vak.audit.verify import verify_log
from vak.errors import PolicyDeniedError, SkillLoadError, SkillTimeout
from vak.identity.keys import generate_key_file, load_signing_key
from vak.identity.signing import sign_skill
from vak.kernel import Kernel

SECRET_FILE = "root:x:0:0:not-for-skills\n"


def _workdir(tmp: Path, cache: Path, *, kind: str | None = None,
             source: Path = COMPONENT_DIRS["pynotes"], extra: str = "") -> Path:
    """vak.toml, a trust store, /data mounted, and a skill signed (as ``kind`` if given)."""
    skill = tmp / "skills" / source.name
    shutil.copytree(source, skill, ignore=shutil.ignore_patterns("__pycache__", ".*"))
    if kind is not None:
        manifest = skill / "skill.yaml"
        manifest.write_text(manifest.read_text().replace("kind: component", f"kind: {kind}"))
    key = tmp / "author.key"
    generate_key_file(key, comment="component-test")
    sign_skill(skill, load_signing_key(key))
    pub = (tmp / "author.key.pub").read_text().strip()
    (tmp / "trust.yaml").write_text(f"keys:\n  - key: {json.dumps(pub)}\n    tier: trusted\n")
    (tmp / "data").mkdir()
    (tmp / "data" / "hello.txt").write_text("a granted note\n")
    (tmp / "private").mkdir()
    (tmp / "private" / "passwd").write_text(SECRET_FILE)
    config = tmp / "vak.toml"
    config.write_text(
        'state_dir = ".vak"\n'
        'trust_store = "trust.yaml"\n'
        + ('policy_dirs = ["policies"]\n' if (tmp / "policies").is_dir() else "")
        + "\n[engine]\n"
        + f"module_cache_dir = {json.dumps(str(cache))}\n"
        "\n[audit]\n"
        'log = "audit/vak.log"\n'
        'key = "audit/log.key"\n'
        "\n[host.fs_mounts]\n"
        '"/data" = "data"\n'
        '"/private" = "private"\n' + extra)
    return config


def test_python_component_allowed_and_denied_reads_are_recorded_and_verify(
        components: Compiled, tmp_path: Path) -> None:
    config = _workdir(tmp_path, components.cache)
    with Kernel.from_config(config) as kernel:
        specs = kernel.load_skill(tmp_path / "skills" / "pynotes")
        assert {s.name for s in specs} == {"pynotes__read_note", "pynotes__last"}
        ok = kernel.invoke("pynotes__read_note", {"path": "/data/hello.txt"})
        assert ok.output == {"content": "a granted note\n", "truncated": False}
        with pytest.raises(PolicyDeniedError) as denied:
            kernel.invoke("pynotes__read_note", {"path": "/private/passwd"})
        assert SECRET_FILE not in str(denied.value)
        with pytest.raises(PolicyDeniedError):
            kernel.invoke("pynotes__read_note", {"path": "/data/../private/passwd"})
        # the kv write of the allowed call is the component's; the denied ones wrote nothing
        assert kernel.invoke("pynotes__last", {}).output == {"last": "/data/hello.txt"}
    log = tmp_path / "audit" / "vak.log"
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    loaded = [e for e in entries if e.get("kind") == "skill_loaded"]
    assert loaded and loaded[0]["abi"] == "component"
    assert loaded[0]["wit"] == "vak:skill/skill@0.1.0"
    reads = [e for e in entries if e.get("kind") == "host_decision"
             and e.get("host_function") == "fs_read"]
    # one decision per host call, the same records as a core module's
    assert [d["decision"]["effect"] for d in reads] == ["allow", "deny", "deny"]
    assert [d["resource"] for d in reads][1:] == ["/private/passwd", "/private/passwd"]
    report = verify_log(log, load_trusted_keys(log.with_name("log.key.pub")))
    summary = report.to_json()
    assert summary["result"] == "OK", summary
    assert summary["valid_entries"] == summary["entries"] == len(entries)


def test_a_manifest_naming_the_wrong_kind_is_refused(components: Compiled,
                                                     tmp_path: Path) -> None:
    config = _workdir(tmp_path, components.cache, kind="core")
    with Kernel.from_config(config) as kernel, pytest.raises(SkillLoadError) as info:
        kernel.load_skill(tmp_path / "skills" / "pynotes")
    assert "module.kind" in info.value.message


def test_the_os_sandboxed_worker_route_runs_components(components: Compiled,
                                                       tmp_path: Path) -> None:
    config = _workdir(tmp_path, components.cache)
    # a worker is handed the compiled component from the parent's keyed cache, so it
    # starts in under a second; the generous timeout only covers a loaded machine
    config.write_text(config.read_text()
                      + "\n[worker]\nforce = true\npool_size = 1\nstart_timeout_ms = 180000\n")
    with Kernel.from_config(config) as kernel:
        kernel.load_skill(tmp_path / "skills" / "pynotes")
        ok = kernel.invoke("pynotes__read_note", {"path": "/data/hello.txt"})
        assert ok.output["content"] == "a granted note\n"
        with pytest.raises(PolicyDeniedError):
            kernel.invoke("pynotes__read_note", {"path": "/private/passwd"})
    log = tmp_path / "audit" / "vak.log"
    loaded = [json.loads(line) for line in log.read_text().splitlines() if "skill_loaded" in line]
    assert loaded[0]["route"] == "worker" and loaded[0]["abi"] == "component"


def test_javascript_component_allowed_and_denied_http_calls(components: Compiled,
                                                            tmp_path: Path) -> None:
    import http.server
    import threading

    require_js_component()
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            body = b"hello from the local server"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        (tmp_path / "policies").mkdir()
        (tmp_path / "policies" / "local.cedar").write_text(
            '@id("test.jsfetch-local")\n'
            'permit (principal == Vak::Skill::"jsfetch", '
            'action == Vak::Action::"http_request", resource)\n'
            f'when {{ resource.ip == "127.0.0.1" && resource.port == {port} }};\n')
        config = _workdir(tmp_path, components.cache, source=JS_DIR)
        with Kernel.from_config(config) as kernel:
            kernel.load_skill(tmp_path / "skills" / "jsfetch")
            ok = kernel.invoke("jsfetch__fetch", {"url": f"http://127.0.0.1:{port}/status"})
            assert ok.output["status"] == 200
            assert ok.output["body"] == "hello from the local server"
            with pytest.raises(PolicyDeniedError):  # another port on loopback: not permitted
                kernel.invoke("jsfetch__fetch", {"url": f"http://127.0.0.1:{port + 1}/x"})
            with pytest.raises(PolicyDeniedError):  # not in the manifest's host allowlist
                kernel.invoke("jsfetch__fetch", {"url": "http://169.254.169.254/latest"})
    finally:
        server.shutdown()
        server.server_close()
    assert hits == ["/status"]
    log = tmp_path / "audit" / "vak.log"
    report = verify_log(log, load_trusted_keys(log.with_name("log.key.pub")))
    assert report.to_json()["result"] == "OK"


def test_session_reuse_keeps_a_component_instance_per_session(components: Compiled,
                                                             tmp_path: Path) -> None:
    config = _workdir(tmp_path, components.cache, source=COMPONENT_DIRS["pyhostile"])
    config.write_text(config.read_text().replace(
        'state_dir = ".vak"\n', 'state_dir = ".vak"\nsession_reuse = true\n'))

    def count(session: str) -> int:
        return int(kernel.invoke("pyhostile__count", {}, session=session).output["count"])

    with Kernel.from_config(config) as kernel:
        kernel.load_skill(tmp_path / "skills" / "pyhostile")
        assert [count("a"), count("a"), count("b"), count("a")] == [1, 2, 1, 3]
        assert kernel.invoke("pyhostile__count", {}).output == {"count": 1}  # no session
        with pytest.raises(SkillTimeout):  # an error discards the session's instance
            kernel.invoke("pyhostile__spin", {}, session="b")
        assert count("b") == 1
        assert kernel.end_session("a") == 1  # freed: the next call starts afresh
        assert count("a") == 1
    log = tmp_path / "audit" / "vak.log"
    started = [json.loads(line) for line in log.read_text().splitlines()
               if '"invocation_started"' in line]
    assert [e.get("instance") for e in started][:4] == ["session"] * 4
    assert started[4].get("instance") is None
    assert verify_log(log, load_trusted_keys(log.with_name("log.key.pub"))).to_json()[
        "result"] == "OK"
