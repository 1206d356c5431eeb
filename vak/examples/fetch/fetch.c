/* fetch: one HTTP request through the http_request host function (input passed through). */
#include "vak.h"

VAK_EXPORT(fetch) { vak_str r = vak_http_request(vak_input); return vak_pack(r.ptr, r.len); }
