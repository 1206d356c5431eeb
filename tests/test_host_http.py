"""vak.host.http via the mediation, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from host_helpers import LOOPBACK_POLICY, LogSink, call, context, manifest, mediator
from http_helpers import CountingResolver, FlipResolver, cases, serve_http

from vak.errors import PolicyDeniedError


class _Handler(BaseHTTPRequestHandler):
    hits: dict[str, int] = {}

    def log_message(self, *a: object) -> None:
        pass

    def do_GET(self) -> None:
        self.hits[self.path] = self.hits.get(self.path, 0) + 1
        port = self.server.server_address[1]
        routes = {
            "/ok": (200, {}, b"hello"),
            "/big": (200, {}, b"x" * 5000),
            "/host": (200, {}, self.headers.get("Host", "").encode()),
            "/redirect-meta": (302, {"Location": "http://169.254.169.254/latest/meta-data"}, b""),
            "/redirect-local": (302, {"Location": f"http://127.0.0.1:{port}/ok"}, b""),
        }
        if self.path.startswith("/redirect/"):  # /redirect/<status>/<meta|local>
            _, _, code, target = self.path.split("/", 3)
            to = {"meta": "http://169.254.169.254/latest/meta-data",
                  "local": f"http://127.0.0.1:{port}/ok"}[target]
            routes[self.path] = (int(code), {"Location": to}, b"")
        if self.path == "/slow":
            time.sleep(1.0)
        status, headers, body = routes.get(self.path, (404, {}, b"nope"))
        try:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)

    do_POST = do_GET


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    with serve_http(_Handler) as port:
        yield port


def _h(
    tmp_path: Path,
    hosts: tuple[str, ...],
    extra: str | None = LOOPBACK_POLICY,
    resolver: object = None,
):  # type: ignore[no-untyped-def]
    sink = LogSink(tmp_path)
    m = mediator(tmp_path, sink, extra, resolver=resolver, http_timeout_ms=3000)
    return sink, m.handler(context(manifest(http=hosts)))


def test_default_policies_refuse_loopback(tmp_path: Path, server: int) -> None:
    sink, h = _h(tmp_path, (f"127.0.0.1:{server}",), extra=None)
    with pytest.raises(PolicyDeniedError) as err:
        call(h, "http_request", url=f"http://127.0.0.1:{server}/ok")
    assert err.value.policy_ids == ("vak.default-deny",)
    assert sink.decisions()[0]["summary"]["ip_class"] == "loopback"


def test_loopback_allowed_by_explicit_test_policy(tmp_path: Path, server: int) -> None:
    sink, h = _h(tmp_path, (f"127.0.0.1:{server}",))
    r = call(h, "http_request", url=f"http://127.0.0.1:{server}/ok")
    assert r["status"] == 200 and r["body"] == "hello"
    assert call(h, "http_request", url=f"http://127.0.0.1:{server}/missing")["status"] == 404
    assert sink.decisions()[0]["decision"]["policy_ids"] == ["test.net.allow-loopback"]


def test_dns_resolved_once_and_pinned(tmp_path: Path, server: int) -> None:
    # first answer loopback (allowed by the test policy), then the metadata address
    res = FlipResolver(("127.0.0.1",), ("169.254.169.254",))
    _, h = _h(tmp_path, (f"rebind.test:{server}",), resolver=res)
    r = call(h, "http_request", url=f"http://rebind.test:{server}/host")
    assert r["status"] == 200 and r["body"] == f"rebind.test:{server}"  # original Host header
    assert res.lookups == 1  # the connection used the pinned address, no second lookup


def test_rebinding_to_metadata_refused_on_first_answer(tmp_path: Path, server: int) -> None:
    res = FlipResolver(("169.254.169.254",), ("127.0.0.1",))
    _sink, h = _h(tmp_path, (f"rebind.test:{server}",), resolver=res)
    with pytest.raises(PolicyDeniedError) as err:
        call(h, "http_request", url=f"http://rebind.test:{server}/ok")
    assert err.value.policy_ids == ("vak.net.forbid-metadata",)
    assert res.lookups == 1


def test_mixed_answers_refused(tmp_path: Path, server: int) -> None:
    res = FlipResolver(("127.0.0.1", "10.0.0.1"))
    _, h = _h(tmp_path, (f"mixed.test:{server}",), resolver=res)
    with pytest.raises(PolicyDeniedError) as err:
        call(h, "http_request", url=f"http://mixed.test:{server}/ok")
    assert err.value.policy_ids == ("vak.net.forbid-mixed-answers",)


@pytest.mark.parametrize(
    "path", ["/redirect-meta", "/redirect-local"], ids=["to-metadata", "to-loopback"]
)
def test_redirects_are_not_followed(tmp_path: Path, server: int, path: str) -> None:
    before = _Handler.hits.get("/ok", 0)
    _sink, h = _h(tmp_path, (f"127.0.0.1:{server}", "169.254.169.254"))
    r = call(h, "http_request", url=f"http://127.0.0.1:{server}{path}")
    assert r["status"] == 302 and "location" in r["headers"]
    assert _Handler.hits.get("/ok", 0) == before
    if path == "/redirect-meta":  # the guest following it itself is re-authorized and refused
        with pytest.raises(PolicyDeniedError) as err:
            call(h, "http_request", url=r["headers"]["location"])
        assert err.value.policy_ids == ("vak.net.forbid-metadata",)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("target", ["meta", "local"], ids=["to-169.254.169.254", "to-127.0.0.1"])
def test_no_redirect_status_is_followed(
    tmp_path: Path, server: int, status: int, target: str
) -> None:
    # redirects are off (docs/POLICY.md): the 30x goes back to the guest, no hop is
    # made by the kernel, and the call has exactly one decision and one result entry
    before = _Handler.hits.get("/ok", 0)
    sink, h = _h(tmp_path, (f"127.0.0.1:{server}", "169.254.169.254"))
    r = call(h, "http_request", url=f"http://127.0.0.1:{server}/redirect/{status}/{target}")
    assert r["status"] == status and "location" in r["headers"]
    assert _Handler.hits.get("/ok", 0) == before
    kinds = [k for k, _, _ in sink.entries]
    assert kinds == ["host_decision", "host_result"]
    assert [d["resource"] for d in sink.decisions()] == [
        f"http://127.0.0.1:{server}/redirect/{status}/{target}"
    ]


def test_response_size_cap_and_timeout(tmp_path: Path, server: int) -> None:
    _, h = _h(tmp_path, (f"127.0.0.1:{server}",))
    r = call(h, "http_request", url=f"http://127.0.0.1:{server}/big", max_bytes=100)
    assert r["truncated"] is True and len(r["body"]) == 100
    r = call(h, "http_request", url=f"http://127.0.0.1:{server}/slow", timeout_ms=200)
    assert r["error"] == "timeout"


def test_connection_refused_is_a_json_error(tmp_path: Path) -> None:
    _, h = _h(tmp_path, ("127.0.0.1:9",))
    assert call(h, "http_request", url="http://127.0.0.1:9/")["error"] == "connect_failed"


def test_dns_failure_is_a_recorded_deny(tmp_path: Path) -> None:
    class Fail:
        def resolve(self, host: str, port: int) -> tuple[str, ...]:
            raise OSError("NXDOMAIN")

    sink, h = _h(tmp_path, ("nx.test",), resolver=Fail())
    with pytest.raises(PolicyDeniedError):
        call(h, "http_request", url="http://nx.test/")
    assert sink.decisions()[0]["summary"]["dns_error"] == "NXDOMAIN"


def test_wildcard_and_port_patterns(tmp_path: Path) -> None:
    from vak.host.http import host_allowed
    from vak.host.normalize import normalize_url as n

    pats = ("*.example.org", "api.example.com", "127.0.0.1:8080")
    assert host_allowed(n("https://a.example.org/"), pats)
    assert not host_allowed(n("https://example.org/"), pats)
    assert host_allowed(n("https://a.example.org:8443/"), pats)  # portless: any port
    assert host_allowed(n("http://API.example.com./x"), pats)
    assert host_allowed(n("http://2130706433:8080/"), pats)
    assert not host_allowed(n("http://127.0.0.1:8081/"), pats)
    assert not host_allowed(n("http://evil-api.example.com/"), pats)


def test_public_answer_is_pinned_for_the_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vak.host.http import HttpFamily

    seen: list[tuple[str, str]] = []

    def spy(self: HttpFamily, n, ip, *a):  # type: ignore[no-untyped-def]
        seen.append((n.host, ip))
        return {"status": 200}

    monkeypatch.setattr(HttpFamily, "_fetch", spy)
    res = FlipResolver(("93.184.216.34",), ("127.0.0.1",))
    sink, h = _h(tmp_path, ("api.example.com",), extra=None, resolver=res)
    assert call(h, "http_request", url="http://api.example.com/x") == {"status": 200}
    assert seen == [("api.example.com", "93.184.216.34")] and res.lookups == 1
    d = sink.decisions()[0]
    assert (
        d["decision"]["policy_ids"] == ["vak.net.permit-public"]
        and d["summary"]["ip"] == "93.184.216.34"
    )


def _self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_https_pinned_ip_verifies_original_name(tmp_path: Path) -> None:
    import ssl

    cert, key = _self_signed(tmp_path, "tls.test")
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    with serve_http(_Handler, tls=sctx) as port:
        client = ssl.create_default_context(cafile=str(cert))
        sink = LogSink(tmp_path)
        m = mediator(
            tmp_path,
            sink,
            LOOPBACK_POLICY,
            tls_context=client,
            resolver=FlipResolver(("127.0.0.1",)),
        )
        h = m.handler(context(manifest(http=("tls.test", "other.test"))))
        r = call(h, "http_request", url=f"https://tls.test:{port}/host")
        assert r["status"] == 200 and r["body"] == f"tls.test:{port}"
        # same pinned address, but the certificate does not name other.test
        assert call(h, "http_request", url=f"https://other.test:{port}/ok")["error"] == "tls_error"


FORBID_EVIL = """
@id("ops.net.no-evil")
forbid (principal, action == Vak::Action::"http_request", resource)
when { resource.host == "evil.test" };
"""

DENIED_HOSTS = [
    ("undeclared", "http://evil.test/", "vak.capability-ceiling"),
    ("operator-forbid", "http://evil.test:8080/", "ops.net.no-evil"),
    ("undeclared-port", "http://good.test:81/", "vak.capability-ceiling"),
]


@cases(("url", "policy"), DENIED_HOSTS)
def test_a_denied_host_never_reaches_the_resolver(tmp_path: Path, url: str, policy: str) -> None:
    res = CountingResolver()
    sink, h = _h(tmp_path, ("evil.test:8080", "good.test:80"),
                 extra=LOOPBACK_POLICY + FORBID_EVIL, resolver=res)
    with pytest.raises(PolicyDeniedError) as err:
        call(h, "http_request", url=url)
    assert err.value.policy_ids == (policy,)
    assert res.names == []
    assert [k for k, _, _ in sink.entries] == ["host_decision"]
    assert sink.decisions()[0]["summary"]["ip_class"] == "unresolved"


def test_two_recorded_decisions_before_the_connection(
    tmp_path: Path, server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # URL decision (host_resolve, durable) -> DNS -> address decision (durable) -> connect
    from vak.host.http import HttpFamily

    order: list[str] = []
    res = CountingResolver()
    real_resolve = res.resolve

    def resolve(host: str, port: int) -> tuple[str, ...]:
        order.append(f"dns:{[k for k, _, _ in sink.entries]}")
        return real_resolve(host, port)

    res.resolve = resolve  # type: ignore[method-assign]
    real_fetch = HttpFamily._fetch

    def fetch(self: HttpFamily, *a: object) -> dict[str, object]:
        order.append(f"connect:{[k for k, _, _ in sink.entries]}")
        return real_fetch(self, *a)  # type: ignore[arg-type]

    monkeypatch.setattr(HttpFamily, "_fetch", fetch)
    sink, h = _h(tmp_path, (f"named.test:{server}",), resolver=res)
    assert call(h, "http_request", url=f"http://named.test:{server}/ok")["body"] == "hello"
    assert order == ["dns:['host_resolve']", "connect:['host_resolve', 'host_decision']"]
    kinds = [(k, durable) for k, _, durable in sink.entries]
    assert kinds == [("host_resolve", True), ("host_decision", True), ("host_result", False)]
    url_stage, address_stage = sink.entries[0][1], sink.entries[1][1]
    assert url_stage["decision"]["policy_ids"] == ["vak.net.permit-resolve"]
    assert address_stage["decision"]["policy_ids"] == ["test.net.allow-loopback"]
    assert address_stage["summary"]["ip_class"] == "loopback"
    assert len(sink.decisions()) == 1  # one host_decision per call


class _Trickle(BaseHTTPRequestHandler):
    """Sends its status line, headers or body one byte every 50 ms."""

    def log_message(self, *a: object) -> None:
        pass

    def do_GET(self) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 400\r\nX-Pad: " + b"p" * 200 + b"\r\n\r\n"
        body = b"b" * 400
        try:
            if self.path == "/body":
                self.wfile.write(head)
                self.wfile.flush()
                data = body
            else:
                data = head + body
            for i in range(len(data)):
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass


@pytest.fixture(scope="module")
def trickle() -> Iterator[int]:
    with serve_http(_Trickle) as port:
        yield port


@pytest.mark.parametrize("path", ["/headers", "/body"], ids=["trickled-headers", "trickled-body"])
def test_one_deadline_bounds_a_trickling_exchange(tmp_path: Path, trickle: int, path: str) -> None:
    _, h = _h(tmp_path, (f"127.0.0.1:{trickle}",))
    start = time.monotonic()
    r = call(h, "http_request", url=f"http://127.0.0.1:{trickle}{path}", timeout_ms=1000)
    elapsed = time.monotonic() - start
    assert r["error"] == "timeout"
    assert elapsed < 2.5  # ~1 s; a byte every 50 ms would keep it alive for ~30 s


def test_the_invocation_deadline_bounds_the_exchange(tmp_path: Path, trickle: int) -> None:
    import dataclasses

    sink = LogSink(tmp_path)
    m = mediator(tmp_path, sink, LOOPBACK_POLICY, http_timeout_ms=3000)
    ctx = dataclasses.replace(context(manifest(http=(f"127.0.0.1:{trickle}",))),
                              deadline=time.monotonic() + 0.5)
    start = time.monotonic()
    r = call(m.handler(ctx), "http_request", url=f"http://127.0.0.1:{trickle}/headers",
             timeout_ms=3000)
    assert r["error"] == "timeout" and time.monotonic() - start < 2.0
    past = dataclasses.replace(ctx, deadline=time.monotonic() - 1)
    assert call(m.handler(past), "http_request",
                url=f"http://127.0.0.1:{trickle}/headers")["error"] == "timeout"


def test_a_broken_resolver_still_ends_in_one_recorded_decision(tmp_path: Path) -> None:
    class Broken:
        def resolve(self, host: str, port: int) -> tuple[str, ...]:
            raise RuntimeError("resolver bug")

    sink, h = _h(tmp_path, ("named.test",), resolver=Broken())
    with pytest.raises(PolicyDeniedError):
        call(h, "http_request", url="http://named.test/")
    assert [k for k, _, _ in sink.entries] == ["host_resolve", "host_decision"]
    assert sink.decisions()[0]["summary"]["ip_class"] == "no_address"


def test_a_hanging_resolver_is_abandoned_at_the_deadline(tmp_path: Path) -> None:
    release = threading.Event()

    class Hanging:
        def resolve(self, host: str, port: int) -> tuple[str, ...]:
            release.wait(10)
            return ("127.0.0.1",)

    sink, h = _h(tmp_path, ("slow-dns.test",), resolver=Hanging())
    start = time.monotonic()
    try:
        with pytest.raises(PolicyDeniedError):
            call(h, "http_request", url="http://slow-dns.test/", timeout_ms=300)
        assert time.monotonic() - start < 2.0
    finally:
        release.set()
    d = sink.decisions()[0]
    assert d["summary"]["ip_class"] == "no_address" and "deadline" in d["summary"]["dns_error"]


def test_a_tls_peer_trickling_its_handshake_is_cut_at_the_deadline(tmp_path: Path) -> None:
    import socket as socketlib

    srv = socketlib.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            while not stop.is_set():  # a byte of "ServerHello" now and then
                try:
                    conn.sendall(b"\x16")
                except OSError:
                    return
                time.sleep(0.05)

    threading.Thread(target=serve, daemon=True).start()
    try:
        _, h = _h(tmp_path, (f"127.0.0.1:{port}",))
        start = time.monotonic()
        r = call(h, "http_request", url=f"https://127.0.0.1:{port}/", timeout_ms=600)
        assert time.monotonic() - start < 2.0
        assert r["error"] in ("timeout", "tls_error")
    finally:
        stop.set()
        srv.close()
