// bench_cuda.c - CUDA kernel roofline and whole-model timings.
//
//   bench_cuda [MODEL.gguf] [--json | --json-out FILE] [--quick] [--model-only]
//
// 1. Device-to-device copy bandwidth (read + write of 256 MiB): the reference.
// 2. Each kernel on the 2B-4T shapes, weights (or KV cache) read from HBM
//    (cuda_bench.cu rotates copies past the L2): time, bytes, GB/s and % of the
//    copy bandwidth for the memory-bound decode kernels, TFLOP/s or tokens/s
//    for the compute-bound prefill ones, and the GEMV/GEMM crossover.
// 3. With a model (e.g. `bitnet-gpu make-model --preset 2b-4t`): create() split
//    into context and upload, decode ms/token at contexts 128 / 1024 / 4096 with
//    graphs and PDL and without each, a per-kernel table of one decode step,
//    prefill tokens/s at 512 and 4096 tokens, and the decode roofline (weight
//    bytes a step reads / copy bandwidth).
// --json prints everything as one JSON object instead of tables (--json-out
// FILE: tables on stdout and the JSON into FILE); --quick skips the slow variants;
// --model-only skips the kernel table (the model's timings, beside the copy
// bandwidth). Without a usable GPU it prints "no CUDA device: <reason>" (or
// {"cuda": false, "reason": ...}) and exits 0, or 1 with BITNET_REQUIRE_GPU=1.
// It exits 1 when a kernel, the model run or its profile failed (the rest is
// still timed and printed).
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "clock.h"
#include "model.h"

#ifdef BITNET_CUDA
#include "../cuda/cuda_testing.cuh"

static bool json;
static bool failed; // a kernel or the model run failed: exit 1, whatever else was timed
static double copy_gbs;
static cJSON *out_kernels, *out_model;

static void kernel_row(const char *name, bn_cuda_bench_op op, int K, int M, int n, int iters) {
    bn_cuda_bench_result r;
    bn_error err = {{0}};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kernel", name);
    cJSON_AddNumberToObject(o, "K", K);
    cJSON_AddNumberToObject(o, "M", M);
    cJSON_AddNumberToObject(o, "n", n);
    cJSON_AddItemToArray(out_kernels, o);
    if (bn_cuda_bench_kernel(op, K, M, n, iters, &r, &err)) {
        cJSON_AddStringToObject(o, "error", err.msg);
        if (!json) printf("%-30s %6d x %-6d n=%-5d error: %s\n", name, K, M, n, err.msg);
        failed = true;
        return;
    }
    const double gbs = r.bytes / r.us / 1e3, tflops = r.flops / r.us / 1e6;
    cJSON_AddNumberToObject(o, "us", r.us);
    cJSON_AddNumberToObject(o, "bytes", r.bytes);
    cJSON_AddNumberToObject(o, "gbs", gbs);
    cJSON_AddNumberToObject(o, "pct_of_copy", 100.0 * gbs / copy_gbs);
    cJSON_AddNumberToObject(o, "tflops", tflops);
    cJSON_AddNumberToObject(o, "copies", r.copies);
    if (n > 1 && op != BN_CUDA_BENCH_ATTN_PREFILL) cJSON_AddNumberToObject(o, "tok_s", n / (r.us / 1e6));
    if (json) return;
    printf("%-30s %6d x %-6d n=%-5d %10.2f us %9.2f MB %7.1f GB/s %5.1f%% %8.2f TFLOP/s", name, K, M, n, r.us,
           r.bytes / 1e6, gbs, 100.0 * gbs / copy_gbs, tflops);
    if (n > 1 && op != BN_CUDA_BENCH_ATTN_PREFILL) printf(" %9.0f tok/s", n / (r.us / 1e6));
    printf("\n");
}

