#include "vak.h"
__attribute__((import_module("vak"), import_name("not_offered"))) uint64_t not_offered(uint32_t, uint32_t);
VAK_EXPORT(execute) { return not_offered((uint32_t)(uintptr_t)vak_input.ptr, vak_input.len); }
