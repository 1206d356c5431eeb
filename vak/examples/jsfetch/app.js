// jsfetch: fetch a URL through the kernel's mediated http (a JavaScript component).
//
// The kernel decides every request (the manifest's host allowlist, then Cedar),
// records the decision, and only then connects. A denied request traps the
// component; a failed one (refused connection, timeout) is thrown as the
// WIT host-error, which this skill turns into a JSON reply.

import { send } from "vak:skill/http@0.1.0";

export const tool = {
  call(name, input) {
    if (name !== "fetch") return JSON.stringify({ error: "unknown tool" });
    const args = JSON.parse(input);
    try {
      const resp = send({
        method: args.method || "GET",
        url: args.url,
        headers: [],
        body: "",
        maxBytes: 4096,
      });
      const body = new TextDecoder().decode(resp.body);
      return JSON.stringify({ status: resp.status, body: body, truncated: resp.truncated });
    } catch (err) {
      const failure = err && err.payload && err.payload.val;
      return JSON.stringify({ error: failure ? failure.code : "failed" });
    }
  },
};