static void kernels(bool quick) {
    static const int shapes[][2] = {{2560, 3840}, {2560, 2560}, {2560, 13824}, {6912, 2560}}; // K x M: qkv o gu down
    if (!json)
        printf("%-30s %15s %-7s %13s %12s %12s %6s %15s\n", "kernel (weights from HBM)", "K x M", "tokens",
               "time", "bytes", "bandwidth", "copy", "arithmetic");
    for (int i = 0; i < 4; i++) kernel_row("ternary_gemv", BN_CUDA_BENCH_GEMV, shapes[i][0], shapes[i][1], 1, 200);
    for (int i = 0; i < 4; i++)
        kernel_row("ternary_gemv, norm in prologue", BN_CUDA_BENCH_GEMV_NORM, shapes[i][0], shapes[i][1], 1, 200);
    for (int i = 0; i < 4; i++)
        kernel_row("ternary_gemv + norm, last block", BN_CUDA_BENCH_GEMV_LAST, shapes[i][0], shapes[i][1], 1, 200);
    for (int bps = 2; bps <= 4; bps *= 2) { // the backend uses one block per SM
        bn_cuda_bench_gemv_blocks_per_sm(bps);
        char name[64];
        snprintf(name, sizeof name, "ternary_gemv, %d blocks/SM", bps);
        for (int i = 0; i < 4; i++) kernel_row(name, BN_CUDA_BENCH_GEMV, shapes[i][0], shapes[i][1], 1, 200);
    }
    bn_cuda_bench_gemv_blocks_per_sm(1);
    // The GEMV/GEMM crossover on the widest projection.
    static const int ns[] = {2, 4, 8};
    for (int i = 0; i < 3; i++) kernel_row("ternary_gemv", BN_CUDA_BENCH_GEMV, 2560, 13824, ns[i], 100);
    static const int gs[] = {1, 4, 8, 16, 64};
    for (int i = 0; i < 5; i++) kernel_row("norm + dp4a gemm", BN_CUDA_BENCH_GEMM, 2560, 13824, gs[i], 50);
    for (int i = 0; i < 5; i++) kernel_row("norm + mma gemm", BN_CUDA_BENCH_GEMM_MMA, 2560, 13824, gs[i], 50);
    // The same GEMM with blocks of 64 and 32 tokens instead of 128 (BITNET_CUDA_GEMM_TILE).
    static const int narrow[] = {8, 16, 32, 64};
    for (int tile = 64; tile >= 32; tile /= 2) {
        char name[64];
        snprintf(name, sizeof name, "mma gemm, %d-token tiles", tile);
        bn_cuda_bench_gemm_tile(tile);
        for (int i = 0; i < 4; i++) kernel_row(name, BN_CUDA_BENCH_GEMM_MMA_ONLY, 2560, 13824, narrow[i], 50);
    }
    bn_cuda_bench_gemm_tile(128);
    for (int i = 0; i < 4; i++)
        kernel_row("mma gemm (codes ready)", BN_CUDA_BENCH_GEMM_MMA_ONLY, 2560, 13824, narrow[i], 50);
    for (int i = 0; i < 4; i++)
        kernel_row("norm + dp4a gemm", BN_CUDA_BENCH_GEMM, shapes[i][0], shapes[i][1], 512, quick ? 3 : 10);
    for (int n = 512; n <= 4096; n *= 8)
        for (int i = 0; i < 4; i++) {
            kernel_row("norm + mma gemm", BN_CUDA_BENCH_GEMM_MMA, shapes[i][0], shapes[i][1], n, quick ? 3 : 10);
            kernel_row("mma gemm (codes ready)", BN_CUDA_BENCH_GEMM_MMA_ONLY, shapes[i][0], shapes[i][1], n,
                       quick ? 3 : 10);
        }
    // The head is 657 MB (f16) / 328 MB (int8): always from HBM. 64 rows: one
    // pass for a batch of 64 streams.
    static const int head_rows[] = {1, 16, 64};
    for (int i = 0; i < 3; i++) {
        const int n = head_rows[i];
        kernel_row("lm_head (cublas f16)", BN_CUDA_BENCH_LM_HEAD, 2560, 128256, n, 20);
        kernel_row("lm_head f16 gemv+argmax", BN_CUDA_BENCH_HEAD_F16, 2560, 128256, n, 20);
        kernel_row("lm_head q8 gemv+argmax", BN_CUDA_BENCH_HEAD_Q8, 2560, 128256, n, 20);
    }
    static const int ctx[] = {128, 1024, 4096};
    for (int i = 0; i < 3; i++) kernel_row("attention decode (ctx = K)", BN_CUDA_BENCH_ATTN_DECODE, ctx[i], 1, 1, 200);
    for (int i = 0; i < 3; i++)
        kernel_row("attention decode + norm, last", BN_CUDA_BENCH_ATTN_DECODE_NORM, ctx[i], 1, 1, 200);
    static const int short_ctx[] = {32, 128, 256}; // the one-kernel form holds at most 256 keys
    for (int i = 0; i < 3; i++)
        kernel_row("attention decode, one kernel", BN_CUDA_BENCH_ATTN_DECODE_SHORT, short_ctx[i], 1, 1, 200);
    for (int i = 0; i < 2; i++) // the split pair at the same contexts, for the crossover
        kernel_row("attention decode (ctx = K)", BN_CUDA_BENCH_ATTN_DECODE, short_ctx[2 * i], 1, 1, 200);
    static const int splits[] = {8, 16, 64}; // M: splits instead of the backend's choice (32 at 4096)
    for (int i = 0; i < 3; i++)
        kernel_row("attention decode, M splits", BN_CUDA_BENCH_ATTN_DECODE, 4096, splits[i], 1, 200);
    kernel_row("attention prefill", BN_CUDA_BENCH_ATTN_PREFILL, 128, 1, 512, 20);
    kernel_row("attention prefill", BN_CUDA_BENCH_ATTN_PREFILL, 128, 1, 4096, quick ? 2 : 5);
}

