// bench_cuda.c - CUDA kernel roofline and whole-model timings.
//
//   bench_cuda [MODEL.gguf]
//
// 1. Device-to-device copy bandwidth (read + write of 256 MiB): the reference.
// 2. Each kernel on the 2B-4T shapes: time, bytes it must move, GB/s and % of
//    copy bandwidth (decode GEMVs, the fused norm+GEMV, the LM head: cuBLAS f16
//    and the streaming f16 / int8 GEMVs with the argmax fused, at 1 and 16
//    tokens; the head is 657 MB, so it always streams from HBM, never L2), and
//    the prefill GEMM at 512 tokens in tokens/s.
// 3. With a model (e.g. one written by `bitnet-gpu make-model` at the 2B-4T
//    shape): decode ms/token at context 128 with and without CUDA graphs, and
//    prefill tokens/s at 512 tokens.
// Without a usable GPU it prints "no CUDA device: <reason>" and exits 0.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "model.h"

#ifdef BITNET_CUDA
#include "../cuda/cuda_testing.cuh"

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static double copy_gbs;

static void kernel_row(const char *name, bn_cuda_bench_op op, int K, int M, int n) {
    double us = 0, bytes = 0;
    bn_error err = {{0}};
    if (bn_cuda_bench_kernel(op, K, M, n, 50, &us, &bytes, &err)) {
        printf("%-28s %6d x %-6d n=%-4d  error: %s\n", name, K, M, n, err.msg);
        return;
    }
    const double gbs = bytes / us / 1e3;
    printf("%-28s %6d x %-6d n=%-4d %9.2f us %10.2f MB %8.1f GB/s %6.1f%%", name, K, M, n, us,
           bytes / 1e6, gbs, 100.0 * gbs / copy_gbs);
    if (n > 1) printf("  %10.0f tok/s", n / (us / 1e6));
    printf("\n");
}

// Decode ms/token at context 128 and prefill tok/s at 512 tokens.
static void model_bench(const char *path, bool graphs) {
    setenv("BITNET_CUDA_GRAPH", graphs ? "1" : "0", 1);
    bn_error err = {{0}};
    bn_model *m = NULL;
    if (bn_model_load(path, &m, &err)) {
        printf("model: %s\n", err.msg);
        return;
    }
    const bn_backend_ops *ops = bn_backend_find("cuda");
    bn_backend_config cfg = {.n_ctx = 1024, .max_batch = 512};
    bn_backend *be = NULL;
    const double t0 = now_ms();
    if (ops->create(m, &cfg, &be, &err)) {
        printf("create: %s\n", err.msg);
        bn_model_free(m);
        return;
    }
    const double t_create = now_ms() - t0;
    bn_cuda_stats st;
    bn_cuda_backend_stats(be, &st);
    int32_t toks[512], pos[512];
    for (int i = 0; i < 512; i++) {
        toks[i] = (int32_t)((i * 7919u + 13u) % m->hp.n_vocab);
        pos[i] = i;
    }
    int32_t id = 0;
    double t_prefill = 0;
    for (int rep = 0; rep < 3 && !err.msg[0]; rep++) { // the last of three runs
        const double a = now_ms();
        if (ops->forward_argmax(be, toks, pos, 512, &id, &err)) break;
        t_prefill = now_ms() - a;
    }
    // decode: fill 128 positions, then time 64 steps at positions 128..191
    if (!err.msg[0]) ops->forward(be, toks, pos, 128, NULL, false, &err);
    double t_dec = 0;
    const int steps = 64;
    if (!err.msg[0]) {
        int32_t p = 128;
        ops->forward_argmax(be, &id, &p, 1, &id, &err); // warm-up (graph capture)
        const double a = now_ms();
        for (int i = 0; i < steps && !err.msg[0]; i++) {
            p = 128 + i;
            ops->forward_argmax(be, &id, &p, 1, &id, &err);
        }
        t_dec = (now_ms() - a) / steps;
    }
    if (err.msg[0])
        printf("model run: %s\n", err.msg);
    else
        printf("model (graphs %s): create %.0f ms (upload %.0f ms), device memory %.1f MiB, "
               "prefill 512: %.2f ms = %.0f tok/s, decode at ctx 128: %.3f ms/token = %.1f tok/s\n",
               st.graphs ? "on" : "off", t_create, st.upload_ms, st.device_bytes / 1048576.0,
               t_prefill, 512 / (t_prefill / 1e3), t_dec, 1e3 / t_dec);
    ops->destroy(be);
    bn_model_free(m);
}
#endif

int main(int argc, char **argv) {
#ifndef BITNET_CUDA
    (void)argc;
    (void)argv;
    printf("no CUDA device: built without CUDA\n");
    return 0;
#else
    bn_error err = {{0}};
    if (bn_cuda_probe_device(&err)) {
        const char *pre = "no CUDA device";
        printf("%s%s\n", strncmp(err.msg, pre, strlen(pre)) ? "no CUDA device: " : "", err.msg);
        return 0;
    }
    double us = 0, bytes = 0;
    if (bn_cuda_bench_kernel(BN_CUDA_BENCH_COPY, 8192, 131072, 1, 20, &us, &bytes, &err)) {
        printf("copy: %s\n", err.msg);
        return 1;
    }
    copy_gbs = bytes / us / 1e3;
    printf("device-to-device copy: %.1f GB/s (read + write)\n\n", copy_gbs);
    printf("%-28s %15s %-6s %12s %13s %13s %7s\n", "kernel", "K x M", "tokens", "time", "bytes",
           "bandwidth", "of copy");
    static const int shapes[][2] = {{2560, 2560}, {2560, 640}, {2560, 3840}, {2560, 6912},
                                    {2560, 13824}, {6912, 2560}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        kernel_row("ternary_gemv", BN_CUDA_BENCH_GEMV, shapes[i][0], shapes[i][1], 1);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        kernel_row("ternary_gemv_norm (fused)", BN_CUDA_BENCH_GEMV_NORM, shapes[i][0], shapes[i][1], 1);
    kernel_row("lm_head (cublas f16)", BN_CUDA_BENCH_LM_HEAD, 2560, 128256, 1);
    kernel_row("lm_head f16 gemv+argmax", BN_CUDA_BENCH_HEAD_F16, 2560, 128256, 1);
    kernel_row("lm_head q8 gemv+argmax", BN_CUDA_BENCH_HEAD_Q8, 2560, 128256, 1);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        kernel_row("norm_quant + ternary_gemm", BN_CUDA_BENCH_GEMM, shapes[i][0], shapes[i][1], 512);
    kernel_row("lm_head (cublas f16)", BN_CUDA_BENCH_LM_HEAD, 2560, 128256, 16);
    kernel_row("lm_head f16 gemv+argmax", BN_CUDA_BENCH_HEAD_F16, 2560, 128256, 16);
    kernel_row("lm_head q8 gemv+argmax", BN_CUDA_BENCH_HEAD_Q8, 2560, 128256, 16);
    if (argc > 1) {
        printf("\n");
        model_bench(argv[1], false);
        model_bench(argv[1], true);
    } else {
        printf("\n(pass a 2B-4T-shaped GGUF for decode/prefill timings of the whole model)\n");
    }
    return 0;
#endif
}
