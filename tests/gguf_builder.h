// gguf_builder.h - writes GGUF files into memory, for tests and fuzz seeds.
//
// Independent of core/gguf.c on purpose: it writes the format as the spec lays it
// out (header, key/values, tensor infos, padding, data), so reading its output
// checks the reader against the spec rather than against itself. It can also
// write broken files: counts, offsets, dims and types are whatever the caller says.
//
//   gb_builder b; gb_init(&b, 3);
//   gb_kv_str(&b, "general.architecture", "bitnet-b1.58");
//   gb_tensor(&b, "w", BN_GGML_F32, 1, (uint64_t[]){4}, data, 16);
//   size_t n; uint8_t *file = gb_finish(&b, &n); ... free(file); gb_free(&b);
#ifndef BN_GGUF_BUILDER_H
#define BN_GGUF_BUILDER_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "model.h"

typedef struct gb_buf {
    uint8_t *p;
    size_t len, cap;
} gb_buf;

typedef struct gb_builder {
    uint32_t version;
    uint64_t alignment;         // padding used for the data section and tensor offsets
    gb_buf kv, ti, data;
    uint64_t n_kv, n_tensors;   // as counted by the gb_* calls
    uint64_t n_kv_override;     // UINT64_MAX: write n_kv; else write this count
    uint64_t n_tensors_override;
} gb_builder;

static inline void gb_put(gb_buf *b, const void *src, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) abort(); // tests only
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
}
static inline void gb_put_u8(gb_buf *b, uint8_t v) { gb_put(b, &v, 1); }
static inline void gb_put_u16(gb_buf *b, uint16_t v) { gb_put(b, &v, 2); }
static inline void gb_put_u32(gb_buf *b, uint32_t v) { gb_put(b, &v, 4); }
static inline void gb_put_u64(gb_buf *b, uint64_t v) { gb_put(b, &v, 8); }
static inline void gb_put_f32(gb_buf *b, float v) { gb_put(b, &v, 4); }
static inline void gb_put_f64(gb_buf *b, double v) { gb_put(b, &v, 8); }
static inline void gb_put_strn(gb_buf *b, const char *s, uint64_t n) {
    gb_put_u64(b, n);
    gb_put(b, s, (size_t)n);
}
static inline void gb_put_str(gb_buf *b, const char *s) { gb_put_strn(b, s, strlen(s)); }

static inline void gb_init(gb_builder *b, uint32_t version) {
    memset(b, 0, sizeof *b);
    b->version = version;
    b->alignment = 32;
    b->n_kv_override = UINT64_MAX;
    b->n_tensors_override = UINT64_MAX;
}

static inline void gb_free(gb_builder *b) {
    free(b->kv.p);
    free(b->ti.p);
    free(b->data.p);
    memset(b, 0, sizeof *b);
}

// Starts a key/value: writes the key and the value type; the caller writes the
// value with gb_put_* into b->kv (needed for arrays and deliberately bad values).
static inline void gb_key(gb_builder *b, const char *key, uint32_t type) {
    gb_put_str(&b->kv, key);
    gb_put_u32(&b->kv, type);
    b->n_kv++;
}

static inline void gb_kv_u8(gb_builder *b, const char *k, uint8_t v) { gb_key(b, k, BN_GGUF_UINT8); gb_put_u8(&b->kv, v); }
static inline void gb_kv_i8(gb_builder *b, const char *k, int8_t v) { gb_key(b, k, BN_GGUF_INT8); gb_put_u8(&b->kv, (uint8_t)v); }
static inline void gb_kv_u16(gb_builder *b, const char *k, uint16_t v) { gb_key(b, k, BN_GGUF_UINT16); gb_put_u16(&b->kv, v); }
static inline void gb_kv_i16(gb_builder *b, const char *k, int16_t v) { gb_key(b, k, BN_GGUF_INT16); gb_put_u16(&b->kv, (uint16_t)v); }
static inline void gb_kv_u32(gb_builder *b, const char *k, uint32_t v) { gb_key(b, k, BN_GGUF_UINT32); gb_put_u32(&b->kv, v); }
static inline void gb_kv_i32(gb_builder *b, const char *k, int32_t v) { gb_key(b, k, BN_GGUF_INT32); gb_put_u32(&b->kv, (uint32_t)v); }
static inline void gb_kv_u64(gb_builder *b, const char *k, uint64_t v) { gb_key(b, k, BN_GGUF_UINT64); gb_put_u64(&b->kv, v); }
static inline void gb_kv_i64(gb_builder *b, const char *k, int64_t v) { gb_key(b, k, BN_GGUF_INT64); gb_put_u64(&b->kv, (uint64_t)v); }
static inline void gb_kv_f32(gb_builder *b, const char *k, float v) { gb_key(b, k, BN_GGUF_FLOAT32); gb_put_f32(&b->kv, v); }
static inline void gb_kv_f64(gb_builder *b, const char *k, double v) { gb_key(b, k, BN_GGUF_FLOAT64); gb_put_f64(&b->kv, v); }
static inline void gb_kv_bool(gb_builder *b, const char *k, bool v) { gb_key(b, k, BN_GGUF_BOOL); gb_put_u8(&b->kv, v); }
static inline void gb_kv_str(gb_builder *b, const char *k, const char *v) { gb_key(b, k, BN_GGUF_STRING); gb_put_str(&b->kv, v); }