// ---- the whole model -------------------------------------------------------------

typedef struct model_run {
    bn_model *m;
    const bn_backend_ops *ops;
    bn_backend *be;
    int32_t *toks, *pos;
    int n_ctx;
} model_run;

static int open_backend(model_run *r, int max_batch, bool q8_head, bn_error *err) {
    bn_backend_config cfg = {.n_ctx = r->n_ctx, .max_batch = max_batch, .lm_head_q8 = q8_head};
    return r->ops->create(r->m, &cfg, &r->be, err);
}

// Mean ms/token of `steps` greedy decode steps ending at position ctx-1, after a
// prefill of the positions before them.
static double decode_at(model_run *r, int ctx, int steps, bn_error *err) {
    const int first = ctx - steps;
    int32_t id = 0;
    if (r->ops->forward(r->be, r->toks, r->pos, NULL, first, NULL, false, err)) return -1;
    int32_t p = first;
    if (r->ops->forward_argmax(r->be, &r->toks[first], &p, NULL, 1, &id, err)) return -1; // eager, then capture
    const double t0 = bn_now_ms();
    for (int i = 1; i < steps; i++) {
        p = first + i;
        if (r->ops->forward_argmax(r->be, &id, &p, NULL, 1, &id, err)) return -1;
    }
    return (bn_now_ms() - t0) / (steps - 1);
}

// ms of a prefill of n tokens from position 0 (argmax of the last), best of 3.
static double prefill(model_run *r, int n, bn_error *err) {
    double best = -1;
    for (int rep = 0; rep < 3; rep++) {
        int32_t id;
        const double t0 = bn_now_ms();
        if (r->ops->forward_argmax(r->be, r->toks, r->pos, NULL, n, &id, err)) return -1;
        const double ms = bn_now_ms() - t0;
        if (best < 0 || ms < best) best = ms;
    }
    return best;
}

static void set_variant(const char *graph, const char *pdl) {
    setenv("BITNET_CUDA_GRAPH", graph, 1);
    setenv("BITNET_CUDA_PDL", pdl, 1);
}

