// nq_mode.h - what a bitlinear input is made of (core/model.h: the families), for
// the norm + quantize code of every CUDA kernel and for the C tests that drive it.
//   BN_NQ_RELU2 / BN_NQ_SILU  row t is [gate(n) | up(n)] (ldx = 2n) and the vector
//                             is relu(gate)^2 * up / silu(gate) * up, the FFN
//                             activation fused into the load (SiLU as ggml's SIMD
//                             computes it: cpu/kernels_scalar.c bn_silu_mul_scalar)
//   BN_NQ_NO_NORM             no RMSNorm (the llama family's Wo and Wdown): the
//                             vector itself is quantized; the norm weight passed
//                             must be all ones
// 0 is a plain row with its norm; 1 (or true) is the BitNet b1.58 relu^2 GLU.
#ifndef BN_CUDA_NQ_MODE_H
#define BN_CUDA_NQ_MODE_H

typedef int bn_nq_mode;
#define BN_NQ_RELU2 1
#define BN_NQ_SILU 2
#define BN_NQ_GLU (BN_NQ_RELU2 | BN_NQ_SILU)
#define BN_NQ_NO_NORM 4

#endif
