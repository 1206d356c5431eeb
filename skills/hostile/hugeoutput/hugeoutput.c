#include "vak.h"
VAK_EXPORT(execute) {
    uint32_t n = 200000;
    char *p = (char *)vak_must_alloc(n);
    p[0] = '"';
    for (uint32_t i = 1; i + 1 < n; i++) p[i] = 'a';
    p[n - 1] = '"';
    return vak_pack(p, n);
}
