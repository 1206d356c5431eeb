"""pynotes: a VAK component skill in Python using the fs and kv host interfaces.

Tools (manifest exports):
* ``read_note {"path"}`` reads a file through the kernel's mediated fs and
  remembers the last path read in kv;
* ``last {}`` returns what kv remembered.

A denied read traps the component (the kernel raises PolicyDeniedError); a
missing file comes back as an ``Err`` the skill turns into a JSON reply.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import fs, kv, log, types


class Tool(exports.Tool):
    def call(self, name: str, input: str) -> str:
        args = json.loads(input)
        if name == "read_note":
            path = args["path"]
            try:
                got = fs.read(path, None)
            except Err as err:
                error = err.value
                kind = "not_found" if isinstance(error, types.HostError_NotFound) else "failed"
                return json.dumps({"error": kind, "code": error.value.code})
            kv.put("last", path)
            log.write(log.Level.INFO, "read a note")
            return json.dumps({"content": got.content.decode("utf-8", "replace"),
                               "truncated": got.truncated})
        if name == "last":
            got = kv.get("last")
            return json.dumps({"last": got.value if got.found else None})
        return json.dumps({"error": "unknown_tool"})
