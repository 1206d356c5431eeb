#include "vak.h"
static volatile uint32_t depth;
/* Unbounded recursion on the wasm stack (no shadow-stack frame): StackOverflow. */
__attribute__((noinline)) static uint32_t deep(uint32_t n) {
    depth = n;
    if (n == 0xFFFFFFFFu) return depth;
    return deep(n + 1) * 3u + depth;
}
/* Recursion with a big local array on the C shadow stack in linear memory: a plain trap. */
__attribute__((noinline)) static uint32_t shadow_deep(uint32_t n) {
    volatile char pad[512];
    pad[n & 511] = (char)n;
    if (n == 0xFFFFFFFFu) return 0;
    return shadow_deep(n + 1) + pad[(n + 1) & 511];
}
VAK_EXPORT(execute) { return (uint64_t)deep(vak_input.len); }
VAK_EXPORT(shadow) { return (uint64_t)shadow_deep(vak_input.len); }
