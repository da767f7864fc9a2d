// gguf_write.c - streaming GGUF v3 writer (see gguf_write.h).
//
// Layout written (gguf spec): "GGUF", u32 version 3, u64 n_tensors, u64 n_kv, the
// KV pairs, the tensor infos (name, u32 n_dims, u64 ne[n_dims], u32 type, u64
// offset), zero padding to the alignment, then the tensor data, each tensor
// starting at an aligned offset relative to the data section.
#include "gguf_write.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_VERSION 3
#define IO_BUFFER (1u << 20) // stdio buffer: large sequential writes

typedef struct tensor_info {
    char *name;
    uint32_t n_dims;
    uint64_t ne[4];
    uint32_t type;
    uint64_t offset; // relative to the data section
    uint64_t nbytes;
} tensor_info;

// A growable byte buffer holding serialized KVs or tensor infos.
typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

struct bn_gguf_writer {
    FILE *f;
    char *iobuf;
    uint32_t alignment;
    bool failed;      // a call failed: only close is meaningful now
    bool header_done; // header written: no more metadata or tensors
    bytes kv;
    uint64_t n_kv;
    tensor_info *tensors;
    uint64_t n_tensors, cap_tensors;
    uint64_t data_size; // end of the last declared tensor, padded
    // an array being filled element by element
    bool in_array;
    bn_gguf_type arr_type;
    uint64_t arr_left;
    // streaming position
    uint64_t cur;      // tensor receiving data
    uint64_t cur_done; // bytes of it written
};

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

static int fail(bn_gguf_writer *w, bn_error *err, const char *msg) {
    w->failed = true;
    return bn_errorf(err, "gguf write: %s", msg);
}

static int bytes_put(bytes *b, const void *src, size_t n) {
    if (b->cap - b->n < n) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->n < n) {
            if (cap > SIZE_MAX / 2) return -1;
            cap *= 2;
        }
        uint8_t *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
    return 0;
}

// Little-endian encoders: explicit byte order so the file is the same on any host.
static int put_le(bytes *b, uint64_t v, int size) {
    uint8_t tmp[8];
    for (int i = 0; i < size; i++) tmp[i] = (uint8_t)(v >> (8 * i));
    return bytes_put(b, tmp, (size_t)size);
}
static int put_str(bytes *b, const char *s, size_t len) {
    return put_le(b, len, 8) || bytes_put(b, s, len) ? -1 : 0;
}

// Reads one host value of a scalar type as its little-endian bit pattern.
static uint64_t scalar_bits(bn_gguf_type t, const void *v) {
    switch (t) {
    case BN_GGUF_UINT8: return *(const uint8_t *)v;
    case BN_GGUF_INT8: return (uint8_t) * (const int8_t *)v;
    case BN_GGUF_BOOL: return *(const bool *)v ? 1 : 0;
    case BN_GGUF_UINT16: return *(const uint16_t *)v;
    case BN_GGUF_INT16: return (uint16_t) * (const int16_t *)v;
    case BN_GGUF_UINT32: return *(const uint32_t *)v;
    case BN_GGUF_INT32: return (uint32_t) * (const int32_t *)v;
    case BN_GGUF_UINT64: return *(const uint64_t *)v;
    case BN_GGUF_INT64: return (uint64_t) * (const int64_t *)v;
    case BN_GGUF_FLOAT32: {
        uint32_t u;
        memcpy(&u, v, 4);
        return u;
    }
    case BN_GGUF_FLOAT64: {
        uint64_t u;
        memcpy(&u, v, 8);
        return u;
    }
    default: return 0;
    }
}

int bn_gguf_writer_open(const char *path, uint32_t alignment, bn_gguf_writer **out,
                        bn_error *err) {
    *out = NULL;
    if (alignment == 0 || (alignment & (alignment - 1)))
        return bn_errorf(err, "gguf write: alignment %u is not a power of two", alignment);
    bn_gguf_writer *w = calloc(1, sizeof *w);
    if (!w) return bn_errorf(err, "gguf write: out of memory");
    w->alignment = alignment;
    w->f = fopen(path, "wb");
    if (!w->f) {
        int e = errno;
        free(w);
        return bn_errorf(err, "cannot create %s: %s", path, strerror(e));
    }
    w->iobuf = malloc(IO_BUFFER);
    if (w->iobuf) setvbuf(w->f, w->iobuf, _IOFBF, IO_BUFFER);
    *out = w;
    if (alignment != BN_GGUF_DEFAULT_ALIGNMENT &&
        bn_gguf_writer_kv_u32(w, "general.alignment", alignment, err)) {
        bn_gguf_writer_close(w, NULL);
        *out = NULL;
        return -1;
    }
    return 0;
}

