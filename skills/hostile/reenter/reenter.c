/* An allocator that re-enters the host: vak_alloc itself calls vak.log.
   Written without vak.h because the SDK's allocator is the honest one. */
typedef unsigned int u32;
typedef unsigned long long u64;

__attribute__((import_module("vak"), import_name("log")))
u64 vak_import_log(u32 ptr, u32 len);

extern unsigned char __heap_base;
static unsigned long top;
static int calls;

static u32 bump(u32 size) {
    if (top == 0) top = (unsigned long)&__heap_base;
    unsigned long start = (top + 7u) & ~7ul;
    unsigned long end = start + size;
    unsigned long have = (unsigned long)__builtin_wasm_memory_size(0) * 65536ul;
    if (end > have && __builtin_wasm_memory_grow(0, (end - have + 65535ul) / 65536ul) == (unsigned long)-1)
        return 0;
    top = end;
    return (u32)start;
}

static const char msg[] = "{\"message\":\"from the allocator\"}";

/* The first allocation (the input) is honest; every later one (a host-call
   reply) first makes a host call of its own. */
__attribute__((export_name("vak_alloc"))) u32 vak_alloc(u32 size) {
    if (calls++ > 0) vak_import_log((u32)(unsigned long)msg, sizeof msg - 1);
    return bump(size);
}

static const char args[] = "{\"message\":\"outer\"}";

__attribute__((export_name("execute"))) u64 execute(u32 ptr, u32 len) {
    u64 r = vak_import_log((u32)(unsigned long)args, sizeof args - 1);
    return r;
}
