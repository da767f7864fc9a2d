// weights_file.c - reads train/export.py's weight file (weights_file.h).
#include "weights_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "i2s_pack.h"

#define MAGIC "BNWEIGHT"
#define VERSION 1
#define CHUNK (1u << 20)

struct bn_weights_file {
    FILE *f;
    char *path;
    uint32_t n_tensors, n_read;
};

static int read_exact(bn_weights_file *f, void *buf, size_t n, const char *what, bn_error *err) {
    if (fread(buf, 1, n, f->f) != n)
        return bn_errorf(err, "%s: truncated (reading %s of tensor %u)", f->path, what,
                         f->n_read);
    return 0;
}

static int read_u32(bn_weights_file *f, uint32_t *v, const char *what, bn_error *err) {
    uint8_t b[4];
    if (read_exact(f, b, 4, what, err)) return -1;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 0;
}

static int read_u64(bn_weights_file *f, uint64_t *v, const char *what, bn_error *err) {
    uint32_t lo, hi;
    if (read_u32(f, &lo, what, err) || read_u32(f, &hi, what, err)) return -1;
    *v = (uint64_t)hi << 32 | lo;
    return 0;
}

int bn_weights_open(const char *path, bn_weights_file **out, bn_error *err) {
    *out = NULL;
    bn_weights_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return bn_errorf(err, "out of memory");
    }
    f->f = fopen(path, "rb");
    char magic[8];
    uint32_t version;
    if (!f->f) {
        bn_errorf(err, "%s: cannot open", path);
    } else if (read_exact(f, magic, 8, "the header", err) || memcmp(magic, MAGIC, 8)) {
        bn_errorf(err, "%s: not a weight file (no %s header)", path, MAGIC);
    } else if (read_u32(f, &version, "the header", err) ||
               read_u32(f, &f->n_tensors, "the header", err)) {
    } else if (version != VERSION) {
        bn_errorf(err, "%s: weight file version %u, expected %u", path, version, VERSION);
    } else {
        *out = f;
        return 0;
    }
    bn_weights_close(f, NULL);
    return -1;
}

// Streams n bytes from the file to the writer.
static int copy_bytes(bn_weights_file *f, uint64_t n, bn_gguf_writer *w, bn_error *err) {
    uint8_t *buf = malloc(CHUNK);
    if (!buf) return bn_errorf(err, "out of memory");
    int rc = 0;
    while (n && !rc) {
        size_t m = n < CHUNK ? (size_t)n : CHUNK;
        rc = read_exact(f, buf, m, "data", err) || bn_gguf_writer_write(w, buf, m, err) ? -1 : 0;
        n -= m;
    }
    free(buf);
    return rc;
}

// n int8 ternary values and a float32 scale -> I2_S bytes.
static int copy_ternary(bn_weights_file *f, const char *name, uint64_t n, bn_gguf_writer *w,
                        bn_error *err) {
    int8_t *t = malloc(n);
    uint8_t *packed = malloc(bn_i2s_nbytes(n));
    uint32_t u;
    int rc = -1;
    if (!t || !packed) {
        bn_errorf(err, "out of memory");
    } else if (!read_exact(f, t, n, "ternary values", err) && !read_u32(f, &u, "the scale", err)) {
        float scale;
        memcpy(&scale, &u, 4);
        if (bn_i2s_pack(t, n, scale, packed, err))
            bn_error_prefix(err, name);
        else
            rc = bn_gguf_writer_write(w, packed, bn_i2s_nbytes(n), err);
    }
    free(t);
    free(packed);
    return rc;
}

int bn_weights_copy_next(bn_weights_file *f, const char *name, uint32_t n_dims,
                         const uint64_t *ne, uint32_t ggml_type, bn_gguf_writer *w,
                         bn_error *err) {
    if (f->n_read == f->n_tensors)
        return bn_errorf(err, "%s: has %u tensors, the model needs more (next: %s)", f->path,
                         f->n_tensors, name);
    uint32_t len, kind, dims;
    char got[256];
    if (read_u32(f, &len, "the name", err)) return -1;
    if (len >= sizeof got) return bn_errorf(err, "%s: tensor %u has a %u-byte name", f->path,
                                            f->n_read, len);
    if (read_exact(f, got, len, "the name", err)) return -1;
    got[len] = 0;
    if (strcmp(got, name))
        return bn_errorf(err, "%s: tensor %u is '%s', the model expects '%s' there", f->path,
                         f->n_read, got, name);
    if (read_u32(f, &kind, "the kind", err) || read_u32(f, &dims, "the shape", err)) return -1;
    const uint32_t want = ggml_type == BN_GGML_F32 ? BN_WEIGHTS_F32
                          : ggml_type == BN_GGML_F16 ? BN_WEIGHTS_F16
                          : ggml_type == BN_GGML_I2_S ? BN_WEIGHTS_TERNARY : 99;
    if (kind != want)
        return bn_errorf(err, "%s: tensor '%s' has kind %u, expected %u for %s", f->path, name,
                         kind, want, bn_ggml_type_name(ggml_type));
    if (dims != n_dims)
        return bn_errorf(err, "%s: tensor '%s' has %u dimensions, expected %u", f->path, name,
                         dims, n_dims);
    uint64_t n = 1;
    for (uint32_t d = 0; d < dims; d++) {
        uint64_t v;
        if (read_u64(f, &v, "the shape", err)) return -1;
        if (v != ne[d])
            return bn_errorf(err, "%s: tensor '%s' has ne[%u] = %llu, expected %llu", f->path,
                             name, d, (unsigned long long)v, (unsigned long long)ne[d]);
        n *= v;
    }
    f->n_read++;
    if (kind == BN_WEIGHTS_TERNARY) return copy_ternary(f, name, n, w, err);
    return copy_bytes(f, n * (kind == BN_WEIGHTS_F32 ? 4 : 2), w, err);
}

int bn_weights_close(bn_weights_file *f, bn_error *err) {
    if (!f) return 0;
    int rc = 0;
    if (f->f && f->n_read == f->n_tensors && fgetc(f->f) != EOF)
        rc = bn_errorf(err, "%s: data after the last tensor", f->path);
    else if (f->f && f->n_read < f->n_tensors)
        rc = bn_errorf(err, "%s: has %u tensors, the model used %u", f->path, f->n_tensors,
                       f->n_read);
    if (f->f) fclose(f->f);
    free(f->path);
    free(f);
    return rc;
}
