"""``vak serve``: the kernel as an MCP service on N worker processes (docs/SERVE.md).

One module per part:

* :mod:`vak.serve.front` -- the listening process: peeks at each connection's
  first request, hands the connection to the worker its MCP session id names
  (or the next one), answers ``/healthz`` and ``/readyz``, drains and reloads;
* :mod:`vak.serve.worker` -- one kernel behind the MCP streamable-HTTP app;
* :mod:`vak.serve.auth` -- the bearer-token gate (401 with the MCP
  authorization spec's ``WWW-Authenticate``) and the caller it names;
* :mod:`vak.serve.tokens` -- the token file (hashes only, 0600, atomic);
* :mod:`vak.serve.naming` -- per-worker logs, origins, pins and session ids;
* :mod:`vak.serve.settings`, :mod:`vak.serve.control`, :mod:`vak.serve.logsetup`,
  :mod:`vak.serve.process` -- flags, the state file and ``vak reload``, log
  lines, and running ``vak serve`` from Python.
"""
