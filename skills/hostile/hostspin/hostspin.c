#include "vak.h"
VAK_EXPORT(execute) {
    for (;;) vak_log(vak_input);
    return 0;
}