// Array header; the caller then writes count elements (gb_put_*; nested arrays
// are gb_put_u32(elem type) + gb_put_u64(count) + elements).
static inline void gb_kv_arr(gb_builder *b, const char *k, uint32_t elem_type, uint64_t count) {
    gb_key(b, k, BN_GGUF_ARRAY);
    gb_put_u32(&b->kv, elem_type);
    gb_put_u64(&b->kv, count);
}
static inline void gb_kv_arr_i32(gb_builder *b, const char *k, const int32_t *v, uint64_t n) {
    gb_kv_arr(b, k, BN_GGUF_INT32, n);
    gb_put(&b->kv, v, (size_t)n * 4);
}
static inline void gb_kv_arr_str(gb_builder *b, const char *k, const char *const *v, uint64_t n) {
    gb_kv_arr(b, k, BN_GGUF_STRING, n);
    for (uint64_t i = 0; i < n; i++) gb_put_str(&b->kv, v[i]);
}

// Writes a tensor info with an explicit offset (relative to the data section),
// without data. n_dims values of ne are written as given.
static inline void gb_tensor_info(gb_builder *b, const char *name, uint32_t type, uint32_t n_dims,
                                  const uint64_t *ne, uint64_t offset) {
    gb_put_str(&b->ti, name);
    gb_put_u32(&b->ti, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) gb_put_u64(&b->ti, ne[d]);
    gb_put_u32(&b->ti, type);
    gb_put_u64(&b->ti, offset);
    b->n_tensors++;
}

// Appends nbytes of data (NULL: zeros) at the next aligned offset and writes the
// info pointing at it. Returns the offset.
static inline uint64_t gb_tensor(gb_builder *b, const char *name, uint32_t type, uint32_t n_dims,
                                 const uint64_t *ne, const void *data, size_t nbytes) {
    while (b->data.len % b->alignment) gb_put_u8(&b->data, 0);
    uint64_t off = b->data.len;
    if (data) {
        gb_put(&b->data, data, nbytes);
    } else {
        for (size_t i = 0; i < nbytes; i++) gb_put_u8(&b->data, 0);
    }
    gb_tensor_info(b, name, type, n_dims, ne, off);
    return off;
}

// The whole file, malloc'd. Layout per the GGUF spec: magic, version, tensor
// count, kv count, kvs, tensor infos, zero padding to the alignment, data.
static inline uint8_t *gb_finish(gb_builder *b, size_t *size) {
    gb_buf out = {0};
    gb_put(&out, "GGUF", 4);
    gb_put_u32(&out, b->version);
    gb_put_u64(&out, b->n_tensors_override != UINT64_MAX ? b->n_tensors_override : b->n_tensors);
    gb_put_u64(&out, b->n_kv_override != UINT64_MAX ? b->n_kv_override : b->n_kv);
    gb_put(&out, b->kv.p, b->kv.len);
    gb_put(&out, b->ti.p, b->ti.len);
    while (out.len % b->alignment) gb_put_u8(&out, 0);
    gb_put(&out, b->data.p, b->data.len);
    *size = out.len;
    return out.p;
}

// ---- a tiny but complete bitnet-b1.58 model ----------------------------------------------

