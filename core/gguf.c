// gguf.c - a validating GGUF v2/v3 reader (spec: ggml/docs/gguf.md).
//
// Layout: header (magic, version, n_tensors, n_kv), n_kv key/value pairs, n_tensors
// tensor infos, padding to `general.alignment`, then the tensor data section.
// Every read goes through a bounds-checked cursor, and every count is checked
// against the bytes left before anything is allocated for it, so a hostile header
// fails quickly instead of asking for gigabytes.
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "i2s.h"

#define GGUF_MAGIC "GGUF"
#define GGUF_DEFAULT_ALIGNMENT 32
// Arrays of arrays are legal; nothing real nests deeper than 2. The bound keeps a
// hostile file from recursing the stack away.
#define GGUF_MAX_ARRAY_DEPTH 8
#define GGUF_MAX_DIMS 4
// Smallest possible encodings, used to bound counts by the bytes left:
// a kv is key length (8) + at least one key byte + value type (4) + a 1-byte value;
// a tensor info is name length (8) + a name byte + n_dims (4) + one dim (8) +
// type (4) + offset (8).
#define GGUF_MIN_KV_BYTES 14
#define GGUF_MIN_TENSOR_INFO_BYTES 33

// ---- ggml tensor types ---------------------------------------------------------

typedef struct {
    const char *name;
    uint32_t blck; // elements per block (0: type number unused/removed)
    uint32_t size; // bytes per block
} ggml_type_info;

// ggml's type_traits (ggml.c), plus bitnet.cpp's I2_S. Numbers 4, 5 and 31-33 were
// removed from ggml and are rejected as unknown.
static const ggml_type_info ggml_types[] = {
    [0] = {"F32", 1, 4},          [1] = {"F16", 1, 2},
    [2] = {"Q4_0", 32, 18},       [3] = {"Q4_1", 32, 20},
    [6] = {"Q5_0", 32, 22},       [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},       [9] = {"Q8_1", 32, 36},
    [10] = {"Q2_K", 256, 84},     [11] = {"Q3_K", 256, 110},
    [12] = {"Q4_K", 256, 144},    [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},    [15] = {"Q8_K", 256, 292},
    [16] = {"IQ2_XXS", 256, 66},  [17] = {"IQ2_XS", 256, 74},
    [18] = {"IQ3_XXS", 256, 98},  [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18},    [21] = {"IQ3_S", 256, 110},
    [22] = {"IQ2_S", 256, 82},    [23] = {"IQ4_XS", 256, 136},
    [24] = {"I8", 1, 1},          [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},         [27] = {"I64", 1, 8},
    [28] = {"F64", 1, 8},         [29] = {"IQ1_M", 256, 56},
    [30] = {"BF16", 1, 2},        [34] = {"TQ1_0", 256, 54},
    [35] = {"TQ2_0", 256, 66},
    // I2_S: 2 bits per element plus one 32-byte tail holding the float scale
    // (docs/architecture.md: I2_S); special-cased in bn_ggml_type_nbytes.
    [36] = {"I2_S", 1, 0},
};
#define GGML_TYPE_TABLE_LEN (sizeof ggml_types / sizeof ggml_types[0])

static const ggml_type_info *ggml_type_get(uint32_t type) {
    if (type >= GGML_TYPE_TABLE_LEN || !ggml_types[type].name) return NULL;
    return &ggml_types[type];
}

const char *bn_ggml_type_name(uint32_t type) {
    const ggml_type_info *t = ggml_type_get(type);
    return t ? t->name : "unknown";
}

int bn_ggml_type_nbytes(uint32_t type, uint64_t n, uint64_t *bytes) {
    const ggml_type_info *t = ggml_type_get(type);
    if (!t) return -1;
    if (type == BN_GGML_I2_S) {
        if (n % 4) return -1;
        *bytes = bn_i2s_nbytes(n);
        return 0;
    }
    if (n % t->blck) return -1;
    uint64_t b;
    if (__builtin_mul_overflow(n / t->blck, (uint64_t)t->size, &b)) return -1;
    *bytes = b;
    return 0;
}

