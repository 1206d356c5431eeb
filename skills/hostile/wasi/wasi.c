#include "vak.h"
__attribute__((import_module("wasi_snapshot_preview1"), import_name("fd_write")))
int fd_write(int fd, const void *iovs, int n, int *written);
VAK_EXPORT(execute) { int w = 0; fd_write(1, vak_input.ptr, 1, &w); return vak_pack(vak_input.ptr, vak_input.len); }
