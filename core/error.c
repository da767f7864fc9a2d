#include "error.h"

#include <stdarg.h>
#include <stdio.h>

int bn_errorf(bn_error *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int bn_error_prefix(bn_error *err, const char *prefix) {
    if (err) {
        bn_error inner = *err;
        bn_errorf(err, "%s: %s", prefix, inner.msg);
    }
    return -1;
}