const char *bn_gguf_type_name(bn_gguf_type type) {
    static const char *names[] = {"uint8", "int8",   "uint16", "int16",  "uint32",
                                  "int32", "float32", "bool",  "string", "array",
                                  "uint64", "int64", "float64"};
    if ((unsigned)type >= BN_GGUF_TYPE_COUNT) return "unknown";
    return names[type];
}

size_t bn_gguf_scalar_size(uint32_t type) {
    switch (type) {
    case BN_GGUF_UINT8: case BN_GGUF_INT8: case BN_GGUF_BOOL: return 1;
    case BN_GGUF_UINT16: case BN_GGUF_INT16: return 2;
    case BN_GGUF_UINT32: case BN_GGUF_INT32: case BN_GGUF_FLOAT32: return 4;
    case BN_GGUF_UINT64: case BN_GGUF_INT64: case BN_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

bool bn_gguf_str_eq(bn_gguf_str s, const char *cstr) {
    size_t n = strlen(cstr);
    return s.len == n && memcmp(s.data, cstr, n) == 0;
}

// ---- bounds-checked cursor ----------------------------------------------------------

typedef struct {
    const uint8_t *base;
    size_t size;
    size_t pos;
    bn_error *err;
} reader;

static size_t rd_left(const reader *r) { return r->size - r->pos; }

static int rd_bytes(reader *r, void *dst, size_t n, const char *what) {
    if (n > rd_left(r)) {
        memset(dst, 0, n); // callers never see stale bytes (and gcc knows dst is set)
        return bn_errorf(r->err, "gguf: truncated file: %s at offset %zu needs %zu bytes, %zu left",
                         what, r->pos, n, rd_left(r));
    }
    memcpy(dst, r->base + r->pos, n);
    r->pos += n;
    return 0;
}

static int rd_u32(reader *r, uint32_t *v, const char *what) { return rd_bytes(r, v, 4, what); }
static int rd_u64(reader *r, uint64_t *v, const char *what) { return rd_bytes(r, v, 8, what); }

static int rd_str(reader *r, bn_gguf_str *s, const char *what) {
    uint64_t len;
    if (rd_u64(r, &len, what) != 0) return -1;
    if (len > rd_left(r))
        return bn_errorf(r->err, "gguf: %s at offset %zu has length %llu past the end of the file",
                         what, r->pos - 8, (unsigned long long)len);
    s->data = (const char *)r->base + r->pos;
    s->len = len;
    r->pos += (size_t)len;
    return 0;
}

// ---- metadata values ------------------------------------------------------------------

static void value_free(bn_gguf_value *v) {
    if (v->type != BN_GGUF_ARRAY) return;
    if (v->arr.elem_type == BN_GGUF_ARRAY && v->arr.items) {
        bn_gguf_value *items = (bn_gguf_value *)v->arr.items;
        for (uint64_t i = 0; i < v->arr.count; i++) value_free(&items[i]);
    }
    free((void *)v->arr.items);
    free((void *)v->arr.strs);
    v->arr.items = NULL;
    v->arr.strs = NULL;
}

static int read_value(reader *r, uint32_t type, int depth, bn_gguf_value *v, const char *key);

static int read_array(reader *r, int depth, bn_gguf_value *v, const char *key) {
    uint32_t et;
    uint64_t count;
    if (rd_u32(r, &et, "array type") != 0 || rd_u64(r, &count, "array length") != 0) return -1;
    if (et >= BN_GGUF_TYPE_COUNT)
        return bn_errorf(r->err, "gguf: key '%s': array of unknown value type %u", key, et);
    if (et == BN_GGUF_ARRAY && depth + 1 >= GGUF_MAX_ARRAY_DEPTH)
        return bn_errorf(r->err, "gguf: key '%s': arrays nested deeper than %d", key,
                         GGUF_MAX_ARRAY_DEPTH);
    // The smallest encoding of one element bounds the count by the bytes left.
    size_t min = et == BN_GGUF_STRING ? 8 : et == BN_GGUF_ARRAY ? 12 : bn_gguf_scalar_size(et);
    if (count > rd_left(r) / min)
        return bn_errorf(r->err, "gguf: key '%s': array of %llu %s elements does not fit in the "
                         "%zu bytes left", key, (unsigned long long)count,
                         bn_gguf_type_name((bn_gguf_type)et), rd_left(r));
    v->arr.elem_type = (bn_gguf_type)et;
    v->arr.count = count;
    v->arr.data = r->base + r->pos;
    if (et == BN_GGUF_STRING) {
        bn_gguf_str *strs = calloc(count ? count : 1, sizeof *strs);
        if (!strs) return bn_errorf(r->err, "gguf: out of memory for key '%s'", key);
        v->arr.strs = strs;
        for (uint64_t i = 0; i < count; i++)
            if (rd_str(r, &strs[i], "array string") != 0) return -1;
    } else if (et == BN_GGUF_ARRAY) {
        bn_gguf_value *items = calloc(count ? count : 1, sizeof *items);
        if (!items) return bn_errorf(r->err, "gguf: out of memory for key '%s'", key);
        v->arr.items = items;
        for (uint64_t i = 0; i < count; i++)
            if (read_value(r, BN_GGUF_ARRAY, depth + 1, &items[i], key) != 0) return -1;
    } else {
        r->pos += (size_t)(count * min); // fits: checked against rd_left above
    }
    return 0;
}

static int read_value(reader *r, uint32_t type, int depth, bn_gguf_value *v, const char *key) {
    v->type = (bn_gguf_type)type;
    uint8_t b[8];
    switch (type) {
    case BN_GGUF_UINT8: if (rd_bytes(r, b, 1, key)) return -1; v->u64 = b[0]; return 0;
    case BN_GGUF_INT8: if (rd_bytes(r, b, 1, key)) return -1; v->i64 = (int8_t)b[0]; return 0;
    case BN_GGUF_BOOL: if (rd_bytes(r, b, 1, key)) return -1; v->b = b[0] != 0; return 0;
    case BN_GGUF_UINT16: {
        uint16_t x; if (rd_bytes(r, &x, 2, key)) return -1; v->u64 = x; return 0;
    }
    case BN_GGUF_INT16: {
        int16_t x; if (rd_bytes(r, &x, 2, key)) return -1; v->i64 = x; return 0;
    }
    case BN_GGUF_UINT32: {
        uint32_t x; if (rd_bytes(r, &x, 4, key)) return -1; v->u64 = x; return 0;
    }
    case BN_GGUF_INT32: {
        int32_t x; if (rd_bytes(r, &x, 4, key)) return -1; v->i64 = x; return 0;
    }
    case BN_GGUF_FLOAT32: {
        float x; if (rd_bytes(r, &x, 4, key)) return -1; v->f64 = x; return 0;
    }
    case BN_GGUF_UINT64: return rd_bytes(r, &v->u64, 8, key);
    case BN_GGUF_INT64: return rd_bytes(r, &v->i64, 8, key);
    case BN_GGUF_FLOAT64: return rd_bytes(r, &v->f64, 8, key);
    case BN_GGUF_STRING: return rd_str(r, &v->str, key);
    case BN_GGUF_ARRAY: return read_array(r, depth, v, key);
    default:
        return bn_errorf(r->err, "gguf: key '%s' has unknown value type %u", key, type);
    }
}

// ---- duplicate detection ----------------------------------------------------------------

static int str_cmp(bn_gguf_str a, bn_gguf_str b) {
    uint64_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.data, b.data, (size_t)n) : 0;
    if (c) return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

static int cmp_str_ptr(const void *a, const void *b) {
    return str_cmp(**(const bn_gguf_str *const *)a, **(const bn_gguf_str *const *)b);
}

// Finds a duplicate among n strings reached through `stride`-spaced structs.
// Returns its index in the sorted order or -1; *dup receives the string.
static int find_duplicate(const void *first, size_t stride, uint64_t n, bn_gguf_str *dup,
                          bn_error *err) {
    if (n < 2) return 0;
    const bn_gguf_str **p = malloc(n * sizeof *p);
    if (!p) return bn_errorf(err, "gguf: out of memory");
    for (uint64_t i = 0; i < n; i++)
        p[i] = (const bn_gguf_str *)((const uint8_t *)first + i * stride);
    qsort(p, n, sizeof *p, cmp_str_ptr);
    int found = 0;
    for (uint64_t i = 1; i < n && !found; i++)
        if (str_cmp(*p[i - 1], *p[i]) == 0) {
            *dup = *p[i];
            found = 1;
        }
    free(p);
    return found;
}

static int cmp_tensor_offset(const void *a, const void *b) {
    const bn_gguf_tensor *x = *(const bn_gguf_tensor *const *)a;
    const bn_gguf_tensor *y = *(const bn_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

// ---- the file ----------------------------------------------------------------------------

void bn_gguf_close(bn_gguf *g) {
    if (!g) return;
    if (g->kv)
        for (uint64_t i = 0; i < g->n_kv; i++) value_free(&g->kv[i].value);
    free(g->kv);
    free(g->tensors);
    if (g->map_) munmap(g->map_, g->size);
    free(g);
}

static int parse_kvs(reader *r, bn_gguf *g) {
    // Grown as entries are parsed so memory follows the bytes actually present.
    // g->n_kv counts the entries allocated so far, so bn_gguf_close frees exactly those.
    uint64_t total = g->n_kv, cap = 0;
    g->n_kv = 0;
    for (uint64_t i = 0; i < total; i++) {
        if (i == cap) {
            cap = cap ? cap * 2 : 16;
            if (cap > total) cap = total;
            bn_gguf_kv *kv = realloc(g->kv, cap * sizeof *kv);
            if (!kv) return bn_errorf(r->err, "gguf: out of memory for %llu keys",
                                      (unsigned long long)total);
            memset(kv + i, 0, (cap - i) * sizeof *kv);
            g->kv = kv;
        }
        bn_gguf_kv *kv = &g->kv[i];
        g->n_kv = i + 1;
        if (rd_str(r, &kv->key, "key") != 0) return -1;
        if (kv->key.len == 0) return bn_errorf(r->err, "gguf: key %llu is empty",
                                               (unsigned long long)i);
        char key[96];
        snprintf(key, sizeof key, "%.*s", (int)(kv->key.len < 80 ? kv->key.len : 80),
                 kv->key.data);
        uint32_t type;
        if (rd_u32(r, &type, "value type") != 0) return -1;
        if (type >= BN_GGUF_TYPE_COUNT)
            return bn_errorf(r->err, "gguf: key '%s' has unknown value type %u", key, type);
        // Record the type before reading so a partly read array is still freed.
        kv->value.type = (bn_gguf_type)type;
        if (read_value(r, type, 0, &kv->value, key) != 0) return -1;
    }
    if (g->n_kv < 2) return 0;
    bn_gguf_str dup = {0};
    int d = find_duplicate(&g->kv[0].key, sizeof(bn_gguf_kv), g->n_kv, &dup, r->err);
    if (d < 0) return -1;
    if (d) return bn_errorf(r->err, "gguf: duplicate key '%.*s'", (int)(dup.len < 80 ? dup.len : 80),
                            dup.data);
    return 0;
}

static int parse_alignment(bn_gguf *g, bn_error *err) {
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t k = bn_gguf_find_key(g, "general.alignment");
    if (k < 0) return 0;
    const bn_gguf_value *v = &g->kv[k].value;
    uint64_t a;
    switch (v->type) {
    case BN_GGUF_UINT8: case BN_GGUF_UINT16: case BN_GGUF_UINT32: case BN_GGUF_UINT64:
        a = v->u64; break;
    case BN_GGUF_INT8: case BN_GGUF_INT16: case BN_GGUF_INT32: case BN_GGUF_INT64:
        if (v->i64 <= 0) return bn_errorf(err, "gguf: general.alignment %lld is not positive",
                                          (long long)v->i64);
        a = (uint64_t)v->i64; break;
    default:
        return bn_errorf(err, "gguf: general.alignment has type %s, expected an integer",
                         bn_gguf_type_name(v->type));
    }
    // An alignment beyond 1 GiB is no real file's and would let padding skip past
    // any plausible end.
    if (a == 0 || (a & (a - 1)) || a > (1u << 30))
        return bn_errorf(err, "gguf: general.alignment %llu is not a power of two in [1, 2^30]",
                         (unsigned long long)a);
    g->alignment = a;
    return 0;
}

static int parse_tensor_infos(reader *r, bn_gguf *g) {
    uint64_t cap = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        if (i == cap) {
            cap = cap ? cap * 2 : 64;
            if (cap > g->n_tensors) cap = g->n_tensors;
            bn_gguf_tensor *t = realloc(g->tensors, cap * sizeof *t);
            if (!t) return bn_errorf(r->err, "gguf: out of memory for %llu tensors",
                                     (unsigned long long)g->n_tensors);
            g->tensors = t;
        }
        bn_gguf_tensor *t = &g->tensors[i];
        memset(t, 0, sizeof *t);
        if (rd_str(r, &t->name, "tensor name") != 0) return -1;
        if (t->name.len == 0)
            return bn_errorf(r->err, "gguf: tensor %llu has an empty name", (unsigned long long)i);
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)(t->name.len < 80 ? t->name.len : 80),
                 t->name.data);
        if (rd_u32(r, &t->n_dims, "tensor n_dims") != 0) return -1;
        if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
            return bn_errorf(r->err, "gguf: tensor '%s' has %u dimensions (1..%d allowed)", name,
                             t->n_dims, GGUF_MAX_DIMS);
        uint64_t n = 1;
        for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            if (rd_u64(r, &t->ne[d], "tensor dimension") != 0) return -1;
            // Zero-sized tensors have no use in a model and make offsets ambiguous.
            if (t->ne[d] == 0)
                return bn_errorf(r->err, "gguf: tensor '%s' has a zero dimension %u", name, d);
            if (__builtin_mul_overflow(n, t->ne[d], &n) || n > (uint64_t)INT64_MAX)
                return bn_errorf(r->err, "gguf: tensor '%s' element count overflows", name);
        }
        if (rd_u32(r, &t->type, "tensor type") != 0) return -1;
        const ggml_type_info *ti = ggml_type_get(t->type);
        if (!ti) return bn_errorf(r->err, "gguf: tensor '%s' has unknown ggml type %u", name,
                                  t->type);
        if (t->ne[0] % ti->blck)
            return bn_errorf(r->err, "gguf: tensor '%s' (%s): ne0 %llu is not a multiple of the "
                             "block size %u", name, ti->name, (unsigned long long)t->ne[0],
                             ti->blck);
        if (bn_ggml_type_nbytes(t->type, n, &t->nbytes) != 0)
            return bn_errorf(r->err, "gguf: tensor '%s' (%s): %llu elements is not a valid size",
                             name, ti->name, (unsigned long long)n);
        if (rd_u64(r, &t->offset, "tensor offset") != 0) return -1;
    }
    return 0;
}

