"""vak.host.normalize: paths, URLs, hosts, IP classes (tables + properties)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vak.host.normalize import (
    NormalizeError,
    classify_ip,
    normalize_host,
    normalize_path,
    normalize_url,
    path_within,
)
from vak.policy.entities import ancestors

PATHS = [
    ("/workspace//a/./b", "/workspace/a/b"),
    ("/workspace/../etc/passwd", "/etc/passwd"),
    ("/../../..", "/"),
    ("/Workspace/A", "/Workspace/A"),
    ("/a/b/", "/a/b"),
]


@pytest.mark.parametrize(("raw", "want"), PATHS, ids=[p[0] for p in PATHS])
def test_normalize_path(raw: str, want: str) -> None:
    assert normalize_path(raw) == want


BAD_PATHS = ["", "relative/x", "/a\x00b", "/a\nb", "/" + "a" * 5000, "\x00"]


@pytest.mark.parametrize(
    "raw", BAD_PATHS, ids=["empty", "relative", "nul", "newline", "long", "nul-only"]
)
def test_normalize_path_refuses(raw: str) -> None:
    with pytest.raises(NormalizeError):
        normalize_path(raw)


def test_path_within_is_by_component() -> None:
    assert path_within("/workspace/a", "/workspace")
    assert path_within("/workspace", "/workspace")
    assert not path_within("/workspace-evil/a", "/workspace")
    assert path_within("/anything", "/")


def test_ancestors() -> None:
    assert ancestors("/a/b/c") == ("/", "/a", "/a/b")
    assert ancestors("/") == ()


URLS = [
    ("http://2130706433/", "http://127.0.0.1:80/"),
    ("http://0177.0.0.1:8080/x", "http://127.0.0.1:8080/x"),
    ("http://0x7f.1/", "http://127.0.0.1:80/"),
    ("http://127.1/", "http://127.0.0.1:80/"),
    ("HTTPS://ExAmple.COM./p?q=1", "https://example.com:443/p?q=1"),
    ("http://[::ffff:127.0.0.1]:81/", "http://[::ffff:7f00:1]:81/"),
    ("http://[0:0:0:0:0:0:0:1]/", "http://[::1]:80/"),
    ("http://bücher.de/", "http://xn--bcher-kva.de:80/"),
]


@pytest.mark.parametrize(("raw", "want"), URLS, ids=[u[0] for u in URLS])
def test_normalize_url(raw: str, want: str) -> None:
    assert normalize_url(raw).url == want


BAD_URLS = [
    "file:///etc/passwd",
    "gopher://x/",
    "http://user:pw@example.com/",
    "http://a b/",
    "http://example.com:99999/",
    "http:///nohost",
    "http://[::1%eth0]/",
    "http://ex\\ample.com/",
    "http://1.2.3.4.5/",
    "http://256.1.1.1/",
    "http://exa_mple..com/",
    "",
]


@pytest.mark.parametrize("raw", BAD_URLS, ids=lambda u: repr(u))
def test_normalize_url_refuses(raw: str) -> None:
    with pytest.raises(NormalizeError):
        normalize_url(raw)


IPS = [
    ("127.0.0.1", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("192.168.0.1", "private"),
    ("172.16.0.1", "private"),
    ("169.254.169.254", "metadata"),
    ("fd00:ec2::254", "metadata"),
    ("169.254.1.1", "link_local"),
    ("fe80::1", "link_local"),
    ("100.64.0.1", "cgnat"),
    ("fc00::1", "ula"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("255.255.255.255", "broadcast"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "metadata"),
    ("::ffff:8.8.8.8", "ipv4_mapped"),
    ("64:ff9b::7f00:1", "translated"),
    ("2002:7f00:1::", "translated"),
    ("8.8.8.8", "public"),
    ("2606:4700:4700::1111", "public"),
    ("192.0.2.1", "private"),
]


@pytest.mark.parametrize(("ip", "cls"), IPS, ids=[i[0] for i in IPS])
def test_classify_ip(ip: str, cls: str) -> None:
    assert classify_ip(ip) == cls


#: cloud metadata, credential and wire-server endpoints (issue 12), in every spelling
METADATA = [
    ("169.254.169.254", "AWS/GCP/Azure/OpenStack/DO/Oracle IMDS"),
    ("fd00:ec2::254", "AWS IMDS IPv6"),
    ("169.254.170.2", "AWS ECS task credentials"),
    ("169.254.170.23", "AWS EKS Pod Identity"),
    ("fd00:ec2::23", "AWS EKS Pod Identity IPv6"),
    ("169.254.169.253", "AWS VPC DNS"),
    ("fd00:ec2::253", "AWS VPC DNS IPv6"),
    ("169.254.169.123", "AWS Time Sync"),
    ("fd00:ec2::123", "AWS Time Sync IPv6"),
    ("168.63.129.16", "Azure wire server"),
    ("100.100.100.200", "Alibaba IMDS"),
    ("192.0.0.192", "Oracle legacy IMDS"),
    ("169.254.0.23", "Tencent IMDS"),
    ("fd20:ce::254", "GCP IMDS IPv6"),
    ("169.254.42.42", "Scaleway IMDS"),
    ("fe80::a9fe:a9fe", "OpenStack IMDS IPv6"),
    ("::ffff:168.63.129.16", "mapped wire server"),
    ("::ffff:6464:64c8", "mapped Alibaba (hex)"),
    ("64:ff9b::a9fe:a9fe", "NAT64 of IMDS"),
    ("::a9fe:a9fe", "IPv4-compatible IMDS"),
    ("2002:a9fe:a9fe::1", "6to4 of IMDS"),
    ("FD00:EC2:0:0:0:0:0:254", "AWS IPv6 uncompressed"),
]


@pytest.mark.parametrize("ip", [m[0] for m in METADATA], ids=[m[1] for m in METADATA])
def test_metadata_endpoints(ip: str) -> None:
    assert classify_ip(ip) == "metadata"


@pytest.mark.parametrize("url", ["http://2852039166/", "http://0xa9.0xfe.0xa9.0xfe/",
                                 "http://0251.0376.0251.0376/", "http://168.63.129.16./",
                                 "http://[::ffff:169.254.169.254]/", "http://2822734096/"],
                         ids=["decimal", "hex", "octal", "trailing-dot", "mapped", "wire-decimal"])
def test_metadata_in_any_spelling(url: str) -> None:
    assert classify_ip(normalize_url(url).host) == "metadata"


def test_every_metadata_address_is_documented() -> None:
    from pathlib import Path

    from vak.host.normalize import METADATA_ADDRESSES

    doc = (Path(__file__).resolve().parent.parent / "docs" / "POLICY.md").read_text()
    missing = [a for a in METADATA_ADDRESSES if f"`{a}`" not in doc]
    assert missing == []
    assert {classify_ip(a) for a in METADATA_ADDRESSES} == {"metadata"}


def test_host_idempotent_examples() -> None:
    for h in ["Example.COM", "0177.0.0.01", "[::1]", "xn--bcher-kva.de"]:
        once = normalize_host(h)
        assert normalize_host(once) == once


@settings(max_examples=200)
@given(st.lists(st.sampled_from(["a", "b", "..", ".", "", "A", "x y", "é"]), max_size=12))
def test_path_normalisation_properties(parts: list[str]) -> None:
    raw = "/" + "/".join(parts)
    norm = normalize_path(raw)
    assert normalize_path(norm) == norm  # idempotent
    assert ".." not in norm.split("/") and "//" not in norm and norm.startswith("/")


@settings(max_examples=200)
@given(
    st.integers(min_value=0, max_value=2**32 - 1), st.sampled_from(["dec", "hex", "octal-dotted"])
)
def test_ipv4_spellings_canonicalise(value: int, form: str) -> None:
    octets = [(value >> s) & 255 for s in (24, 16, 8, 0)]
    host = {
        "dec": str(value),
        "hex": hex(value),
        "octal-dotted": ".".join("0" + oct(o)[2:] for o in octets),
    }[form]
    assert normalize_host(host) == ".".join(map(str, octets))
