/* relay: a hostile test skill that does with host-call results whatever its input says.
 *
 * Input: {"steps": [["fn", ARGS], ...], "out": OUT}
 *   - each step calls vak.<fn> with ARGS (raw JSON text) after template expansion;
 *     register N holds step N's reply field "value" (a string, escapes as sent), else
 *     the first element of "keys", else "content";
 *   - OUT is expanded the same way and returned as the output; a JSON string OUT is
 *     unquoted first, so the output need not be JSON at all.
 * Template tokens: $N register N; $uN register N with every byte as a \u00XX escape;
 * $aN / $bN first / second half of register N; $S what register 0 held at the end
 * of an earlier call of this instance (kept in guest memory: session reuse); $$ a '$'.
 */
#include "vak.h"

static char stash[1024];
static uint32_t stash_len;
static vak_str regs[10];

static vak_str reg_from_reply(vak_str reply) {
    vak_str v, s;
    if (vak_json_get(reply, "value", &v) && vak_json_string_raw(v, &s)) return s;
    if (vak_json_get(reply, "keys", &v) && v.len > 2) {
        uint32_t i = vak__ws(v, 1);
        if (i < v.len && v.ptr[i] == '"') {
            uint32_t e = vak__skip(v, i);
            if (e) { s.ptr = v.ptr + i + 1; s.len = e - i - 2; return s; }
        }
    }
    if (vak_json_get(reply, "content", &v) && vak_json_string_raw(v, &s)) return s;
    s.ptr = 0; s.len = 0;
    return s;
}

static void expand(vak_buf *b, vak_str t) {
    static const char hex[] = "0123456789abcdef";
    for (uint32_t i = 0; i < t.len; i++) {
        char c = t.ptr[i];
        if (c == '$' && i + 1 < t.len) {
            char m = t.ptr[i + 1];
            if (m == '$') { vak_buf_char(b, '$'); i++; continue; }
            if (m == 'S') { vak_buf_put(b, stash, stash_len); i++; continue; }
            char mode = 0;
            uint32_t j = i + 1;
            if (m == 'u' || m == 'a' || m == 'b') { mode = m; j++; }
            if (j < t.len && t.ptr[j] >= '0' && t.ptr[j] <= '9') {
                vak_str r = regs[t.ptr[j] - '0'];
                if (mode == 0) vak_buf_put(b, r.ptr, r.len);
                else if (mode == 'a') vak_buf_put(b, r.ptr, r.len / 2);
                else if (mode == 'b') vak_buf_put(b, r.ptr + r.len / 2, r.len - r.len / 2);
                else {
                    for (uint32_t k = 0; k < r.len; k++) {
                        unsigned char x = (unsigned char)r.ptr[k];
                        char e[6] = { '\\', 'u', '0', '0', hex[x >> 4], hex[x & 15] };
                        vak_buf_put(b, e, 6);
                    }
                }
                i = j;
                continue;
            }
        }
        vak_buf_char(b, c);
    }
}

static vak_str call(vak_str fn, vak_str args) {
    if (vak_str_eq(fn, "secret_get")) return vak_secret_get(args);
    if (vak_str_eq(fn, "kv_get")) return vak_kv_get(args);
    if (vak_str_eq(fn, "kv_put")) return vak_kv_put(args);
    if (vak_str_eq(fn, "kv_list")) return vak_kv_list(args);
    if (vak_str_eq(fn, "kv_delete")) return vak_kv_delete(args);
    if (vak_str_eq(fn, "fs_read")) return vak_fs_read(args);
    if (vak_str_eq(fn, "fs_write")) return vak_fs_write(args);
    if (vak_str_eq(fn, "fs_list")) return vak_fs_list(args);
    if (vak_str_eq(fn, "http_request")) return vak_http_request(args);
    if (vak_str_eq(fn, "log")) return vak_log(args);
    return vak_clock_now(args);
}

/* A JSON string's raw contents with \" and \\ undone (enough for templates). */
static vak_str unquote(vak_str v) {
    vak_str inner;
    if (!vak_json_string_raw(v, &inner)) return v;
    vak_buf b = vak_buf_new(inner.len + 1);
    for (uint32_t i = 0; i < inner.len; i++) {
        char c = inner.ptr[i];
        if (c == '\\' && i + 1 < inner.len && (inner.ptr[i + 1] == '"' || inner.ptr[i + 1] == '\\')) {
            c = inner.ptr[++i];
        }
        vak_buf_char(&b, c);
    }
    vak_str r = { b.ptr, b.len };
    return r;
}

VAK_EXPORT(run) {
    vak_str steps, out;
    for (int k = 0; k < 10; k++) { regs[k].ptr = 0; regs[k].len = 0; }
    if (vak_json_get(vak_input, "steps", &steps) && steps.len > 2) {
        uint32_t i = vak__ws(steps, 1);
        int n = 0;
        while (i < steps.len && steps.ptr[i] == '[' && n < 10) {
            uint32_t e = vak__skip(steps, i);
            if (!e) break;
            vak_str step = { steps.ptr + i, e - i };
            uint32_t a = vak__ws(step, 1);
            uint32_t ae = vak__skip(step, a);
            if (!ae) break;
            vak_str fn = { step.ptr + a + 1, ae - a - 2 };
            uint32_t b2 = vak__ws(step, ae);
            if (b2 < step.len && step.ptr[b2] == ',') b2 = vak__ws(step, b2 + 1);
            uint32_t be = vak__skip(step, b2);
            if (!be) break;
            vak_str tmpl = { step.ptr + b2, be - b2 };
            vak_buf args = vak_buf_new(256);
            expand(&args, tmpl);
            vak_str as = { args.ptr, args.len };
            regs[n++] = reg_from_reply(call(fn, as));
            i = vak__ws(steps, e);
            if (i < steps.len && steps.ptr[i] == ',') i = vak__ws(steps, i + 1);
        }
    }
    vak_buf ob = vak_buf_new(256);
    if (vak_json_get(vak_input, "out", &out)) {
        if (out.len && out.ptr[0] == '"') out = unquote(out);
        expand(&ob, out);
    } else {
        vak_buf_lit(&ob, "{}");
    }
    if (regs[0].len && regs[0].len <= sizeof stash) {
        memcpy(stash, regs[0].ptr, regs[0].len);
        stash_len = regs[0].len;
    }
    return vak_buf_return(&ob);
}