static int validate_tensors(bn_gguf *g, bn_error *err) {
    uint64_t data_size = g->size - g->data_offset;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        bn_gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment)
            return bn_errorf(err, "gguf: tensor '%.*s' offset %llu is not a multiple of the "
                             "alignment %llu", (int)(t->name.len < 80 ? t->name.len : 80),
                             t->name.data, (unsigned long long)t->offset,
                             (unsigned long long)g->alignment);
        if (t->offset > data_size || t->nbytes > data_size - t->offset)
            return bn_errorf(err, "gguf: tensor '%.*s' (%llu bytes at data offset %llu) lies past "
                             "the end of the file (data section is %llu bytes)",
                             (int)(t->name.len < 80 ? t->name.len : 80), t->name.data,
                             (unsigned long long)t->nbytes, (unsigned long long)t->offset,
                             (unsigned long long)data_size);
        t->data = g->base + g->data_offset + t->offset;
    }
    if (g->n_tensors < 2) return 0;

    bn_gguf_str dup = {0};
    int d = find_duplicate(&g->tensors[0].name, sizeof(bn_gguf_tensor), g->n_tensors, &dup, err);
    if (d < 0) return -1;
    if (d) return bn_errorf(err, "gguf: duplicate tensor name '%.*s'",
                            (int)(dup.len < 80 ? dup.len : 80), dup.data);

    const bn_gguf_tensor **p = malloc(g->n_tensors * sizeof *p);
    if (!p) return bn_errorf(err, "gguf: out of memory");
    for (uint64_t i = 0; i < g->n_tensors; i++) p[i] = &g->tensors[i];
    qsort(p, g->n_tensors, sizeof *p, cmp_tensor_offset);
    int rc = 0;
    for (uint64_t i = 1; i < g->n_tensors; i++) {
        const bn_gguf_tensor *a = p[i - 1], *b = p[i];
        if (b->offset < a->offset + a->nbytes) { // no overflow: a is inside the file
            rc = bn_errorf(err, "gguf: tensors '%.*s' and '%.*s' overlap",
                           (int)(a->name.len < 80 ? a->name.len : 80), a->name.data,
                           (int)(b->name.len < 80 ? b->name.len : 80), b->name.data);
            break;
        }
    }
    free(p);
    return rc;
}

