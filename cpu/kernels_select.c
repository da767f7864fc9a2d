// kernels_select.c - picks the CPU kernel table at run time.
// (Placeholder: scalar only until the SIMD kernels land.)
#include <stddef.h>

#include "kernels.h"

int bn_cpu_kernels_select(const char *name, const bn_cpu_kernels **out, bn_error *err) {
    (void)err;
    (void)name;
    *out = &bn_kernels_scalar;
    return 0;
}
