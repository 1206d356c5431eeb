/* kvstore: the kv_* host functions, input passed through, reply returned. */
#include "vak.h"

VAK_EXPORT(get) { vak_str r = vak_kv_get(vak_input); return vak_pack(r.ptr, r.len); }
VAK_EXPORT(put) { vak_str r = vak_kv_put(vak_input); return vak_pack(r.ptr, r.len); }
VAK_EXPORT(delete) { vak_str r = vak_kv_delete(vak_input); return vak_pack(r.ptr, r.len); }
VAK_EXPORT(list) { vak_str r = vak_kv_list(vak_input); return vak_pack(r.ptr, r.len); }