static int gguf_parse(bn_gguf *g, bn_error *err) {
    reader r = {g->base, g->size, 0, err};
    char magic[4];
    if (rd_bytes(&r, magic, 4, "magic") != 0) return -1;
    if (memcmp(magic, GGUF_MAGIC, 4) != 0) return bn_errorf(err, "gguf: not a GGUF file (bad magic)");
    if (rd_u32(&r, &g->version, "version") != 0) return -1;
    if (g->version == 1)
        return bn_errorf(err, "gguf: version 1 files are not supported (32-bit counts); "
                         "convert to GGUF v3");
    if (g->version != 2 && g->version != 3) {
        // A big-endian v2/v3 file reads as 0x02000000/0x03000000 here.
        return bn_errorf(err, "gguf: unsupported version %u%s", g->version,
                         (g->version == 0x02000000u || g->version == 0x03000000u)
                             ? " (big-endian file; only little-endian is supported)" : "");
    }
    uint64_t n_tensors, n_kv;
    if (rd_u64(&r, &n_tensors, "tensor count") != 0 || rd_u64(&r, &n_kv, "key count") != 0)
        return -1;
    if (n_kv > rd_left(&r) / GGUF_MIN_KV_BYTES)
        return bn_errorf(err, "gguf: key count %llu cannot fit in the %zu bytes left",
                         (unsigned long long)n_kv, rd_left(&r));
    if (n_tensors > rd_left(&r) / GGUF_MIN_TENSOR_INFO_BYTES)
        return bn_errorf(err, "gguf: tensor count %llu cannot fit in the %zu bytes left",
                         (unsigned long long)n_tensors, rd_left(&r));
    g->n_kv = n_kv;
    if (parse_kvs(&r, g) != 0) return -1;
    if (parse_alignment(g, err) != 0) return -1;
    if (n_tensors > rd_left(&r) / GGUF_MIN_TENSOR_INFO_BYTES)
        return bn_errorf(err, "gguf: tensor count %llu cannot fit in the %zu bytes left",
                         (unsigned long long)n_tensors, rd_left(&r));
    g->n_tensors = n_tensors;
    if (parse_tensor_infos(&r, g) != 0) {
        g->n_tensors = 0;
        return -1;
    }
    uint64_t pad = (g->alignment - r.pos % g->alignment) % g->alignment;
    g->data_offset = r.pos + pad;
    if (g->data_offset > g->size) {
        // Only a file without tensors may end before its (empty) data section.
        if (g->n_tensors)
            return bn_errorf(err, "gguf: truncated file: data section starts at %llu, file is "
                             "%zu bytes", (unsigned long long)g->data_offset, g->size);
        g->data_offset = g->size;
    }
    return validate_tensors(g, err);
}