static void profile(model_run *r, int ctx, cJSON *arr) {
    bn_error err = {{0}};
    bn_cuda_prof_row rows[64];
    int n = 0;
    double total = 0;
    if (r->ops->forward(r->be, r->toks, r->pos, NULL, ctx - 1, NULL, false, &err) ||
        bn_cuda_profile_step(r->be, r->toks[ctx - 1], ctx - 1, rows, 64, &n, &total, &err)) {
        if (!json) printf("profile: %s\n", err.msg);
        failed = true;
        return;
    }
    if (!json) printf("\none decode step at context %d, eager with an event after each launch (%.3f ms):\n", ctx, total);
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "context", ctx);
        cJSON_AddStringToObject(o, "kernel", rows[i].name);
        cJSON_AddNumberToObject(o, "calls", rows[i].calls);
        cJSON_AddNumberToObject(o, "ms", rows[i].ms);
        cJSON_AddNumberToObject(o, "share", rows[i].ms / total);
        cJSON_AddItemToArray(arr, o);
        if (!json)
            printf("  %-32s %4d calls %8.3f ms %5.1f%%  %6.2f us/call\n", rows[i].name, rows[i].calls, rows[i].ms,
                   100.0 * rows[i].ms / total, 1e3 * rows[i].ms / rows[i].calls);
    }
}