// Common checks before adding metadata or a tensor info.
static int check_meta(bn_gguf_writer *w, bn_error *err) {
    if (w->failed) return bn_errorf(err, "gguf write: writer is in a failed state");
    if (w->header_done) return fail(w, err, "metadata added after tensor data started");
    if (w->in_array) return fail(w, err, "previous array is not complete");
    return 0;
}

static int kv_head(bn_gguf_writer *w, const char *key, bn_gguf_type type, bn_error *err) {
    if (check_meta(w, err)) return -1;
    if (!key || !*key) return fail(w, err, "empty key");
    if (put_str(&w->kv, key, strlen(key)) || put_le(&w->kv, (uint32_t)type, 4))
        return fail(w, err, "out of memory");
    w->n_kv++;
    return 0;
}

int bn_gguf_writer_kv(bn_gguf_writer *w, const char *key, bn_gguf_type type,
                      const void *value, bn_error *err) {
    const int size = (int)bn_gguf_scalar_size(type);
    if (!size) return fail(w, err, "bn_gguf_writer_kv takes numeric or bool types only");
    if (kv_head(w, key, type, err)) return -1;
    if (put_le(&w->kv, scalar_bits(type, value), size)) return fail(w, err, "out of memory");
    return 0;
}

int bn_gguf_writer_kv_u32(bn_gguf_writer *w, const char *key, uint32_t v, bn_error *err) {
    return bn_gguf_writer_kv(w, key, BN_GGUF_UINT32, &v, err);
}
int bn_gguf_writer_kv_i32(bn_gguf_writer *w, const char *key, int32_t v, bn_error *err) {
    return bn_gguf_writer_kv(w, key, BN_GGUF_INT32, &v, err);
}
int bn_gguf_writer_kv_u64(bn_gguf_writer *w, const char *key, uint64_t v, bn_error *err) {
    return bn_gguf_writer_kv(w, key, BN_GGUF_UINT64, &v, err);
}
int bn_gguf_writer_kv_f32(bn_gguf_writer *w, const char *key, float v, bn_error *err) {
    return bn_gguf_writer_kv(w, key, BN_GGUF_FLOAT32, &v, err);
}
int bn_gguf_writer_kv_bool(bn_gguf_writer *w, const char *key, bool v, bn_error *err) {
    return bn_gguf_writer_kv(w, key, BN_GGUF_BOOL, &v, err);
}

int bn_gguf_writer_kv_strn(bn_gguf_writer *w, const char *key, const char *v, size_t len,
                           bn_error *err) {
    if (kv_head(w, key, BN_GGUF_STRING, err)) return -1;
    if (put_str(&w->kv, v, len)) return fail(w, err, "out of memory");
    return 0;
}
int bn_gguf_writer_kv_str(bn_gguf_writer *w, const char *key, const char *v, bn_error *err) {
    return bn_gguf_writer_kv_strn(w, key, v, strlen(v), err);
}

int bn_gguf_writer_begin_array(bn_gguf_writer *w, const char *key, bn_gguf_type elem_type,
                               uint64_t n, bn_error *err) {
    if (elem_type != BN_GGUF_STRING && !bn_gguf_scalar_size(elem_type))
        return fail(w, err, "array element type must be numeric, bool or string");
    if (kv_head(w, key, BN_GGUF_ARRAY, err)) return -1;
    if (put_le(&w->kv, (uint32_t)elem_type, 4) || put_le(&w->kv, n, 8))
        return fail(w, err, "out of memory");
    w->in_array = n > 0;
    w->arr_type = elem_type;
    w->arr_left = n;
    return 0;
}

static int array_slot(bn_gguf_writer *w, bool is_str, bn_error *err) {
    if (w->failed) return bn_errorf(err, "gguf write: writer is in a failed state");
    if (!w->in_array) return fail(w, err, "array element pushed with no open array");
    if (is_str != (w->arr_type == BN_GGUF_STRING))
        return fail(w, err, "array element of the wrong type");
    if (--w->arr_left == 0) w->in_array = false;
    return 0;
}

