"""Normalisation of the targets a guest names: paths, URLs, hosts and IPs.

Pure functions (no I/O, no DNS): the host-function normalisers
(:mod:`vak.host.calls`) build every Cedar resource from their results.

Policy decisions are only as good as the names they are made on. Every target
is reduced to one canonical form *before* Cedar sees it, and the effect is then
performed on exactly that form:

* a guest path is absolute, NUL-free, at most ``MAX_PATH`` bytes, with ``.``,
  ``..`` and repeated slashes resolved lexically (``..`` never climbs above
  ``/``); case is preserved (``/Workspace`` is not ``/workspace``);
* a URL is ``http``/``https`` only, with no userinfo, a lower-cased IDNA host
  without trailing dot, an explicit port and a path without control bytes;
* an IPv4 literal in any ``inet_aton`` spelling (decimal ``2130706433``, octal
  ``0177.0.0.1``, hex ``0x7f.1``) is rewritten to dotted-quad, because that is
  what a resolver would connect to; IPv6 literals are compressed, and
  IPv4-mapped addresses are classified by the IPv4 address inside them.

Example::

    >>> normalize_path("/workspace//a/../b")
    '/workspace/b'
    >>> classify_ip("::ffff:127.0.0.1")
    'loopback'

Every function raises :class:`NormalizeError` on input it refuses; its message
says what is wrong and never quotes the input (which may hold a secret, in a
form -- lower-cased, IDNA-encoded -- that no scrubber would recognise).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "MAX_PATH",
    "MAX_URL",
    "METADATA_ADDRESSES",
    "NormalizeError",
    "NormalizedUrl",
    "classify_ip",
    "normalize_grants",
    "normalize_host",
    "normalize_path",
    "normalize_url",
    "path_within",
]

MAX_PATH = 4096
MAX_URL = 8192
_DEFAULT_PORTS = {"http": 80, "https": 443}
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_PATH_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HOST_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
_INET_ATON_FORM = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)(\.(0[xX][0-9a-fA-F]*|[0-9]+)){0,3}$")


class NormalizeError(ValueError):
    """A guest-supplied target cannot be normalised and is refused."""


def normalize_path(path: str) -> str:
    """The canonical absolute guest path for ``path``.

    Raises:
        NormalizeError: not a string, relative, empty, contains NUL or control
            bytes, or longer than ``MAX_PATH`` bytes.
    """
    if not isinstance(path, str) or len(path) > MAX_PATH:
        return _normalize_path(path)  # refused below; never cached
    return _normalize_path_cached(path)


def _normalize_path(path: str) -> str:
    if not isinstance(path, str) or not path:
        raise NormalizeError("path must be a non-empty string")
    if "\x00" in path:
        raise NormalizeError("path contains NUL")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH:
        raise NormalizeError(f"path longer than {MAX_PATH} bytes")
    if _PATH_CONTROL.search(path):
        raise NormalizeError("path contains control characters")
    if not path.startswith("/"):
        raise NormalizeError("path must be absolute (start with '/')")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


_normalize_path_cached = functools.lru_cache(maxsize=4096)(_normalize_path)


@functools.lru_cache(maxsize=1024)
def normalize_grants(paths: tuple[str, ...]) -> tuple[str, ...]:
    """Normalised grant paths; a grant that does not normalise grants nothing."""
    out = []
    for p in paths:
        try:
            out.append(normalize_path(p))
        except NormalizeError:
            continue
    return tuple(out)


def path_within(path: str, root: str) -> bool:
    """True if normalised ``path`` equals ``root`` or lies beneath it (by component)."""
    if root == "/":
        return True
    return path == root or path.startswith(root + "/")


def _ipv4_from_aton(text: str) -> str | None:
    if not _INET_ATON_FORM.match(text):
        return None
    try:
        return socket.inet_ntoa(socket.inet_aton(text))
    except OSError:
        raise NormalizeError("invalid IPv4 literal (an inet_aton part out of range)") from None


def normalize_host(host: str) -> str:
    """Canonical host: a dotted-quad, a compressed IPv6 literal, or a lower-case IDNA name.

    Raises:
        NormalizeError: empty, malformed, or not encodable as IDNA.
    """
    if not host or _CONTROL.search(host):
        raise NormalizeError("host is empty or contains control characters")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        if "%" in host:
            raise NormalizeError("IPv6 zone ids are not allowed")
        try:
            addr = ipaddress.IPv6Address(host)  # zone ids ('%eth0') are refused here
        except ValueError:
            raise NormalizeError("invalid IPv6 literal") from None
        return addr.compressed
    host = host.rstrip(".").lower()
    v4 = _ipv4_from_aton(host)
    if v4 is not None:
        return v4
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise NormalizeError("host is not a valid IDNA name") from None
    labels = ascii_host.split(".")
    if len(ascii_host) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise NormalizeError(
            "host is not a valid DNS name (labels of a-z, 0-9, _ and -; at most 253 characters)")
    if labels[-1].isdigit():
        raise NormalizeError("host looks numeric but is not an IPv4 address")
    return ascii_host


@dataclass(frozen=True, slots=True)
class NormalizedUrl:
    """A URL reduced to the parts the kernel authorizes and connects with."""

    scheme: str
    host: str  # canonical (see normalize_host); IPv6 without brackets
    port: int
    target: str  # path plus '?query', never empty (at least '/')

    @property
    def authority(self) -> str:
        """``host:port`` with IPv6 in brackets, as in the manifest's http grants."""
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"{h}:{self.port}"

    @property
    def url(self) -> str:
        """The canonical URL string (always with an explicit port)."""
        return f"{self.scheme}://{self.authority}{self.target}"


