#include "vak.h"
/* Valid JSON whose *structure* is hostile: nesting far past any sane depth,
   strings and arrays over the ABI's structural bounds. Each must end in
   OutputStructureError at the ABI, never a RecursionError anywhere later. */
/* {"<key>": [[[...]]]} with `depth` arrays */
static vak_buf nested(const char *prefix, uint32_t depth) {
    vak_buf b = vak_buf_new(depth * 2 + 32);
    vak_buf_lit(&b, prefix);
    for (uint32_t i = 0; i < depth; i++) vak_buf_char(&b, '[');
    for (uint32_t i = 0; i < depth; i++) vak_buf_char(&b, ']');
    vak_buf_char(&b, '}');
    return b;
}
static uint64_t nest(uint32_t depth) {
    vak_buf b = nested("{\"d\":", depth);
    return vak_buf_return(&b);
}
VAK_EXPORT(execute) { return nest(1000); }
VAK_EXPORT(deep300) { return nest(300); }
/* past orjson's own limit of 1024 levels */
VAK_EXPORT(deep100k) { return nest(100000); }
/* objects rather than arrays: {"a":{"a":...}} */
VAK_EXPORT(objects) {
    uint32_t depth = 1000;
    vak_buf b = vak_buf_new(depth * 6 + 16);
    for (uint32_t i = 0; i < depth; i++) vak_buf_lit(&b, "{\"a\":");
    vak_buf_lit(&b, "1");
    for (uint32_t i = 0; i < depth; i++) vak_buf_char(&b, '}');
    return vak_buf_return(&b);
}
/* 200,000 items in one array */
VAK_EXPORT(wide) {
    uint32_t n = 200000;
    vak_buf b = vak_buf_new(n * 2 + 16);
    vak_buf_lit(&b, "{\"w\":[0");
    for (uint32_t i = 1; i < n; i++) vak_buf_lit(&b, ",0");
    vak_buf_lit(&b, "]}");
    return vak_buf_return(&b);
}
/* host-call arguments nested 1000 levels deep (the mediation bounds these) */
VAK_EXPORT(hostargs) {
    vak_buf b = nested("{\"message\":", 1000);
    vak_str args = { b.ptr, b.len };
    vak_str r = vak_log(args);
    return vak_pack(r.ptr, r.len);
}
/* a legal, moderately nested output: 32 levels */
VAK_EXPORT(ok32) { return nest(31); }
