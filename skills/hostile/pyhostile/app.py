"""pyhostile: a Python component that misbehaves on request (tests/security only).

Each tool is one attack on the kernel; every one must end in a typed error
(or a refused effect) with the kernel still serving.
"""

import json
import os
import socket
import sys

from wit_world import exports
from wit_world.imports import clock, http, random

#: calls this instance served (session reuse keeps it between calls)
_served = 0


def _recurse(n: int) -> int:
    return _recurse(n + 1) + 1


class Tool(exports.Tool):
    def call(self, name: str, input: str) -> str:
        args = json.loads(input)
        if name == "count":
            global _served
            _served += 1
            return json.dumps({"count": _served})
        if name == "spin":
            while True:
                pass
        if name == "bomb":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        if name == "recurse":
            sys.setrecursionlimit(1_000_000)
            return json.dumps({"n": _recurse(0)})
        if name == "big":
            return json.dumps({"blob": "x" * int(args.get("n", 1 << 20))})
        if name == "garbage":
            return "\xff not json {"
        if name == "connect":
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.connect(("127.0.0.1", int(args["port"])))
                s.sendall(b"LEAK")
                return json.dumps({"connected": True})
            except Exception as exc:  # the refusal is what the test expects
                return json.dumps({"connected": False, "error": type(exc).__name__})
        if name == "lookup":
            try:
                got = socket.getaddrinfo(args.get("host", "localhost"), int(args["port"]))
                return json.dumps({"resolved": True, "n": len(got)})
            except Exception as exc:
                return json.dumps({"resolved": False, "error": type(exc).__name__})
        if name == "passwd":
            try:
                with open(args.get("path", "/etc/passwd")) as fh:
                    return json.dumps({"read": True, "content": fh.read()[:100]})
            except Exception as exc:
                return json.dumps({"read": False, "error": type(exc).__name__})
        if name == "environ":
            stdin = ""
            try:
                stdin = sys.stdin.read()
            except Exception as exc:
                stdin = "<" + type(exc).__name__ + ">"
            return json.dumps({"env": dict(os.environ), "argv": sys.argv, "stdin": stdin,
                               "cwd_list": _listdir()})
        if name == "shout":
            for _ in range(int(args.get("n", 1000))):
                print("x" * 1000)
                print("y" * 1000, file=sys.stderr)
            return json.dumps({"ok": True})
        if name == "dupheaders":
            req = http.Request(method="GET", url="http://127.0.0.1:1/", body="", max_bytes=None,
                               headers=[http.Header(name="X-A", value="1"),
                                        http.Header(name="x-a", value="2")])
            http.send(req)
            return json.dumps({"sent": True})
        if name == "clock":
            now = clock.now()
            return json.dumps({"unix_ns": now.unix_ns, "monotonic_ns": now.monotonic_ns,
                               "random": len(random.bytes(16))})
        return json.dumps({"error": "unknown"})


def _listdir() -> object:
    try:
        return os.listdir("/")
    except Exception as exc:
        return "<" + type(exc).__name__ + ">"