int bn_gguf_writer_array_str(bn_gguf_writer *w, const char *s, size_t len, bn_error *err) {
    if (array_slot(w, true, err)) return -1;
    if (put_str(&w->kv, s, len)) return fail(w, err, "out of memory");
    return 0;
}

int bn_gguf_writer_array_elem(bn_gguf_writer *w, const void *value, bn_error *err) {
    if (array_slot(w, false, err)) return -1;
    if (put_le(&w->kv, scalar_bits(w->arr_type, value), (int)bn_gguf_scalar_size(w->arr_type)))
        return fail(w, err, "out of memory");
    return 0;
}

int bn_gguf_writer_kv_array(bn_gguf_writer *w, const char *key, bn_gguf_type elem_type,
                            const void *data, uint64_t n, bn_error *err) {
    const int size = (int)bn_gguf_scalar_size(elem_type);
    if (!size) return fail(w, err, "bn_gguf_writer_kv_array takes numeric or bool elements");
    if (bn_gguf_writer_begin_array(w, key, elem_type, n, err)) return -1;
    // host element stride: bool is sizeof(bool), everything else its gguf size
    size_t stride = elem_type == BN_GGUF_BOOL ? sizeof(bool) : (size_t)size;
    for (uint64_t i = 0; i < n; i++)
        if (bn_gguf_writer_array_elem(w, (const uint8_t *)data + i * stride, err)) return -1;
    return 0;
}

int bn_gguf_writer_add_tensor(bn_gguf_writer *w, const char *name, uint32_t n_dims,
                              const uint64_t *ne, uint32_t type, bn_error *err) {
    if (check_meta(w, err)) return -1;
    if (!name || !*name) return fail(w, err, "empty tensor name");
    if (n_dims < 1 || n_dims > 4) return fail(w, err, "tensor n_dims must be 1..4");
    for (uint64_t i = 0; i < w->n_tensors; i++)
        if (!strcmp(w->tensors[i].name, name)) {
            w->failed = true;
            return bn_errorf(err, "gguf write: duplicate tensor %s", name);
        }
    tensor_info t = {.n_dims = n_dims, .type = type, .ne = {1, 1, 1, 1}};
    uint64_t n = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] == 0 || n > UINT64_MAX / ne[d]) {
            w->failed = true;
            return bn_errorf(err, "gguf write: tensor %s has a bad shape", name);
        }
        t.ne[d] = ne[d];
        n *= ne[d];
    }
    if (bn_ggml_type_nbytes(type, n, &t.nbytes)) {
        w->failed = true;
        return bn_errorf(err, "gguf write: tensor %s: %llu elements do not fit type %s (%u)",
                         name, (unsigned long long)n, bn_ggml_type_name(type), type);
    }
    if (w->n_tensors == w->cap_tensors) {
        uint64_t cap = w->cap_tensors ? 2 * w->cap_tensors : 64;
        tensor_info *p = realloc(w->tensors, cap * sizeof *p);
        if (!p) return fail(w, err, "out of memory");
        w->tensors = p;
        w->cap_tensors = cap;
    }
    t.name = strdup(name);
    if (!t.name) return fail(w, err, "out of memory");
    t.offset = w->data_size;
    w->data_size = align_up(t.offset + t.nbytes, w->alignment);
    w->tensors[w->n_tensors++] = t;
    return 0;
}

// Serialized size of the tensor infos.
static uint64_t infos_size(const bn_gguf_writer *w) {
    uint64_t s = 0;
    for (uint64_t i = 0; i < w->n_tensors; i++)
        s += 8 + strlen(w->tensors[i].name) + 4 + 8ull * w->tensors[i].n_dims + 4 + 8;
    return s;
}

static uint64_t header_size(const bn_gguf_writer *w) {
    return 4 + 4 + 8 + 8 + w->kv.n + infos_size(w);
}

uint64_t bn_gguf_writer_file_size(const bn_gguf_writer *w) {
    return align_up(header_size(w), w->alignment) + w->data_size;
}

static int write_zeros(FILE *f, uint64_t n) {
    static const uint8_t zeros[256];
    while (n) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        if (fwrite(zeros, 1, k, f) != k) return -1;
        n -= k;
    }
    return 0;
}