static void model_bench(const char *path, bool quick) {
    bn_error err = {{0}};
    model_run r = {0};
    if (bn_model_load(path, &r.m, &err)) {
        cJSON_AddStringToObject(out_model, "error", err.msg);
        if (!json) printf("model: %s\n", err.msg);
        failed = true;
        return;
    }
    r.ops = bn_backend_find("cuda");
    r.n_ctx = r.m->hp.n_ctx_train < 4096 ? (int)r.m->hp.n_ctx_train : 4096;
    r.toks = malloc(sizeof(int32_t) * r.n_ctx);
    r.pos = malloc(sizeof(int32_t) * r.n_ctx);
    for (int i = 0; i < r.n_ctx; i++) {
        r.toks[i] = (int32_t)((i * 7919u + 13u) % r.m->hp.n_vocab);
        r.pos[i] = i;
    }
    cJSON_AddStringToObject(out_model, "path", path);

    set_variant("1", "1");
    double t0 = bn_now_ms();
    if (open_backend(&r, 512, false, &err)) goto fail;
    const double create_ms = bn_now_ms() - t0;
    // What a decode step reads, as the backend holds the weights (its decode_bytes).
    const double bytes = (double)r.ops->decode_bytes(r.be);
    cJSON_AddNumberToObject(out_model, "decode_bytes", bytes);
    cJSON_AddNumberToObject(out_model, "roofline_ms_per_token", bytes / (copy_gbs * 1e6));
    bn_cuda_stats st;
    bn_cuda_backend_stats(r.be, &st);
    cJSON_AddNumberToObject(out_model, "create_ms", create_ms);
    cJSON_AddNumberToObject(out_model, "context_ms", st.context_ms);
    cJSON_AddNumberToObject(out_model, "upload_ms", st.upload_ms);
    cJSON_AddNumberToObject(out_model, "device_mib", st.device_bytes / 1048576.0);
    cJSON_AddNumberToObject(out_model, "gemv_max", st.gemv_max);
    cJSON_AddNumberToObject(out_model, "attention_splits", st.attd_split);
    cJSON_AddNumberToObject(out_model, "attention_one_kernel_below", st.attd_short);
    cJSON_AddNumberToObject(out_model, "gemm_tile", st.gemm_tile);
    if (st.tq) cJSON_AddStringToObject(out_model, "tq_kernel", st.tq == 2 ? "mma" : "dp4a");
    cJSON_AddNumberToObject(out_model, "persistent_below", st.persist);
    cJSON_AddNumberToObject(out_model, "tune_ms", st.tune_ms);
    cJSON *tune = cJSON_AddArrayToObject(out_model, "gemv_vs_gemm_ffn");
    for (int i = 0; i < st.tuned_sizes; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "tokens", st.tuned_batch[i]);
        cJSON_AddNumberToObject(o, "gemv_us", st.tuned_gemv_us[i]);
        cJSON_AddNumberToObject(o, "gemm_us", st.tuned_gemm_us[i]);
        cJSON_AddItemToArray(tune, o);
    }
    if (!json)
        printf("\nmodel %s: create %.0f ms (device checks + context + allocations %.0f ms, upload %.0f ms = %.1f GB/s), "
               "device memory %.0f MiB, GEMV up to %d tokens, %d attention splits, one-kernel attention below "
               "position %d, GEMM tiles of %d tokens (0: by batch), persistent kernel below position %d\n",
               path, create_ms, st.context_ms, st.upload_ms, st.device_bytes / st.upload_ms / 1e6,
               st.device_bytes / 1048576.0, st.gemv_max, st.attd_split, st.attd_short, st.gemm_tile, st.persist);
    if (!json && st.tq) printf("TQ bitlinears on the %s kernel\n", st.tq == 2 ? "tensor-core (mma)" : "dp4a");
    if (!json && st.tuned_sizes) {
        printf("GEMV limit timed at create (%.1f ms), an FFN from HBM:", st.tune_ms);
        for (int i = 0; i < st.tuned_sizes; i++)
            printf(" %d tokens GEMV %.1f / GEMM %.1f us%s", st.tuned_batch[i], st.tuned_gemv_us[i], st.tuned_gemm_us[i],
                   i + 1 < st.tuned_sizes ? ";" : "\n");
    }

    // Decode at three contexts (graphs + PDL, the default).
    static const int ctxs[] = {128, 1024, 4096};
    cJSON *dec = cJSON_AddArrayToObject(out_model, "decode");
    for (int i = 0; i < 3; i++) {
        if (ctxs[i] > r.n_ctx) continue;
        const double ms = decode_at(&r, ctxs[i], 64, &err);
        if (ms < 0) goto fail;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "context", ctxs[i]);
        cJSON_AddNumberToObject(o, "ms_per_token", ms);
        cJSON_AddNumberToObject(o, "roofline_pct", 100.0 * bytes / (copy_gbs * 1e6) / ms);
        cJSON_AddItemToArray(dec, o);
        bn_cuda_backend_stats(r.be, &st);
        if (!st.graphs) {
            cJSON_AddStringToObject(o, "graphs_off", st.graph_error);
            if (!json) printf("  (no CUDA graphs: %s)\n", st.graph_error);
        }
        if (!json)
            printf("decode at context %4d: %.3f ms/token (%.0f tok/s), %.0f%% of the copy-bandwidth roofline "
                   "(%.0f MB a step / %.0f GB/s = %.3f ms)\n",
                   ctxs[i], ms, 1e3 / ms, 100.0 * bytes / (copy_gbs * 1e6) / ms, bytes / 1e6, copy_gbs,
                   bytes / (copy_gbs * 1e6));
    }
    { // the int8 head (--lm-head q8): 328 MB instead of 657 a step
        model_run q = r;
        q.be = NULL;
        if (open_backend(&q, 512, true, &err)) goto fail;
        const double ms = decode_at(&q, 128, 64, &err);
        r.ops->destroy(q.be);
        if (ms < 0) goto fail;
        cJSON_AddNumberToObject(out_model, "decode_q8_head_ms_per_token", ms);
        if (!json) printf("decode at context  128 with --lm-head q8: %.3f ms/token (%.0f tok/s)\n", ms, 1e3 / ms);
    }
    cJSON *prof = cJSON_AddArrayToObject(out_model, "profile");
    profile(&r, 128, prof);
    if (r.n_ctx >= 4096) profile(&r, 4096, prof);

    // Prefill: 512 tokens, and 4096 in chunks of 512 and in one (the default
    // max_batch, 4096).
    cJSON *pre = cJSON_AddArrayToObject(out_model, "prefill");
    for (int chunk = 512; chunk <= 4096; chunk *= 8) {
        if (chunk != 512) {
            r.ops->destroy(r.be);
            r.be = NULL;
            if (open_backend(&r, chunk, false, &err)) goto fail;
        }
        for (int n = 512; n <= r.n_ctx; n *= 8) {
            if (n < chunk && chunk != 512) continue;
            const double ms = prefill(&r, n, &err);
            if (ms < 0) goto fail;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "tokens", n);
            cJSON_AddNumberToObject(o, "chunk", chunk);
            cJSON_AddNumberToObject(o, "ms", ms);
            cJSON_AddNumberToObject(o, "tok_s", n / (ms / 1e3));
            cJSON_AddItemToArray(pre, o);
            if (!json) printf("prefill %4d tokens in chunks of %4d: %8.2f ms = %6.0f tok/s\n", n, chunk, ms, n / (ms / 1e3));
        }
    }
    r.ops->destroy(r.be);
    r.be = NULL;

    // Decode with graphs and PDL switched off in turn, and with the opt-in paths on.
    if (!quick) {
        typedef struct variant {
            const char *graph, *pdl, *name, *env[2]; // env: NAME=VALUE switches set for this run
            int ctx;
            bool q8; // --lm-head q8
        } variant;
        static const variant variants[] = {
            {"1", "0", "graphs, no PDL", {NULL, NULL}, 128, false},
            {"0", "1", "PDL, no graphs", {NULL, NULL}, 128, false},
            {"0", "0", "no graphs, no PDL", {NULL, NULL}, 128, false},
            {"1", "1", "norm in last blocks", {"BITNET_CUDA_NORM=last", NULL}, 128, false},
            {"1", "1", "one-kernel attention", {"BITNET_CUDA_ATTD_SHORT=256", NULL}, 128, false},
            {"1", "1", "persistent kernel", {"BITNET_CUDA_PERSIST=4096", NULL}, 128, false},
            {"1", "1", "persistent, one-kernel attention", {"BITNET_CUDA_PERSIST=4096", "BITNET_CUDA_ATTD_SHORT=256"}, 128, false},
            {"1", "1", "persistent, 64 KiB ring", {"BITNET_CUDA_PERSIST=4096", "BITNET_CUDA_PERSIST_RING=65536"}, 128, false},
            {"1", "1", "persistent, 32 KiB ring", {"BITNET_CUDA_PERSIST=4096", "BITNET_CUDA_PERSIST_RING=32768"}, 128, false},
            {"1", "1", "persistent kernel", {"BITNET_CUDA_PERSIST=4096", NULL}, 1024, false},
            {"1", "1", "persistent kernel", {"BITNET_CUDA_PERSIST=4096", NULL}, 4096, false},
            {"1", "1", "persistent kernel, --lm-head q8", {"BITNET_CUDA_PERSIST=4096", NULL}, 128, true}};
        cJSON *var = cJSON_AddArrayToObject(out_model, "decode_variants");
        for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
            const variant *v = &variants[i];
            if (v->ctx > r.n_ctx) continue;
            set_variant(v->graph, v->pdl);
            bn_cuda_switches_set(v->env, 2, true);
            const int ok = open_backend(&r, 512, v->q8, &err);
            bn_cuda_switches_set(v->env, 2, false);
            if (ok) goto fail;
            const double ms = decode_at(&r, v->ctx, 64, &err);
            bn_cuda_stats vs; // did the step replay graphs, or did capture fail (and why)
            bn_cuda_backend_stats(r.be, &vs);
            char why[256], plan[96] = "";
            snprintf(why, sizeof why, "%s", vs.graph_error ? vs.graph_error : "");
            const bool wants_persist = v->env[0] && !strncmp(v->env[0], "BITNET_CUDA_PERSIST=", 20);
            if (wants_persist && vs.persist)
                snprintf(plan, sizeof plan, " (ring %d KiB, %d chunks a layer)", vs.persist_ring / 1024,
                         vs.persist_chunks);
            else if (wants_persist)
                snprintf(plan, sizeof plan, " (no persistent plan: the kernels ran)");
            r.ops->destroy(r.be);
            r.be = NULL;
            if (ms < 0) goto fail;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "variant", v->name);
            cJSON_AddNumberToObject(o, "context", v->ctx);
            cJSON_AddNumberToObject(o, "ms_per_token", ms);
            if (wants_persist) {
                cJSON_AddNumberToObject(o, "persistent_ring_bytes", vs.persist_ring);
                cJSON_AddNumberToObject(o, "persistent_chunks_per_layer", vs.persist_chunks);
            }
            if (why[0]) cJSON_AddStringToObject(o, "graph_error", why);
            cJSON_AddItemToArray(var, o);
            if (!json)
                printf("decode at context %4d, %-32s: %.3f ms/token%s%s%s\n", v->ctx, v->name, ms, plan,
                       why[0] ? ", graph capture failed: " : "", why);
        }
        set_variant("1", "1");
    }
    goto done;