int bn_gguf_open_memory(const void *data, size_t size, bn_gguf **out, bn_error *err) {
    *out = NULL;
    if (!data && size) return bn_errorf(err, "gguf: NULL buffer");
    bn_gguf *g = calloc(1, sizeof *g);
    if (!g) return bn_errorf(err, "gguf: out of memory");
    g->base = data;
    g->size = size;
    if (gguf_parse(g, err) != 0) {
        bn_gguf_close(g);
        return -1;
    }
    *out = g;
    return 0;
}

int bn_gguf_open(const char *path, bn_gguf **out, bn_error *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return bn_errorf(err, "gguf: cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return bn_errorf(err, "gguf: cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return bn_errorf(err, "gguf: '%s' is not a regular file", path);
    }
    if (st.st_size < 8) {
        close(fd);
        return bn_errorf(err, "gguf: '%s' is too small to be a GGUF file (%lld bytes)", path,
                         (long long)st.st_size);
    }
    size_t size = (size_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return bn_errorf(err, "gguf: cannot map '%s': %s", path, strerror(e));
    bn_gguf *g = calloc(1, sizeof *g);
    if (!g) {
        munmap(map, size);
        return bn_errorf(err, "gguf: out of memory");
    }
    g->base = map;
    g->size = size;
    g->map_ = map;
    if (gguf_parse(g, err) != 0) {
        bn_error_prefix(err, path); // so the CLI's one error line says which file
        bn_gguf_close(g);
        return -1;
    }
    *out = g;
    return 0;
}

// ---- lookups and typed getters -----------------------------------------------------------

int64_t bn_gguf_find_key(const bn_gguf *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (bn_gguf_str_eq(g->kv[i].key, key)) return (int64_t)i;
    return -1;
}

int64_t bn_gguf_find_tensor(const bn_gguf *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (bn_gguf_str_eq(g->tensors[i].name, name)) return (int64_t)i;
    return -1;
}

static const bn_gguf_value *get_value(const bn_gguf *g, const char *key, bn_error *err) {
    int64_t i = bn_gguf_find_key(g, key);
    if (i < 0) {
        bn_errorf(err, "gguf: missing key '%s'", key);
        return NULL;
    }
    return &g->kv[i].value;
}

static bool is_unsigned(bn_gguf_type t) {
    return t == BN_GGUF_UINT8 || t == BN_GGUF_UINT16 || t == BN_GGUF_UINT32 ||
           t == BN_GGUF_UINT64;
}
static bool is_signed(bn_gguf_type t) {
    return t == BN_GGUF_INT8 || t == BN_GGUF_INT16 || t == BN_GGUF_INT32 || t == BN_GGUF_INT64;
}

int bn_gguf_get_u32(const bn_gguf *g, const char *key, uint32_t *out, bn_error *err) {
    const bn_gguf_value *v = get_value(g, key, err);
    if (!v) return -1;
    if (is_unsigned(v->type) && v->u64 <= UINT32_MAX) {
        *out = (uint32_t)v->u64;
        return 0;
    }
    if (is_signed(v->type) && v->i64 >= 0 && v->i64 <= (int64_t)UINT32_MAX) {
        *out = (uint32_t)v->i64;
        return 0;
    }
    if (is_unsigned(v->type) || is_signed(v->type))
        return bn_errorf(err, "gguf: key '%s' value does not fit in uint32", key);
    return bn_errorf(err, "gguf: key '%s' has type %s, expected an integer", key,
                     bn_gguf_type_name(v->type));
}

int bn_gguf_get_i64(const bn_gguf *g, const char *key, int64_t *out, bn_error *err) {
    const bn_gguf_value *v = get_value(g, key, err);
    if (!v) return -1;
    if (is_signed(v->type)) {
        *out = v->i64;
        return 0;
    }
    if (is_unsigned(v->type)) {
        if (v->u64 > (uint64_t)INT64_MAX)
            return bn_errorf(err, "gguf: key '%s' value does not fit in int64", key);
        *out = (int64_t)v->u64;
        return 0;
    }
    return bn_errorf(err, "gguf: key '%s' has type %s, expected an integer", key,
                     bn_gguf_type_name(v->type));
}

int bn_gguf_get_f32(const bn_gguf *g, const char *key, float *out, bn_error *err) {
    const bn_gguf_value *v = get_value(g, key, err);
    if (!v) return -1;
    if (v->type != BN_GGUF_FLOAT32 && v->type != BN_GGUF_FLOAT64)
        return bn_errorf(err, "gguf: key '%s' has type %s, expected a float", key,
                         bn_gguf_type_name(v->type));
    *out = (float)v->f64;
    return 0;
}

int bn_gguf_get_bool(const bn_gguf *g, const char *key, bool *out, bn_error *err) {
    const bn_gguf_value *v = get_value(g, key, err);
    if (!v) return -1;
    if (v->type != BN_GGUF_BOOL)
        return bn_errorf(err, "gguf: key '%s' has type %s, expected bool", key,
                         bn_gguf_type_name(v->type));
    *out = v->b;
    return 0;
}

int bn_gguf_get_str(const bn_gguf *g, const char *key, bn_gguf_str *out, bn_error *err) {
    const bn_gguf_value *v = get_value(g, key, err);
    if (!v) return -1;
    if (v->type != BN_GGUF_STRING)
        return bn_errorf(err, "gguf: key '%s' has type %s, expected string", key,
                         bn_gguf_type_name(v->type));
    *out = v->str;
    return 0;
}

int bn_gguf_get_arr(const bn_gguf *g, const char *key, bn_gguf_type elem_type,
                    const bn_gguf_array **out, bn_error *err) {
    const bn_gguf_value *v = get_value(g, key, err);
    if (!v) return -1;
    if (v->type != BN_GGUF_ARRAY)
        return bn_errorf(err, "gguf: key '%s' has type %s, expected an array", key,
                         bn_gguf_type_name(v->type));
    if (elem_type != BN_GGUF_TYPE_COUNT && v->arr.elem_type != elem_type)
        return bn_errorf(err, "gguf: key '%s' is an array of %s, expected %s", key,
                         bn_gguf_type_name(v->arr.elem_type), bn_gguf_type_name(elem_type));
    *out = &v->arr;
    return 0;
}

int64_t bn_gguf_arr_int(const bn_gguf_array *a, uint64_t i) {
    const uint8_t *p = (const uint8_t *)a->data + i * bn_gguf_scalar_size(a->elem_type);
    switch (a->elem_type) {
    case BN_GGUF_UINT8: case BN_GGUF_BOOL: return *p;
    case BN_GGUF_INT8: return (int8_t)*p;
    case BN_GGUF_UINT16: { uint16_t x; memcpy(&x, p, 2); return x; }
    case BN_GGUF_INT16: { int16_t x; memcpy(&x, p, 2); return x; }
    case BN_GGUF_UINT32: { uint32_t x; memcpy(&x, p, 4); return x; }
    case BN_GGUF_INT32: { int32_t x; memcpy(&x, p, 4); return x; }
    case BN_GGUF_UINT64: case BN_GGUF_INT64: { int64_t x; memcpy(&x, p, 8); return x; }
    default: return 0;
    }
}
