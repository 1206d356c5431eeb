"""Loopback HTTP servers, scripted resolvers and case tables for the host tests.

One place for what tests/test_host_http.py, tests/test_host_explain.py and
the host security tests each used to set up by hand:

* :func:`serve_http` runs a ``BaseHTTPRequestHandler`` class on 127.0.0.1 (an
  ephemeral port, optionally behind TLS) for the length of a ``with`` block;
* resolvers the mediation can be given instead of DNS: :class:`CountingResolver`
  records every name that reaches it, :class:`FlipResolver` answers from a
  script (a DNS-rebinding attacker);
* :func:`cases` turns a table of ``(id, *values)`` rows into a ``parametrize``
  mark, so every row is one named test case.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@contextmanager
def serve_http(handler: type[BaseHTTPRequestHandler],
               tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """Serve ``handler`` on 127.0.0.1 (TLS with ``tls``); yields the port."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        srv.socket = tls.wrap_socket(srv.socket, server_side=True)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


class CountingResolver:
    """Records every name that reaches DNS (and answers loopback)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    @property
    def lookups(self) -> int:
        return len(self.names)

    def resolve(self, host: str, port: int) -> tuple[str, ...]:
        self.names.append(host)
        return ("127.0.0.1",)


class FlipResolver:
    """Answers ``answers[i]`` on the i-th lookup (a DNS rebinding attacker)."""

    def __init__(self, *answers: tuple[str, ...]) -> None:
        self.answers = list(answers)
        self.lookups = 0

    def resolve(self, host: str, port: int) -> tuple[str, ...]:
        ans = self.answers[min(self.lookups, len(self.answers) - 1)]
        self.lookups += 1
        return ans


def cases(names: str | Sequence[str], table: Sequence[Sequence[Any]]) -> pytest.MarkDecorator:
    """``parametrize(names, ...)`` over ``table``: each row is ``(id, *values)``."""
    return pytest.mark.parametrize(names, [row[1:] for row in table],
                                   ids=[str(row[0]) for row in table])