static int io_fail(bn_gguf_writer *w, bn_error *err) {
    w->failed = true;
    return bn_errorf(err, "gguf write: %s", strerror(errno ? errno : EIO));
}

static int write_header(bn_gguf_writer *w, bn_error *err) {
    if (w->in_array) return fail(w, err, "array is not complete");
    bytes h = {0};
    int rc = bytes_put(&h, "GGUF", 4) || put_le(&h, GGUF_VERSION, 4) ||
             put_le(&h, w->n_tensors, 8) || put_le(&h, w->n_kv, 8);
    for (uint64_t i = 0; !rc && i < w->n_tensors; i++) {
        const tensor_info *t = &w->tensors[i];
        rc = put_str(&h, t->name, strlen(t->name)) || put_le(&h, t->n_dims, 4);
        for (uint32_t d = 0; !rc && d < t->n_dims; d++) rc = put_le(&h, t->ne[d], 8);
        rc = rc || put_le(&h, t->type, 4) || put_le(&h, t->offset, 8);
    }
    if (rc) {
        free(h.p);
        return fail(w, err, "out of memory");
    }
    // the KV buffer goes between the counts (first 24 bytes) and the infos
    uint64_t total = h.n + w->kv.n;
    errno = 0;
    rc = fwrite(h.p, 1, 24, w->f) != 24 ||
         (w->kv.n && fwrite(w->kv.p, 1, w->kv.n, w->f) != w->kv.n) ||
         fwrite(h.p + 24, 1, h.n - 24, w->f) != h.n - 24 ||
         write_zeros(w->f, align_up(total, w->alignment) - total);
    free(h.p);
    // the metadata is on its way to the file: release it now, it may be MBs
    free(w->kv.p);
    w->kv = (bytes){0};
    w->header_done = true;
    return rc ? io_fail(w, err) : 0;
}

int bn_gguf_writer_write(bn_gguf_writer *w, const void *data, size_t n, bn_error *err) {
    if (w->failed) return bn_errorf(err, "gguf write: writer is in a failed state");
    if (!w->header_done && write_header(w, err)) return -1;
    const uint8_t *p = data;
    while (n) {
        if (w->cur >= w->n_tensors) return fail(w, err, "more tensor data than declared");
        const tensor_info *t = &w->tensors[w->cur];
        uint64_t left = t->nbytes - w->cur_done;
        size_t k = n < left ? n : (size_t)left;
        errno = 0;
        if (fwrite(p, 1, k, w->f) != k) return io_fail(w, err);
        p += k;
        n -= k;
        w->cur_done += k;
        if (w->cur_done == t->nbytes) {
            uint64_t end = t->offset + t->nbytes;
            if (write_zeros(w->f, align_up(end, w->alignment) - end)) return io_fail(w, err);
            w->cur++;
            w->cur_done = 0;
        }
    }
    return 0;
}

int64_t bn_gguf_writer_next_tensor(const bn_gguf_writer *w, const char **name,
                                   uint64_t *nbytes, uint64_t *remaining) {
    if (w->cur >= w->n_tensors) return -1;
    const tensor_info *t = &w->tensors[w->cur];
    if (name) *name = t->name;
    if (nbytes) *nbytes = t->nbytes;
    if (remaining) *remaining = t->nbytes - w->cur_done;
    return (int64_t)w->cur;
}

int bn_gguf_writer_close(bn_gguf_writer *w, bn_error *err) {
    if (!w) return 0;
    int rc = 0;
    if (w->failed) {
        rc = bn_errorf(err, "gguf write: an earlier call failed");
    } else if (!w->header_done && write_header(w, err)) {
        rc = -1;
    } else if (w->cur < w->n_tensors) {
        const tensor_info *t = &w->tensors[w->cur];
        rc = bn_errorf(err, "gguf write: tensor %s is missing %llu of %llu bytes", t->name,
                       (unsigned long long)(t->nbytes - w->cur_done),
                       (unsigned long long)t->nbytes);
    }
    errno = 0;
    if (w->f && fclose(w->f) != 0 && rc == 0)
        rc = bn_errorf(err, "gguf write: close: %s", strerror(errno ? errno : EIO));
    free(w->iobuf);
    for (uint64_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->tensors);
    free(w->kv.p);
    free(w);
    return rc;
}
