/* notes: read, list and write files under /workspace through the fs_* host functions.
 * The input JSON is passed to the host function unchanged; the reply is the result. */
#include "vak.h"

VAK_EXPORT(read) { vak_str r = vak_fs_read(vak_input); return vak_pack(r.ptr, r.len); }
VAK_EXPORT(list) { vak_str r = vak_fs_list(vak_input); return vak_pack(r.ptr, r.len); }
VAK_EXPORT(write) { vak_str r = vak_fs_write(vak_input); return vak_pack(r.ptr, r.len); }