// Knobs for deliberately wrong models. Tensor names are full GGUF names.
typedef struct gb_model_opts {
    const char *arch;        // NULL: "bitnet-b1.58"
    const char *omit;        // tensor left out
    const char *wrong_shape; // tensor whose ne1 (ne0 for vectors) is doubled
    const char *wrong_type;  // tensor written with type Q8_0 (32-element blocks)
    bool with_output;        // add an untied output.weight
    bool norms_f16;          // norms stored as F16 (the loader converts them)
    bool norms_bf16;         // norms stored as BF16
    uint32_t n_layer;        // 0: 1
    float i2s_scale;         // 0: 0.5
    const char *set_key;     // `<arch>.` key suffix written as uint32 set_value instead
    uint32_t set_value;
    const char *omit_key;    // `<arch>.` key suffix left out
    const char *nonfinite;   // F32/F16/BF16 tensor whose element nonfinite_at holds
    uint64_t nonfinite_at;   // nonfinite_value (0 stands for a NaN)
    float nonfinite_value;
} gb_model_opts;

// Shapes: hidden 128, ffn 128, 2 heads of 64, 1 KV head, vocab 8: the smallest
// model I2_S allows (rows are 128-element blocks), about 27 KB with one layer.
#define GB_EMBD 128
#define GB_FF 128
#define GB_VOCAB 8

static inline uint16_t gb_f16(float f) { // exact for the small values used here
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000, exp = (x >> 23) & 0xff, man = x & 0x7fffff;
    if (exp == 0) return (uint16_t)sign;
    return (uint16_t)(sign | ((exp - 127 + 15) << 10) | (man >> 13));
}

static inline void gb_model_tensor(gb_builder *b, const gb_model_opts *o, const char *name,
                                   uint32_t type, uint64_t ne0, uint64_t ne1) {
    if (o->omit && strcmp(o->omit, name) == 0) return;
    if (o->wrong_shape && strcmp(o->wrong_shape, name) == 0) {
        if (ne1 > 1) ne1 *= 2;
        else ne0 *= 2;
    }
    if (o->wrong_type && strcmp(o->wrong_type, name) == 0) type = 8; // Q8_0
    uint64_t ne[2] = {ne0, ne1};
    uint32_t n_dims = ne1 > 1 ? 2 : 1;
    uint64_t n = ne0 * ne1;
    size_t nbytes;
    uint8_t *d;
    if (type == BN_GGML_I2_S) {
        nbytes = (size_t)(n / 4 + 32);
        d = calloc(1, nbytes);
        // Codes cycle -1, 0, +1 (0b00, 0b01, 0b10); the scale follows the codes.
        for (size_t i = 0; i < n / 4; i++) d[i] = (uint8_t)(0x24 + i % 3);
        float s = o->i2s_scale != 0 ? o->i2s_scale : 0.5f;
        memcpy(d + n / 4, &s, 4);
    } else if (type == BN_GGML_F32) {
        nbytes = (size_t)n * 4;
        d = malloc(nbytes);
        for (size_t i = 0; i < n; i++) {
            float v = 1.0f + (float)(i % 7) / 8.0f;
            memcpy(d + 4 * i, &v, 4);
        }
    } else if (type == BN_GGML_F16) {
        nbytes = (size_t)n * 2;
        d = malloc(nbytes);
        for (size_t i = 0; i < n; i++) {
            uint16_t h = gb_f16(1.0f + (float)(i % 7) / 8.0f);
            memcpy(d + 2 * i, &h, 2);
        }
    } else if (type == BN_GGML_BF16) { // the top half of the f32 bits
        nbytes = (size_t)n * 2;
        d = malloc(nbytes);
        for (size_t i = 0; i < n; i++) {
            float v = 1.0f + (float)(i % 7) / 8.0f;
            uint32_t bits;
            memcpy(&bits, &v, 4);
            uint16_t h = (uint16_t)(bits >> 16);
            memcpy(d + 2 * i, &h, 2);
        }
    } else { // Q8_0: 34 bytes per 32 elements
        nbytes = (size_t)(n / 32 * 34);
        d = calloc(1, nbytes);
    }
    if (o->nonfinite && strcmp(o->nonfinite, name) == 0 && o->nonfinite_at < n) {
        const float v = o->nonfinite_value != 0 ? o->nonfinite_value : NAN;
        uint32_t bits;
        memcpy(&bits, &v, 4);
        // f16: the same sign, all exponent bits, a mantissa bit for a NaN.
        const uint16_t h = (uint16_t)((bits >> 16 & 0x8000) | 0x7c00 | (isnan(v) ? 0x200 : 0));
        if (type == BN_GGML_F32) memcpy(d + 4 * o->nonfinite_at, &v, 4);
        else if (type == BN_GGML_F16) memcpy(d + 2 * o->nonfinite_at, &h, 2);
        else if (type == BN_GGML_BF16) memcpy(d + 2 * o->nonfinite_at, (uint16_t[]){(uint16_t)(bits >> 16)}, 2);
    }
    gb_tensor(b, name, type, n_dims, ne, d, nbytes);
    free(d);
}