def normalize_url(url: str) -> NormalizedUrl:
    """Parse and canonicalise an http(s) URL.

    Raises:
        NormalizeError: not http/https, has userinfo or a fragment-only quirk,
            control bytes, a bad port, or a bad host.
    """
    if not isinstance(url, str) or not url:
        raise NormalizeError("url must be a non-empty string")
    if len(url) > MAX_URL:
        raise NormalizeError(f"url longer than {MAX_URL} characters")
    if _CONTROL.search(url) or "\\" in url:
        raise NormalizeError("url contains control characters, spaces or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # its message quotes the url: never echoed
        raise NormalizeError("malformed url (a bad port or unbalanced brackets)") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise NormalizeError("scheme not allowed (http and https only)")
    if "@" in parts.netloc:
        raise NormalizeError("userinfo in url is not allowed")
    if parts.hostname is None:
        raise NormalizeError("url has no host")
    raw_host = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    if raw_host.startswith("["):
        raw_host = raw_host[: raw_host.index("]") + 1]
    host = normalize_host(raw_host)
    if port is None:
        port = _DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        raise NormalizeError("port out of range (1-65535)")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return NormalizedUrl(scheme, host, port, target)


#: cloud metadata, credential and platform ("wire server") endpoints, by provider.
#: Each is forbidden outright (``vak.net.forbid-metadata``), whatever class its
#: range has otherwise (several are link-local, private or CGNAT addresses).
METADATA_ADDRESSES: dict[str, str] = {
    "169.254.169.254": "instance metadata (AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle, ...)",
    "fd00:ec2::254": "AWS instance metadata (IPv6)",
    "169.254.170.2": "AWS ECS task metadata and credentials",
    "169.254.170.23": "AWS EKS Pod Identity agent",
    "fd00:ec2::23": "AWS EKS Pod Identity agent (IPv6)",
    "169.254.169.253": "AWS VPC DNS resolver",
    "fd00:ec2::253": "AWS VPC DNS resolver (IPv6)",
    "169.254.169.123": "AWS Time Sync",
    "fd00:ec2::123": "AWS Time Sync (IPv6)",
    "168.63.129.16": "Azure wire server (platform endpoint)",
    "100.100.100.200": "Alibaba Cloud instance metadata",
    "192.0.0.192": "Oracle Cloud legacy instance metadata",
    "169.254.0.23": "Tencent Cloud instance metadata",
    "fd20:ce::254": "GCP instance metadata (IPv6)",
    "169.254.42.42": "Scaleway instance metadata",
    "fe80::a9fe:a9fe": "OpenStack instance metadata (IPv6)",
}
_METADATA = frozenset(ipaddress.ip_address(a) for a in METADATA_ADDRESSES)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_ULA = ipaddress.ip_network("fc00::/7")
_TRANSLATED = (
    ipaddress.ip_network("64:ff9b::/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
    ipaddress.ip_network("2002::/16"),
    ipaddress.ip_network("2001::/32"),
)


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.ip_network("::/96")


def _embeds_metadata(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A NAT64, IPv4-compatible, 6to4 or Teredo address carrying a metadata IPv4."""
    if not isinstance(addr, ipaddress.IPv6Address):
        return False
    inner: list[ipaddress.IPv4Address] = []
    if addr in _NAT64 or addr in _V4_COMPATIBLE:
        inner.append(ipaddress.IPv4Address(int(addr) & 0xFFFF_FFFF))
    if addr.sixtofour is not None:
        inner.append(addr.sixtofour)
    if addr.teredo is not None:
        inner.append(addr.teredo[1])
    return any(a in _METADATA for a in inner)


def classify_ip(ip: str) -> str:
    """The class of an IP address, the ``ip_class`` attribute policies test.

    One of ``metadata``, ``loopback``, ``unspecified``, ``link_local``,
    ``private``, ``cgnat``, ``ula``, ``multicast``, ``broadcast``,
    ``ipv4_mapped`` (a mapped public address), ``translated`` (NAT64, 6to4,
    Teredo), ``reserved``, or ``public``. IPv4-mapped IPv6 addresses take the
    class of the mapped address when that is not public; an address embedding a
    metadata IPv4 (NAT64, IPv4-compatible, 6to4, Teredo) is ``metadata``.

    Raises:
        NormalizeError: ``ip`` is not an IP address literal.
    """
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        raise NormalizeError("not an IP address literal") from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        inner = classify_ip(str(addr.ipv4_mapped))
        return inner if inner != "public" else "ipv4_mapped"
    if addr in _METADATA or _embeds_metadata(addr):
        return "metadata"
    if addr.is_loopback:
        return "loopback"
    if addr.is_unspecified:
        return "unspecified"
    if addr.is_link_local:
        return "link_local"
    if addr.is_multicast:
        return "multicast"
    if isinstance(addr, ipaddress.IPv4Address):
        if addr == ipaddress.IPv4Address("255.255.255.255"):
            return "broadcast"
        if addr in _CGNAT:
            return "cgnat"
    else:
        if addr in _ULA:
            return "ula"
        if any(addr in net for net in _TRANSLATED):
            return "translated"
        if addr.sixtofour is not None or addr.teredo is not None:
            return "translated"
    if addr.is_private:
        return "private"
    if addr.is_reserved or not addr.is_global:
        return "reserved"
    return "public"
