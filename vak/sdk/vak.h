/*
 * vak.h — the VAK guest SDK for C (header-only, freestanding, no libc).
 *
 * Build: `vak skill build DIR` (vak/skillbuild.py), which runs
 *   python -m ziglang cc --target=wasm32-freestanding -nostdlib -Wl,--no-entry -O2 \
 *       -I <this directory> skill.c -o skill.wasm
 *
 * The ABI (docs/ABI.md):
 *   - the module exports its linear memory as "memory";
 *   - the module exports the allocator `vak_alloc(i32 size) -> i32 ptr` (0 = failure);
 *     the host calls it to place the input JSON and every host-call reply;
 *   - every tool export is `(i32 ptr, i32 len) -> i64` taking UTF-8 JSON input and
 *     returning the output JSON packed as (ptr << 32) | len;
 *   - host functions are imports from module "vak" with the same convention:
 *     `vak.<fn>(i32 ptr, i32 len) -> i64` packed reply, written via vak_alloc.
 *
 * A tool, complete:
 *
 *   #include "vak.h"
 *   VAK_EXPORT(execute) {
 *       vak_buf out = vak_buf_new(64);
 *       vak_buf_lit(&out, "{\"ok\":true}");
 *       return vak_buf_return(&out);
 *   }
 *
 * Memory is a bump allocator that never frees: by default every call runs in
 * a fresh instance, so the whole heap is dropped when the call ends. Under the
 * operator's opt-in session reuse (KernelConfig.session_reuse) calls of one
 * session share an instance; the kernel retires it once its memory passes half
 * of max_memory_pages, so a skill must not rely on state surviving either way.
 */
#ifndef VAK_H
#define VAK_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ */
/* compiler support routines (clang may emit calls to these)          */
/* ------------------------------------------------------------------ */
void *memcpy(void *dst, const void *src, size_t n) {
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    while (n--) *d++ = *s++;
    return dst;
}
void *memmove(void *dst, const void *src, size_t n) {
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    if (d < s) { while (n--) *d++ = *s++; }
    else { d += n; s += n; while (n--) *--d = *--s; }
    return dst;
}
void *memset(void *dst, int c, size_t n) {
    unsigned char *d = (unsigned char *)dst;
    while (n--) *d++ = (unsigned char)c;
    return dst;
}

/* ------------------------------------------------------------------ */
/* allocator                                                          */
/* ------------------------------------------------------------------ */
extern unsigned char __heap_base;
static uintptr_t vak__heap_top;

/* The allocator the host calls; 8-byte aligned; returns 0 when memory cannot grow. */
__attribute__((export_name("vak_alloc"))) uint32_t vak_alloc(uint32_t size) {
    if (vak__heap_top == 0) vak__heap_top = (uintptr_t)&__heap_base;
    uintptr_t start = (vak__heap_top + 7u) & ~(uintptr_t)7u;
    uint64_t end = (uint64_t)start + (uint64_t)size;
    if (end > 0xFFFFFFFFull) return 0;
    uint64_t have = (uint64_t)__builtin_wasm_memory_size(0) * 65536ull;
    if (end > have) {
        uint64_t pages = (end - have + 65535ull) / 65536ull;
        if (__builtin_wasm_memory_grow(0, (size_t)pages) == (size_t)-1) return 0;
    }
    vak__heap_top = (uintptr_t)end;
    return (uint32_t)start;
}

/* Allocate or trap: a guest out of memory has nothing better to do. */
static void *vak_must_alloc(uint32_t size) {
    uint32_t p = vak_alloc(size);
    if (p == 0) __builtin_trap();
    return (void *)(uintptr_t)p;
}

/* ------------------------------------------------------------------ */
/* strings, packing, exports                                          */
/* ------------------------------------------------------------------ */
typedef struct { const char *ptr; uint32_t len; } vak_str;