static inline uint8_t *gb_model(const gb_model_opts *o, size_t *size) {
    const char *arch = o->arch ? o->arch : "bitnet-b1.58";
    uint32_t n_layer = o->n_layer ? o->n_layer : 1;
    gb_builder b;
    gb_init(&b, 3);
    char k[128];
    gb_kv_str(&b, "general.architecture", arch);
    gb_kv_str(&b, "general.name", "gguf-builder tiny model");
    // v: uint32 value (block_count: 0 = n_layer); f: float value when nonzero.
    static const struct { const char *suffix; uint32_t v; float f; } keys[] = {
        {"vocab_size", GB_VOCAB, 0},        {"context_length", 64, 0},
        {"embedding_length", GB_EMBD, 0},   {"block_count", 0, 0},
        {"feed_forward_length", GB_FF, 0},  {"rope.dimension_count", 64, 0},
        {"attention.head_count", 2, 0},     {"attention.head_count_kv", 1, 0},
        {"attention.layer_norm_rms_epsilon", 0, 1e-5f}, {"rope.freq_base", 0, 10000.0f},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        snprintf(k, sizeof k, "%s.%s", arch, keys[i].suffix);
        if (o->omit_key && strcmp(o->omit_key, keys[i].suffix) == 0) continue;
        if (o->set_key && strcmp(o->set_key, keys[i].suffix) == 0)
            gb_kv_u32(&b, k, o->set_value);
        else if (keys[i].f != 0)
            gb_kv_f32(&b, k, keys[i].f);
        else
            gb_kv_u32(&b, k, keys[i].v ? keys[i].v : n_layer);
    }
    const uint32_t norm = o->norms_f16 ? BN_GGML_F16 : o->norms_bf16 ? BN_GGML_BF16 : BN_GGML_F32;
    gb_model_tensor(&b, o, "token_embd.weight", BN_GGML_F16, GB_EMBD, GB_VOCAB);
    for (uint32_t il = 0; il < n_layer; il++) {
        static const struct { const char *n; int kind; uint64_t ne0, ne1; } L[] = {
            {"attn_norm", 0, GB_EMBD, 1},       {"attn_q", 1, GB_EMBD, GB_EMBD},
            {"attn_k", 1, GB_EMBD, 64},         {"attn_v", 1, GB_EMBD, 64},
            {"attn_output", 1, GB_EMBD, GB_EMBD}, {"attn_sub_norm", 0, GB_EMBD, 1},
            {"ffn_norm", 0, GB_EMBD, 1},        {"ffn_gate", 1, GB_EMBD, GB_FF},
            {"ffn_up", 1, GB_EMBD, GB_FF},      {"ffn_down", 1, GB_FF, GB_EMBD},
            {"ffn_sub_norm", 0, GB_FF, 1},
        };
        for (size_t i = 0; i < sizeof L / sizeof L[0]; i++) {
            snprintf(k, sizeof k, "blk.%u.%s.weight", il, L[i].n);
            gb_model_tensor(&b, o, k, L[i].kind ? BN_GGML_I2_S : norm, L[i].ne0, L[i].ne1);
        }
    }
    gb_model_tensor(&b, o, "output_norm.weight", norm, GB_EMBD, 1);
    if (o->with_output) gb_model_tensor(&b, o, "output.weight", BN_GGML_F32, GB_EMBD, GB_VOCAB);
    uint8_t *file = gb_finish(&b, size);
    gb_free(&b);
    return file;
}

// A model loaded from a gb_model file in memory; the buffer outlives the model.
typedef struct gb_loaded {
    uint8_t *buf;
    bn_model *m;
} gb_loaded;

// 0, or -1 with err, the buffer then freed too.
static inline int gb_load(const gb_model_opts *o, gb_loaded *b, bn_error *err) {
    size_t n;
    bn_gguf *g;
    b->m = NULL;
    b->buf = gb_model(o, &n);
    if (bn_gguf_open_memory(b->buf, n, &g, err) == 0) {
        if (bn_model_from_gguf(g, &b->m, err) == 0) return 0;
        bn_gguf_close(g);
    }
    free(b->buf);
    b->buf = NULL;
    return -1;
}

static inline void gb_loaded_free(gb_loaded *b) {
    bn_model_free(b->m);
    free(b->buf);
}

#endif
