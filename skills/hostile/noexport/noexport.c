#include "vak.h"
/* The manifest declares `execute`; the module exports `other`. */
VAK_EXPORT(other) { return vak_pack(vak_input.ptr, vak_input.len); }
