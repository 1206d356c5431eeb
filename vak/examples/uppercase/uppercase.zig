//! uppercase (Zig SDK example): {text} -> {text} with ASCII letters upper-cased,
//! and with `log: true` the result is also sent to the `log` host function.
const vak = @import("vak");

export fn execute(ptr: u32, len: u32) u64 {
    const in = vak.input(ptr, len);
    const raw = vak.get(in, "text") orelse return vak.pack("{\"error\":\"text must be a string\"}");
    const text = vak.stringRaw(raw) orelse return vak.pack("{\"error\":\"text must be a string\"}");
    const prefix = "{\"text\":\"";
    const out = vak.alloc(@intCast(prefix.len + text.len + 2));
    @memcpy(out[0..prefix.len], prefix);
    var escaped = false;
    for (text, 0..) |c, i| {
        // the letter after a backslash is an escape (\n, \u...) and must stay as written
        out[prefix.len + i] = if (!escaped and c >= 'a' and c <= 'z') c - 32 else c;
        escaped = !escaped and c == '\\';
    }
    out[out.len - 2] = '"';
    out[out.len - 1] = '}';
    if (vak.get(in, "log")) |flag| {
        if (vak.eql(flag, "true")) {
            // the log host function takes {"message": ...}: the same escaped text
            const head = "{\"message\":\"";
            const body = out[prefix.len .. out.len - 2];
            const msg = vak.alloc(@intCast(head.len + body.len + 2));
            @memcpy(msg[0..head.len], head);
            @memcpy(msg[head.len .. head.len + body.len], body);
            msg[msg.len - 2] = '"';
            msg[msg.len - 1] = '}';
            _ = vak.hostLog(msg);
        }
    }
    return vak.pack(out);
}
