// rope.cuh - rotary embedding of one head element, for the decode attention
// (attention_decode.cu) and the prefill rope_kv.cu.     CPU twin: cpu/ops.c rope
//
// The angles are built as ggml and cpu/ops.c build them: theta_i = p * ts^i as a
// running float product (ts = powf(base, -2/n_rot) on the host); a per-pair pow,
// even in double, differs by ulps that grow with i. The rotation is one product
// and one fused multiply-add, as clang compiles ggml's rope and cpu/ops.c does it.
#ifndef BN_CUDA_ROPE_CUH
#define BN_CUDA_ROPE_CUH

// cos/sin of pairs i < half at position p into cs/sn, by the block's threads.
__device__ __forceinline__ void bn_rope_table(int p, int half, float ts, float *cs, float *sn) {
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float theta = (float)p;
        for (int k = 0; k < i; k++) theta = __fmul_rn(theta, ts);
        sincosf(theta, &sn[i], &cs[i]);
    }
}

// Element d of a head after RoPE: pairs (i, i + n_rot/2) when neox (the BitNet
// families), else adjacent (2i, 2i + 1) (llama); dimensions from n_rot on pass.
__device__ __forceinline__ float bn_rope_elem(const float *head, int d, int n_rot, bool neox, const float *cs,
                                              const float *sn) {
    if (d >= n_rot) return head[d];
    const int half = n_rot / 2;
    const bool first = neox ? d < half : d % 2 == 0;     // the pair's first element
    const int i = neox ? (first ? d : d - half) : d / 2; // the pair
    const int a = neox ? i : 2 * i, step = neox ? half : 1;
    const float x0 = head[a], x1 = head[a + step];
    return first ? __fmaf_rn(x0, cs[i], -__fmul_rn(x1, sn[i])) : __fmaf_rn(x0, sn[i], __fmul_rn(x1, cs[i]));
}

#endif
