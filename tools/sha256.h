// sha256.h - the SHA-256 of a file (OpenSSL's EVP interface), as the hub
// publishes it for an LFS file: 64 lowercase hex digits.
#ifndef BN_SHA256_H
#define BN_SHA256_H

#include "bitnet.h"

int bn_sha256_file(const char *path, char hex[65], bn_error *err);

#endif
