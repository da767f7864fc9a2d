// sha256.c - a file's SHA-256 through OpenSSL (libcrypto), read in 1 MiB pieces.
#include "sha256.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

int bn_sha256_file(const char *path, char hex[65], bn_error *err) {
    enum { CHUNK = 1 << 20 };
    FILE *f = fopen(path, "rb");
    if (!f) return bn_errorf(err, "%s: %s", path, strerror(errno));
    unsigned char *buf = malloc(CHUNK), md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = buf && ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    size_t n;
    while (ok && (n = fread(buf, 1, CHUNK, f)) > 0) ok = EVP_DigestUpdate(ctx, buf, n);
    const int read_errno = ferror(f) ? errno : 0;
    ok = ok && !read_errno && EVP_DigestFinal_ex(ctx, md, &md_len) && md_len == 32;
    EVP_MD_CTX_free(ctx);
    free(buf);
    fclose(f);
    if (read_errno) return bn_errorf(err, "reading %s: %s", path, strerror(read_errno));
    if (!ok) return bn_errorf(err, "SHA-256 of %s: OpenSSL failed (or out of memory)", path);
    for (unsigned i = 0; i < md_len; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}