fail:
    cJSON_AddStringToObject(out_model, "error", err.msg);
    if (!json) printf("model run: %s\n", err.msg);
    failed = true;
done:
    if (r.be) r.ops->destroy(r.be);
    free(r.toks);
    free(r.pos);
    bn_model_free(r.m);
}
#endif

// No GPU is no failure, unless one is required (BITNET_REQUIRE_GPU=1: gpu-check.sh).
static int gpu_required(void) {
    const char *require = getenv("BITNET_REQUIRE_GPU");
    return require && strcmp(require, "1") == 0;
}

int main(int argc, char **argv) {
    const char *model = NULL, *json_out = NULL;
    bool want_json = false, quick = false, model_only = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) want_json = true;
        else if (strcmp(argv[i], "--json-out") == 0 && i + 1 < argc) json_out = argv[++i];
        else if (strcmp(argv[i], "--quick") == 0) quick = true;
        else if (strcmp(argv[i], "--model-only") == 0) model_only = true;
        else if (argv[i][0] == '-')
            return fprintf(stderr, "usage: %s [MODEL.gguf] [--json | --json-out FILE] [--quick] [--model-only]\n",
                           argv[0]),
                   2;
        else model = argv[i];
    }
#ifndef BITNET_CUDA
    (void)model, (void)quick, (void)json_out, (void)model_only;
    if (want_json) printf("{\"cuda\": false, \"reason\": \"built without CUDA\"}\n");
    else printf("no CUDA device: built without CUDA\n");
    return gpu_required();
