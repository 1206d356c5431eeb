#include "vak.h"
/* output: a span far beyond memory */
VAK_EXPORT(output) { return vak_pack((void *)(uintptr_t)0xFFFF0000u, 64); }
/* hostarg: host-call arguments at an unmapped address */
VAK_EXPORT(hostarg) {
    vak_str bad = { (const char *)(uintptr_t)0xFFFFFF00u, 200 };
    vak_str r = vak_log(bad);
    return vak_pack(r.ptr, r.len);
}
/* hostlen: valid pointer, length running past the end of memory */
VAK_EXPORT(hostlen) {
    vak_str bad = { vak_input.ptr, 0x7FFFFFFFu };
    vak_str r = vak_log(bad);
    return vak_pack(r.ptr, r.len);
}
