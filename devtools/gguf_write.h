// gguf_write.h - a streaming GGUF v3 writer.
//
// Files of a gigabyte and more are written with little memory: metadata and tensor
// infos are declared first (the metadata is serialized into a buffer as it comes,
// a few MB even for a 128k-token vocabulary), then each tensor's bytes are streamed
// in declaration order, in chunks of any size. The header is written when the first
// tensor data arrives (or at close), data offsets are aligned to the file's
// alignment and the writer inserts the zero padding between tensors itself.
//
//   bn_gguf_writer *w;
//   bn_gguf_writer_open(path, 32, &w, err);
//   bn_gguf_writer_kv_str(w, "general.architecture", "bitnet-b1.58", err);
//   bn_gguf_writer_add_tensor(w, "x", 2, (uint64_t[]){128, 64}, BN_GGML_F32, err);
//   bn_gguf_writer_write(w, chunk, n, err);   // ... until every tensor is complete
//   bn_gguf_writer_close(w, err);             // always frees w
//
// Every value is written little-endian whatever the host. A failed call leaves the
// writer usable only for bn_gguf_writer_close (which then reports failure).
#ifndef BN_GGUF_WRITE_H
#define BN_GGUF_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "gguf.h"

#define BN_GGUF_DEFAULT_ALIGNMENT 32 // gguf spec default when general.alignment is absent

typedef struct bn_gguf_writer bn_gguf_writer;

// Creates (truncates) path. alignment: a power of two; when it is not the default
// 32 the key general.alignment is added to the metadata automatically.
int bn_gguf_writer_open(const char *path, uint32_t alignment, bn_gguf_writer **out,
                        bn_error *err);

// ---- metadata: only before the first tensor data is written ----------------
// Scalar of any numeric or bool type; value points to the matching C type
// (uint8_t, int8_t, ..., float for FLOAT32, double for FLOAT64, bool for BOOL).
int bn_gguf_writer_kv(bn_gguf_writer *w, const char *key, bn_gguf_type type,
                      const void *value, bn_error *err);
int bn_gguf_writer_kv_u32(bn_gguf_writer *w, const char *key, uint32_t v, bn_error *err);
int bn_gguf_writer_kv_i32(bn_gguf_writer *w, const char *key, int32_t v, bn_error *err);
int bn_gguf_writer_kv_u64(bn_gguf_writer *w, const char *key, uint64_t v, bn_error *err);
int bn_gguf_writer_kv_f32(bn_gguf_writer *w, const char *key, float v, bn_error *err);
int bn_gguf_writer_kv_bool(bn_gguf_writer *w, const char *key, bool v, bn_error *err);
int bn_gguf_writer_kv_str(bn_gguf_writer *w, const char *key, const char *v, bn_error *err);
int bn_gguf_writer_kv_strn(bn_gguf_writer *w, const char *key, const char *v, size_t len,
                           bn_error *err);
// A whole numeric/bool array from n host-order elements of the C type of elem_type.
int bn_gguf_writer_kv_array(bn_gguf_writer *w, const char *key, bn_gguf_type elem_type,
                            const void *data, uint64_t n, bn_error *err);
// An array filled element by element (strings need this form): declare its
// length, then push exactly n elements before any other call.
int bn_gguf_writer_begin_array(bn_gguf_writer *w, const char *key, bn_gguf_type elem_type,
                               uint64_t n, bn_error *err);
int bn_gguf_writer_array_str(bn_gguf_writer *w, const char *s, size_t len, bn_error *err);
int bn_gguf_writer_array_elem(bn_gguf_writer *w, const void *value, bn_error *err);

// Declares the next tensor: n_dims in 1..4, ne[0] the contiguous dimension. Its
// byte size comes from bn_ggml_type_nbytes and its offset from the ones before.
int bn_gguf_writer_add_tensor(bn_gguf_writer *w, const char *name, uint32_t n_dims,
                              const uint64_t *ne, uint32_t type, bn_error *err);

// ---- data: tensors in declaration order ------------------------------------
// Appends n bytes of tensor data; a chunk may complete one tensor and run into
// the next. Writing past the last declared byte is an error.
int bn_gguf_writer_write(bn_gguf_writer *w, const void *data, size_t n, bn_error *err);
// Name, byte size and bytes still missing of the tensor the next write goes to;
// -1 when every tensor is complete.
int64_t bn_gguf_writer_next_tensor(const bn_gguf_writer *w, const char **name,
                                   uint64_t *nbytes, uint64_t *remaining);

// Total file size once complete (valid after the last add_tensor).
uint64_t bn_gguf_writer_file_size(const bn_gguf_writer *w);

// Checks that every tensor was written in full, flushes and closes the file, and
// frees w (also on failure, and when w is NULL). Does not delete a partial file.
int bn_gguf_writer_close(bn_gguf_writer *w, bn_error *err);

#endif