#else
    json = want_json;
    bn_error err = {{0}};
    double init_ms = 0, context_ms = 0;
    const int started = bn_cuda_bench_startup(&init_ms, &context_ms);
    if (bn_cuda_probe_device(&err)) {
        const char *pre = "no CUDA device";
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddBoolToObject(o, "cuda", false);
            cJSON_AddStringToObject(o, "reason", err.msg);
            char *s = cJSON_Print(o);
            printf("%s\n", s);
            free(s);
            cJSON_Delete(o);
        } else {
            printf("%s%s\n", strncmp(err.msg, pre, strlen(pre)) ? "no CUDA device: " : "", err.msg);
        }
        return gpu_required();
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddBoolToObject(root, "cuda", true);
    bn_cuda_bench_result r;
    if (bn_cuda_bench_kernel(BN_CUDA_BENCH_COPY, 8192, 131072, 1, 20, &r, &err)) {
        fprintf(stderr, "copy: %s\n", err.msg);
        cJSON_Delete(root);
        return 1;
    }
    copy_gbs = r.bytes / r.us / 1e3;
    cJSON_AddNumberToObject(root, "copy_gbs", copy_gbs);
    if (started == 0) {
        cJSON_AddNumberToObject(root, "driver_init_ms", init_ms);
        cJSON_AddNumberToObject(root, "context_ms", context_ms);
    }
    if (!json)
        printf("start-up: driver %.0f ms, context %.0f ms\ndevice-to-device copy: %.1f GB/s (read + write)\n\n",
               init_ms, context_ms, copy_gbs);
    out_kernels = cJSON_AddArrayToObject(root, "kernels");
    if (!model_only) kernels(quick);
    out_model = cJSON_AddObjectToObject(root, "model");
    if (model) model_bench(model, quick);
    else if (!json) printf("\n(pass a 2B-4T-shaped GGUF for decode/prefill timings of the whole model)\n");
    int rc = failed;
    char *text = cJSON_Print(root);
    if (json) printf("%s\n", text);
    if (json_out) {
        FILE *f = fopen(json_out, "w");
        if (!f || fprintf(f, "%s\n", text) < 0 || fclose(f)) {
            fprintf(stderr, "error: cannot write %s\n", json_out);
            rc = 1;
        }
    }
    free(text);
    cJSON_Delete(root);
    return rc;
#endif
}
