#include "vak.h"
__attribute__((noinline)) static void explode(uint32_t n) { if (n < 0xFFFFFFFFu) __builtin_trap(); }
VAK_EXPORT(execute) { explode(vak_input.len); return 0; }