static inline uint64_t vak_pack(const void *ptr, uint32_t len) {
    return ((uint64_t)(uint32_t)(uintptr_t)ptr << 32) | (uint64_t)len;
}
static inline vak_str vak_unpack(uint64_t packed) {
    vak_str s = { (const char *)(uintptr_t)(uint32_t)(packed >> 32), (uint32_t)packed };
    return s;
}
static inline vak_str vak_cstr(const char *s) {
    uint32_t n = 0; while (s[n]) n++;
    vak_str r = { s, n }; return r;
}

/* Declares a tool export: inside, `vak_input` is the input JSON (vak_str). */
#define VAK_EXPORT(name)                                                           \
    static uint64_t vak__impl_##name(vak_str vak_input);                          \
    __attribute__((export_name(#name))) uint64_t name(uint32_t ptr, uint32_t len) { \
        vak_str in = { (const char *)(uintptr_t)ptr, len };                        \
        return vak__impl_##name(in);                                               \
    }                                                                              \
    static uint64_t vak__impl_##name(vak_str vak_input)

/* ------------------------------------------------------------------ */
/* growable output buffer                                             */
/* ------------------------------------------------------------------ */
typedef struct { char *ptr; uint32_t len; uint32_t cap; } vak_buf;

static vak_buf vak_buf_new(uint32_t cap) {
    vak_buf b; b.ptr = (char *)vak_must_alloc(cap ? cap : 16); b.len = 0; b.cap = cap ? cap : 16;
    return b;
}
static void vak_buf_put(vak_buf *b, const char *s, uint32_t n) {
    if (b->len + n > b->cap) {
        uint32_t cap = b->cap * 2;
        while (cap < b->len + n) cap *= 2;
        char *np = (char *)vak_must_alloc(cap);
        memcpy(np, b->ptr, b->len);
        b->ptr = np; b->cap = cap;
    }
    memcpy(b->ptr + b->len, s, n);
    b->len += n;
}
static void vak_buf_lit(vak_buf *b, const char *s) { vak_str t = vak_cstr(s); vak_buf_put(b, t.ptr, t.len); }
static void vak_buf_str(vak_buf *b, vak_str s) { vak_buf_put(b, s.ptr, s.len); }
static void vak_buf_char(vak_buf *b, char c) { vak_buf_put(b, &c, 1); }

static void vak_buf_u64(vak_buf *b, uint64_t v) {
    char tmp[24]; int i = 24;
    do { tmp[--i] = (char)('0' + v % 10); v /= 10; } while (v);
    vak_buf_put(b, tmp + i, (uint32_t)(24 - i));
}
static void vak_buf_i64(vak_buf *b, int64_t v) {
    if (v < 0) { vak_buf_char(b, '-'); vak_buf_u64(b, (uint64_t)0 - (uint64_t)v); }
    else vak_buf_u64(b, (uint64_t)v);
}

/* Appends a JSON string literal (quotes and escapes included). */
static void vak_buf_json_string(vak_buf *b, vak_str s) {
    static const char hex[] = "0123456789abcdef";
    vak_buf_char(b, '"');
    for (uint32_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '"' || c == '\\') { vak_buf_char(b, '\\'); vak_buf_char(b, (char)c); }
        else if (c == '\n') vak_buf_lit(b, "\\n");
        else if (c == '\t') vak_buf_lit(b, "\\t");
        else if (c == '\r') vak_buf_lit(b, "\\r");
        else if (c < 0x20) {
            char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
            vak_buf_put(b, e, 6);
        } else vak_buf_char(b, (char)c);
    }
    vak_buf_char(b, '"');
}

/* Appends a finite double as a JSON number: integers below 2^53 exactly, else up to 9
 * decimals; beyond 2^53 in scientific notation with 15 significant digits.
 * Returns 0 (and appends nothing) for NaN or infinities, which JSON cannot carry. */
static int vak_buf_number(vak_buf *b, double v) {
    if (v != v || v > 1.7976931348623157e308 || v < -1.7976931348623157e308) return 0;
    if (v < 0) { vak_buf_char(b, '-'); v = -v; }
    if (v >= 9007199254740992.0) {   /* beyond 2^53: scientific, 15 significant digits */
        int exp = 0;
        while (v >= 10.0) { v /= 10.0; exp++; }
        uint64_t mant = (uint64_t)(v * 1e14 + 0.5);
        if (mant >= 1000000000000000ull) { mant /= 10; exp++; }
        char d[16]; int n = 0;
        for (int i = 0; i < 15; i++) { d[14 - i] = (char)('0' + mant % 10); mant /= 10; }
        n = 15; while (n > 1 && d[n - 1] == '0') n--;
        vak_buf_char(b, d[0]);
        if (n > 1) { vak_buf_char(b, '.'); vak_buf_put(b, d + 1, (uint32_t)(n - 1)); }
        vak_buf_char(b, 'e'); vak_buf_i64(b, exp);
        return 1;
    }
    uint64_t ip = (uint64_t)v;
    uint64_t frac = (uint64_t)((v - (double)ip) * 1e9 + 0.5);
    if (frac >= 1000000000ull) { ip += 1; frac -= 1000000000ull; }
    vak_buf_u64(b, ip);
    if (frac) {
        char d[9];
        for (int i = 8; i >= 0; i--) { d[i] = (char)('0' + frac % 10); frac /= 10; }
        int n = 9; while (n > 0 && d[n - 1] == '0') n--;
        vak_buf_char(b, '.'); vak_buf_put(b, d, (uint32_t)n);
    }
    return 1;
}

static uint64_t vak_buf_return(vak_buf *b) { return vak_pack(b->ptr, b->len); }

/* {"error": msg} as the tool result: an ordinary, model-visible failure. */
static uint64_t vak_return_error(const char *msg) {
    vak_buf b = vak_buf_new(64);
    vak_buf_lit(&b, "{\"error\":");
    vak_buf_json_string(&b, vak_cstr(msg));
    vak_buf_char(&b, '}');
    return vak_buf_return(&b);
}

/* ------------------------------------------------------------------ */
/* a tiny JSON reader: find a top-level key, read numbers and strings */
/* ------------------------------------------------------------------ */
static uint32_t vak__ws(vak_str s, uint32_t i) {
    while (i < s.len && (s.ptr[i] == ' ' || s.ptr[i] == '\n' || s.ptr[i] == '\t' || s.ptr[i] == '\r')) i++;
    return i;
}
/* End index (exclusive) of the JSON value starting at i, or 0 if malformed. */
static uint32_t vak__skip(vak_str s, uint32_t i) {
    if (i >= s.len) return 0;
    char c = s.ptr[i];
    if (c == '"') {
        for (i++; i < s.len; i++) {
            if (s.ptr[i] == '\\') i++;
            else if (s.ptr[i] == '"') return i + 1;
        }
        return 0;
    }
    if (c == '{' || c == '[') {
        int depth = 0;
        for (; i < s.len; i++) {
            char d = s.ptr[i];
            if (d == '"') { uint32_t e = vak__skip(s, i); if (!e) return 0; i = e - 1; }
            else if (d == '{' || d == '[') depth++;
            else if (d == '}' || d == ']') { if (--depth == 0) return i + 1; }
        }
        return 0;
    }
    uint32_t start = i;
    while (i < s.len && s.ptr[i] != ',' && s.ptr[i] != '}' && s.ptr[i] != ']' &&
           s.ptr[i] != ' ' && s.ptr[i] != '\n' && s.ptr[i] != '\t' && s.ptr[i] != '\r') i++;
    return i > start ? i : 0;
}

/* The raw JSON value of top-level `key` in object `obj`; 1 if found. */
static int vak_json_get(vak_str obj, const char *key, vak_str *out) {
    vak_str k = vak_cstr(key);
    uint32_t i = vak__ws(obj, 0);
    if (i >= obj.len || obj.ptr[i] != '{') return 0;
    i = vak__ws(obj, i + 1);
    while (i < obj.len && obj.ptr[i] == '"') {
        uint32_t kend = vak__skip(obj, i);
        if (!kend) return 0;
        int match = (kend - i - 2 == k.len);
        for (uint32_t j = 0; match && j < k.len; j++) match = obj.ptr[i + 1 + j] == k.ptr[j];
        i = vak__ws(obj, kend);
        if (i >= obj.len || obj.ptr[i] != ':') return 0;
        i = vak__ws(obj, i + 1);
        uint32_t vend = vak__skip(obj, i);
        if (!vend) return 0;
        if (match) { out->ptr = obj.ptr + i; out->len = vend - i; return 1; }
        i = vak__ws(obj, vend);
        if (i < obj.len && obj.ptr[i] == ',') i = vak__ws(obj, i + 1);
        else break;
    }
    return 0;
}

/* Parses a JSON number (integer, fraction, exponent); 1 on success. */
static int vak_json_number(vak_str v, double *out) {
    uint32_t i = 0; int neg = 0; double r = 0.0; int digits = 0;
    if (i < v.len && v.ptr[i] == '-') { neg = 1; i++; }
    while (i < v.len && v.ptr[i] >= '0' && v.ptr[i] <= '9') { r = r * 10.0 + (v.ptr[i] - '0'); i++; digits++; }
    if (i < v.len && v.ptr[i] == '.') {
        double scale = 0.1; i++;
        while (i < v.len && v.ptr[i] >= '0' && v.ptr[i] <= '9') { r += (v.ptr[i] - '0') * scale; scale *= 0.1; i++; digits++; }
    }
    if (!digits) return 0;
    if (i < v.len && (v.ptr[i] == 'e' || v.ptr[i] == 'E')) {
        int eneg = 0, e = 0, ed = 0; i++;
        if (i < v.len && (v.ptr[i] == '+' || v.ptr[i] == '-')) { eneg = v.ptr[i] == '-'; i++; }
        while (i < v.len && v.ptr[i] >= '0' && v.ptr[i] <= '9') { if (e < 1000) e = e * 10 + (v.ptr[i] - '0'); i++; ed++; }
        if (!ed) return 0;
        while (e-- > 0) r = eneg ? r / 10.0 : r * 10.0;
    }
    if (i != v.len) return 0;
    *out = neg ? -r : r;
    return 1;
}

/* A JSON string value without its quotes (escapes left as written); 1 on success. */
static int vak_json_string_raw(vak_str v, vak_str *out) {
    if (v.len < 2 || v.ptr[0] != '"' || v.ptr[v.len - 1] != '"') return 0;
    out->ptr = v.ptr + 1; out->len = v.len - 2;
    return 1;
}

static int vak_str_eq(vak_str a, const char *b) {
    vak_str t = vak_cstr(b);
    if (a.len != t.len) return 0;
    for (uint32_t i = 0; i < a.len; i++) if (a.ptr[i] != t.ptr[i]) return 0;
    return 1;
}

/* ------------------------------------------------------------------ */
/* host functions: one wrapper per row of vak/host/catalog.py         */
/* Each takes JSON args and returns the host's JSON reply. Denials    */
/* never return: the host traps the call.                             */
/* ------------------------------------------------------------------ */
#define VAK__HOST(fn)                                                               \
    __attribute__((import_module("vak"), import_name(#fn)))                         \
    uint64_t vak__import_##fn(uint32_t ptr, uint32_t len);                          \
    static inline vak_str vak_##fn(vak_str args) {                                  \
        return vak_unpack(vak__import_##fn((uint32_t)(uintptr_t)args.ptr, args.len)); \
    }

VAK__HOST(log)
VAK__HOST(clock_now)
VAK__HOST(random_bytes)
VAK__HOST(fs_read)
VAK__HOST(fs_write)
VAK__HOST(fs_list)
VAK__HOST(http_request)
VAK__HOST(kv_get)
VAK__HOST(kv_put)
VAK__HOST(kv_delete)
VAK__HOST(kv_list)
VAK__HOST(secret_get)

#endif /* VAK_H */
