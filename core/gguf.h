// gguf.h - a validating, memory-mapped GGUF (v2, v3) reader.
//
// The whole file is mapped read-only; strings, arrays of numbers and tensor data
// point into the map. Everything is validated at open time (counts against the
// file size, string lengths, dimension products, known tensor types, alignment,
// tensor ranges inside the file and not overlapping, unique names), so code that
// holds an open bn_gguf can index without further checks.
#ifndef BN_GGUF_H
#define BN_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

// GGUF metadata value types (gguf spec numbering).
typedef enum bn_gguf_type {
    BN_GGUF_UINT8 = 0,
    BN_GGUF_INT8 = 1,
    BN_GGUF_UINT16 = 2,
    BN_GGUF_INT16 = 3,
    BN_GGUF_UINT32 = 4,
    BN_GGUF_INT32 = 5,
    BN_GGUF_FLOAT32 = 6,
    BN_GGUF_BOOL = 7,
    BN_GGUF_STRING = 8,
    BN_GGUF_ARRAY = 9,
    BN_GGUF_UINT64 = 10,
    BN_GGUF_INT64 = 11,
    BN_GGUF_FLOAT64 = 12,
    BN_GGUF_TYPE_COUNT
} bn_gguf_type;

// ggml tensor types this project names. The reader knows the block size of every
// standard ggml type (so `inspect` can describe any file); the model loader accepts
// only F32, F16, BF16 and I2_S.
enum {
    BN_GGML_F32 = 0,
    BN_GGML_F16 = 1,
    BN_GGML_BF16 = 30,
    BN_GGML_TQ1_0 = 34, // llama.cpp ternary: repacked to I2_S (ternary_repack.h)
    BN_GGML_TQ2_0 = 35,
    BN_GGML_I2_S = 36, // BitNet ternary, docs/architecture.md: I2_S
};

// A string inside the map: not NUL-terminated.
typedef struct bn_gguf_str {
    const char *data;
    uint64_t len;
} bn_gguf_str;

typedef struct bn_gguf_value bn_gguf_value;

typedef struct bn_gguf_array {
    bn_gguf_type elem_type;
    uint64_t count;
    const void *data;            // numeric/bool elements: raw little-endian in the map
    const bn_gguf_str *strs;     // elem_type == STRING: count strings (owned by bn_gguf)
    const bn_gguf_value *items;  // elem_type == ARRAY: count nested arrays (owned)
} bn_gguf_array;

struct bn_gguf_value {
    bn_gguf_type type;
    union {
        uint64_t u64;  // UINT8/16/32/64
        int64_t i64;   // INT8/16/32/64
        double f64;    // FLOAT32/64
        bool b;        // BOOL
        bn_gguf_str str;
        bn_gguf_array arr;
    };
};

typedef struct bn_gguf_kv {
    bn_gguf_str key;
    bn_gguf_value value;
} bn_gguf_kv;

typedef struct bn_gguf_tensor {
    bn_gguf_str name;
    uint32_t n_dims;
    uint64_t ne[4];      // ne[0] is the contiguous dimension; unused dims are 1
    uint32_t type;       // ggml type
    uint64_t offset;     // relative to the data section
    uint64_t nbytes;
    const uint8_t *data; // inside the map
} bn_gguf_tensor;

typedef struct bn_gguf {
    uint32_t version;
    uint64_t alignment;
    uint64_t n_kv;
    bn_gguf_kv *kv;
    uint64_t n_tensors;
    bn_gguf_tensor *tensors;
    const uint8_t *base;  // start of the file
    size_t size;          // file size
    uint64_t data_offset; // start of the tensor data section
    void *map_;           // private: mmap address (NULL when opened from memory)
} bn_gguf;

// Opens and validates a file. On failure *out is NULL and err says why.
int bn_gguf_open(const char *path, bn_gguf **out, bn_error *err);
// Same, over caller-owned memory that must outlive the bn_gguf (tests, fuzzing).
int bn_gguf_open_memory(const void *data, size_t size, bn_gguf **out, bn_error *err);
void bn_gguf_close(bn_gguf *g);

// Index of a key or tensor by name, or -1.
int64_t bn_gguf_find_key(const bn_gguf *g, const char *key);
int64_t bn_gguf_find_tensor(const bn_gguf *g, const char *name);

// Typed getters: fail with a message naming the key when it is missing or has
// an incompatible type. Integers convert between widths when the value fits.
int bn_gguf_get_u32(const bn_gguf *g, const char *key, uint32_t *out, bn_error *err);
int bn_gguf_get_i64(const bn_gguf *g, const char *key, int64_t *out, bn_error *err);
int bn_gguf_get_f32(const bn_gguf *g, const char *key, float *out, bn_error *err);
int bn_gguf_get_bool(const bn_gguf *g, const char *key, bool *out, bn_error *err);
int bn_gguf_get_str(const bn_gguf *g, const char *key, bn_gguf_str *out, bn_error *err);
// elem_type may be BN_GGUF_TYPE_COUNT to accept any element type.
int bn_gguf_get_arr(const bn_gguf *g, const char *key, bn_gguf_type elem_type,
                    const bn_gguf_array **out, bn_error *err);

// Integer element i of a numeric array as int64 (any integer elem type).
int64_t bn_gguf_arr_int(const bn_gguf_array *a, uint64_t i);

// bytes = storage of a tensor of type `type` with n elements (n a multiple of the
// block size). -1 for an unknown type or a bad element count.
int bn_ggml_type_nbytes(uint32_t type, uint64_t n, uint64_t *bytes);
const char *bn_ggml_type_name(uint32_t type); // "unknown" when unknown
const char *bn_gguf_type_name(bn_gguf_type type);
// Bytes of one value of a scalar gguf type; 0 for string, array and unknown types.
size_t bn_gguf_scalar_size(uint32_t type);

// bn_gguf_str helpers.
bool bn_gguf_str_eq(bn_gguf_str s, const char *cstr);

#endif
