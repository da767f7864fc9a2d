// rmsnorm_quant.cu - RMSNorm + int8 quantization of a batch of tokens (prefill).
//
// One block of BN_NQ_THREADS per token (norm_quant.cuh); writes the codes q[t, :],
// the quantization scale s[t] and qsum[t] = sum(q[t, :]) the GEMM's epilogue
// needs. The decode path normalizes inside its GEMVs instead (ternary_gemv.cu).
// CPU twin: rmsnorm + bn_quantize_i8.
#include "cuda_kernels.cuh"
#include "norm_quant.cuh"
#include "pdl.cuh"
#include "smem.cuh"

__global__ void __launch_bounds__(BN_NQ_THREADS)
bn_rmsnorm_quant_kernel(const float *__restrict__ x, int64_t ldx, const float *__restrict__ w, int n,
                        float eps, int mode, int8_t *__restrict__ q, float *__restrict__ s,
                        int32_t *__restrict__ qsum) {
    extern __shared__ float hs[]; // n floats
    bn_pdl_wait();
    bn_pdl_trigger();
    const int t = blockIdx.x;
    int8_t *qt = q + (int64_t)t * n;
    float sc;
    int qs;
    bn_block_norm_quant(x + t * ldx, n, w, eps, mode, hs, &sc, &qs, [&](int i, int v) { qt[i] = (int8_t)v; });
    if (threadIdx.x == 0) {
        s[t] = sc;
        qsum[t] = qs;
    }
}

cudaError_t bn_cuda_rmsnorm_quant(const float *x, int64_t ldx, const float *w, int n_tok, int n,
                                  float eps, bn_nq_mode mode, int8_t *q, float *s, int32_t *qsum, bool pdl,
                                  cudaStream_t st) {
    if (n_tok <= 0) return cudaSuccess;
    if (n <= 0 || n % 4) return cudaErrorInvalidValue;
    const size_t smem = sizeof(float) * (size_t)n;
    static size_t allowed = 0; // the widest row allowed so far (smem.cuh)
    if (smem > allowed) {
        const cudaError_t e = bn_cuda_allow_smem(bn_rmsnorm_quant_kernel, smem);
        if (e != cudaSuccess) return e;
        allowed = smem;
    }
    return bn_launch(pdl, bn_rmsnorm_quant_kernel, dim3(n_tok), dim3(BN_NQ_THREADS), smem, st, x, ldx, w, n, eps,
                     mode, q, s, qsum);
}

// 0b11 -> 0b01 in every 2-bit field: m marks fields whose two bits are both set.
__global__ void bn_i2s_sanitize_kernel(uint32_t *w, int64_t nwords) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < nwords;
         i += (int64_t)gridDim.x * blockDim.x) {
        const uint32_t x = w[i];
        const uint32_t m = x & (x >> 1) & 0x55555555u;
        if (m) w[i] = x ^ (m << 1);
    }
}

cudaError_t bn_cuda_i2s_sanitize(uint8_t *w, int64_t nbytes, cudaStream_t st) {
    const int64_t nwords = nbytes / 4; // I2_S rows are K/4 bytes, K % 128 == 0
    if (nwords <= 0) return cudaSuccess;
    const int64_t blocks = (nwords + 255) / 256;
    bn_i2s_sanitize_kernel<<<(unsigned)(blocks < 65535 ? blocks : 65535), 256, 0, st>>>(
        reinterpret_cast<uint32_t *>(w), nwords);
    return cudaGetLastError();
}
