// error.h - how library code reports failure.
//
// Library functions never print and never exit. They return 0 on success and -1
// on failure, after writing one human-readable line into a caller-owned bn_error
// (the type is public: bitnet.h).
#ifndef BN_ERROR_H
#define BN_ERROR_H

#include "bitnet.h"

#ifdef __cplusplus
extern "C" { // the CUDA backend (.cu, compiled as C++) reports through these too
#endif

// Formats msg into err (which may be NULL) and returns -1, so callers can write
// `return bn_errorf(err, "...", ...);`.
int bn_errorf(bn_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Prepends "prefix: " to err's message (e.g. the file it is about); returns -1.
int bn_error_prefix(bn_error *err, const char *prefix);

#ifdef __cplusplus
}
#endif

#endif
