// weights_file.h - trained weights to put into a GGUF model (train/export.py).
//
// The format is the simplest thing a training script can write and this reader
// can check completely; the GGUF writer does the rest (layout, alignment,
// metadata). All numbers little-endian:
//   "BNWEIGHT"  u32 version (1)  u32 tensor count
//   per tensor, in the GGUF's tensor order:
//     u32 name length, name bytes, u32 kind, u32 n_dims, u64 ne[n_dims] (ne[0]
//     contiguous), then the data of its kind:
//       BN_WEIGHTS_F32      n float32
//       BN_WEIGHTS_F16      n float16
//       BN_WEIGHTS_TERNARY  n int8 in {-1, 0, 1}, then the float32 scale
//                           (the real weight is scale * t); packed to I2_S here
#ifndef BN_WEIGHTS_FILE_H
#define BN_WEIGHTS_FILE_H

#include <stdint.h>

#include "error.h"
#include "gguf_write.h"

enum { BN_WEIGHTS_F32 = 0, BN_WEIGHTS_F16 = 1, BN_WEIGHTS_TERNARY = 2 };

typedef struct bn_weights_file bn_weights_file;

int bn_weights_open(const char *path, bn_weights_file **out, bn_error *err);

// Reads the next tensor, checks that it is `name` with shape ne[0..n_dims) and a
// kind that gives ggml_type (F32, F16 or I2_S), and writes its bytes to w.
int bn_weights_copy_next(bn_weights_file *f, const char *name, uint32_t n_dims,
                         const uint64_t *ne, uint32_t ggml_type, bn_gguf_writer *w,
                         bn_error *err);

// Checks that every tensor was read and nothing follows; frees f (also on failure).
int bn_weights_close(bn_weights_file *f, bn_error *err);

#endif
