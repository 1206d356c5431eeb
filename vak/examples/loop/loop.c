#include "vak.h"
VAK_EXPORT(execute) {
    volatile uint64_t n = 0;
    for (;;) n++;
    return 0;
}
