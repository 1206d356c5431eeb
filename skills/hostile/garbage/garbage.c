#include "vak.h"
VAK_EXPORT(execute) { static const char g[] = "{not json at all"; return vak_pack(g, sizeof g - 1); }
VAK_EXPORT(utf8) { static const char g[] = "\"\xff\xfe\""; return vak_pack(g, sizeof g - 1); }
