"""`vak-audit report` opened in a real headless Chromium (Debian's package).

The browser is part of the test setup: when it is missing and we are root, the
fixture installs it with apt-get (the README's test command relies on this);
under CI a missing browser fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kernel_helpers import DemoState, Reloaded

from vak.kernel import Kernel

AUDIT = [sys.executable, "-m", "vak.cli.audit"]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
HOSTILE = '</script><img src=x onerror="window.__pwned=1">\u2028\x1b[31m'


def _find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def chromium() -> str:
    path = _find_chromium()
    if path is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, timeout=900,
                       capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, check=False,
                       timeout=1800, capture_output=True)
        path = _find_chromium()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("no chromium could be installed: the report test needs a real browser")
        pytest.skip("chromium not installed (apt-get install chromium)")
    return path


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright  # the dev extra; a browser of its own is
    # never downloaded: it drives Debian's chromium through executable_path

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _open(browser: Any, html: Path, shot: Path) -> tuple[Any, list[str], list[str]]:
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url) if not r.url.startswith("file:") else None)
    page.goto(html.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=20_000)
    page.screenshot(path=str(shot), full_page=True)
    return page, errors, requests


def _counts(log: Path) -> dict[str, int]:
    entries = [orjson.loads(x) for x in log.read_bytes().splitlines() if x]
    decisions = [e for e in entries if e["kind"] == "host_decision"]
    return {
        "entries": len(entries),
        "invocations": sum(1 for e in entries if e["kind"] == "invocation_started"),
        "host_calls": len(decisions),
        "denied": sum(1 for e in decisions if e["decision"]["effect"] == "deny"),
        "allowed": sum(1 for e in decisions if e["decision"]["effect"] == "allow"),
    }


@pytest.fixture(scope="module")
def report(demo_state: DemoState, tmp_path_factory: pytest.TempPathFactory) -> Path:
    with Kernel.from_config(demo_state.config) as k:
        k.invoke("notes__read", {"path": "/workspace/hello.txt"}, session="alice")
        for path in ("/etc/passwd", "/root/.ssh/id_ed25519"):
            with pytest.raises(Exception):  # noqa: B017 -- any denial
                k.invoke("notes__read", {"path": path}, session="bob")
    pin = demo_state.workdir / "audit-pin.pub"
    if not pin.exists():  # the operator pins the log's key, as `vak demo` does on first use
        shutil.copyfile(demo_state.log_pub, pin)
    out = tmp_path_factory.mktemp("report") / "report.html"
    proc = subprocess.run([*AUDIT, "report", "--config", str(demo_state.config), "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verification: OK" in proc.stdout
    return out


def test_report_is_self_contained(report: Path) -> None:
    html = report.read_text()
    assert "http://" not in html.split('<script type="application/json"')[0]
    assert "https://" not in html.split('<script type="application/json"')[0]
    assert "default-src 'none'" in html


def test_report_in_browser_shows_the_log(browser: Any, report: Path, demo_state: DemoState,
                                         tmp_path: Path) -> None:
    page, errors, requests = _open(browser, report, tmp_path / "report.png")
    assert errors == []
    assert requests == []
    expected = _counts(demo_state.log)
    for name in ("invocations", "host_calls", "denied", "allowed"):
        assert int(page.inner_text(f"#count-{name}")) == expected[name], name
    # the report was written before this test's own reads, so entries may only have grown
    assert int(page.inner_text("#count-entries")) <= expected["entries"]
    assert page.get_attribute("#verify", "data-result") == "OK"
    page.select_option("#f-decision", "deny")
    assert int(page.get_attribute("#shown", "data-calls")) == expected["denied"]
    assert page.locator("#calls tbody tr.deny").count() == min(expected["denied"], 200)
    page.select_option("#f-decision", "")
    page.select_option("#f-session", "bob")
    assert int(page.get_attribute("#shown", "data-calls")) >= 2
    assert (tmp_path / "report.png").stat().st_size > 10_000
    page.close()


def test_hostile_log_text_stays_text(browser: Any, demo_state: DemoState, tmp_path: Path) -> None:
    lines = demo_state.log.read_bytes().splitlines()
    for i, raw in enumerate(lines):
        e = orjson.loads(raw)
        if e["kind"] == "host_decision":
            e["resource"] = HOSTILE
            e["session"] = HOSTILE
            lines[i] = orjson.dumps(e, option=orjson.OPT_SORT_KEYS)
            break
    log = tmp_path / "hostile.log"
    log.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "hostile.html"
    proc = subprocess.run([*AUDIT, "report", str(log), "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "</script><img" not in out.read_text()
    page, errors, requests = _open(browser, out, tmp_path / "hostile.png")
    assert errors == [] and requests == []
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img").count() == 0
    assert HOSTILE.split("\u2028")[0] in page.inner_text("#calls")
    page.close()


def test_report_shows_policy_reloads(browser: Any, reloaded: Reloaded, tmp_path: Path) -> None:
    out = tmp_path / "reloads.html"
    proc = subprocess.run([*AUDIT, "report", str(reloaded.log), "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    page, errors, requests = _open(browser, out, tmp_path / "reloads.png")
    assert errors == [] and requests == []
    assert int(page.inner_text("#count-policy_reloads")) == 2
    marks = page.locator("#reloads div")
    assert [marks.nth(i).get_attribute("data-kind") for i in range(marks.count())] == [
        "start", "reload", "reload"]
    assert reloaded.second.digest in page.inner_text("#reloads")
    assert page.locator("#events tbody tr.reload").count() == 3
    assert int(page.inner_text("#count-denied")) == 2
    page.close()
