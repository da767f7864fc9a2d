// backend_cpu.c - the CPU backend: state, KV cache and scratch (create/destroy).
//
// Weights are used in place, as I2_S in the model's map (no dequantized copy).
// Everything forward() touches - KV cache, activations, per-thread attention
// scores - is allocated here once, for cfg->max_batch tokens, so the per-token
// path does no allocation, thread creation or I/O. The forward pass itself is in
// forward.c.
#include "backend_cpu.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "../core/gguf.h"
#include "roofline.h"

#define BN_DEFAULT_MAX_BATCH 512

static int cpu_probe(bn_error *err) {
    (void)err;
    return 0; // the CPU is always there; the kernel set is chosen in create()
}

// calloc that counts bytes; large blocks come back as lazily-zeroed pages, so an
// unused KV cache tail costs address space, not memory.
static void *scratch(bn_backend *be, size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (p) be->bytes += (uint64_t)n * size;
    return p;
}

static void cpu_destroy(bn_backend *be) {
    if (!be) return;
    bn_pool_destroy(be->pool);
    free(be->k_cache);
    free(be->v_cache);
    free(be->x);
    free(be->xn);
    free(be->xq);
    free(be->xpacked);
    free(be->xscale);
    free(be->xqsum);
    free(be->xblock);
    free(be->xbsum);
    free(be->acc);
    free(be->q);
    free(be->k);
    free(be->v);
    free(be->att);
    free(be->gate);
    free(be->up);
    free(be->scores);
    free(be->lm_in);
    free(be->head_rows);
    free(be->lm_q);
    free(be->logits);
    free(be->head_q);
    free(be->head_scale);
    free(be);
}

// The int8 LM head (opt-in, lm_head_q8): each vocabulary row gets its own absmax
// scale, so rows with small weights keep their precision. It is the activation
// quantizer of the kernel table (q = rint(x * 127/absmax), SIMD), run on each row,
// the rows split over the pool (each row is quantized the same way whichever
// thread does it): 128256 x 2560 in about 0.25 s on 2 threads, most of it reading
// the f16 head in; the scalar loops this replaced took 0.7 s.
typedef struct head_quant_job {
    bn_backend *be;
    float *rows; // [n_threads][E] scratch
} head_quant_job;

static void quantize_head_worker(void *ctx, int ith, int nth) {
    const head_quant_job *job = ctx;
    bn_backend *be = job->be;
    const bn_model *m = be->m;
    const int64_t E = m->hp.n_embd, V = m->hp.n_vocab;
    float *row = job->rows + ith * E;
    const int64_t per = (V + nth - 1) / nth;
    const int64_t r1 = (ith + 1) * per < V ? (ith + 1) * per : V;
    for (int64_t r = ith * per; r < r1; r++) {
        bn_cpu_table_row(be, &m->output, E, r, row);
        const float s = be->kern->quantize_i8(row, E, be->head_q + r * E, NULL);
        // NaN for a row that is not all finite, whose codes would hide it: its
        // logit is then NaN, and the forward pass reports it.
        be->head_scale[r] = bn_all_finite(row, E) ? 1.0f / s : NAN;
    }
}

static int quantize_head(bn_backend *be, bn_error *err) {
    const bn_model *m = be->m;
    const int64_t E = m->hp.n_embd, V = m->hp.n_vocab;
    be->head_q = scratch(be, (size_t)(V * E), 1);
    be->head_scale = scratch(be, (size_t)V, sizeof(float));
    be->lm_q = scratch(be, (size_t)be->max_batch * E, 1);
    float *rows = malloc((size_t)bn_pool_size(be->pool) * (size_t)E * sizeof(float));
    if (!be->head_q || !be->head_scale || !be->lm_q || !rows) {
        free(rows);
        return bn_errorf(err, "cpu: out of memory for the int8 LM head");
    }
    head_quant_job job = {be, rows};
    bn_pool_run(be->pool, quantize_head_worker, &job);
    free(rows);
    return 0;
}

static int cpu_create(const bn_model *m, const bn_backend_config *cfg_in, bn_backend **out,
                      bn_error *err) {
    *out = NULL;
    const bn_backend_config defaults = {0};
    const bn_backend_config *cfg = cfg_in ? cfg_in : &defaults;
    if (bn_cpu_check_model(m, "cpu", err) != 0) return -1;
    const bn_hparams *hp = &m->hp;

    bn_backend *be = calloc(1, sizeof *be);
    if (!be) return bn_errorf(err, "cpu: out of memory");
    be->m = m;
    be->bytes = sizeof *be;
    if (bn_cpu_kernels_select(cfg->cpu.kernels, &be->kern, err) != 0) goto fail;
    be->n_ctx = cfg->n_ctx > 0 ? cfg->n_ctx : (int)hp->n_ctx_train;
    if ((uint32_t)be->n_ctx > hp->n_ctx_train) {
        bn_errorf(err, "cpu: context %d is longer than the model's %u", be->n_ctx,
                  hp->n_ctx_train);
        goto fail;
    }
    be->n_seq = cfg->n_seq > 0 ? cfg->n_seq : 1;
    be->max_batch = cfg->max_batch > 0 ? cfg->max_batch : BN_DEFAULT_MAX_BATCH;
    if ((int64_t)be->max_batch > (int64_t)be->n_ctx * be->n_seq)
        be->max_batch = be->n_ctx * be->n_seq; // a pass never holds more tokens than the slots
    int n_threads = cfg->cpu.n_threads > 0 ? cfg->cpu.n_threads : bn_physical_cores();
    if (bn_pool_create(n_threads, &be->pool, err) != 0) goto fail;

    const size_t B = (size_t)be->max_batch, E = hp->n_embd, F = hp->n_ff;
    const size_t KV = (size_t)hp->n_head_kv * hp->head_dim;
    const size_t wide = F > E ? F : E; // widest bitlinear input
    // Fused bitlinear outputs: q|k|v, gate|up or one matrix (see forward.c).
    size_t acc_rows = E + 2 * KV;
    if (2 * F > acc_rows) acc_rows = 2 * F;
    be->kv_dim = (int64_t)KV;
    const size_t cache = (size_t)hp->n_layer * (size_t)be->n_seq * (size_t)be->n_ctx * KV;
    be->k_cache = scratch(be, cache, sizeof(uint16_t));
    be->v_cache = scratch(be, cache, sizeof(uint16_t));
    be->x = scratch(be, B * E, sizeof(float));
    be->xn = scratch(be, B * wide, sizeof(float));
    be->xq = scratch(be, B * wide, sizeof(int8_t));
    if (be->kern->pack_token) be->xpacked = scratch(be, (size_t)bn_packed_bytes((int64_t)wide, (int)B), 1);
    be->xscale = scratch(be, B, sizeof(float));
    be->xqsum = scratch(be, B, sizeof(int32_t));
    be->xblock = scratch(be, B * (wide / 256 + 1), sizeof(float));
    be->xbsum = scratch(be, B * (wide / 256 + 1) * 8, sizeof(int32_t));
    be->acc = scratch(be, B * acc_rows, sizeof(int32_t));
    be->q = scratch(be, B * E, sizeof(float));
    be->k = scratch(be, B * KV, sizeof(float));
    be->v = scratch(be, B * KV, sizeof(float));
    be->att = scratch(be, B * E, sizeof(float));
    be->gate = scratch(be, B * F, sizeof(float));
    be->up = scratch(be, B * F, sizeof(float));
    const size_t group = hp->n_head / hp->n_head_kv; // a thread's GQA group of heads
    be->scores = scratch(be, (size_t)n_threads * group * (size_t)be->n_ctx, sizeof(float));
    be->lm_in = scratch(be, B * E, sizeof(float));
    be->head_rows = scratch(be, B, sizeof(int));
    be->logits = scratch(be, (size_t)be->n_seq * hp->n_vocab, sizeof(float));
    if (!be->k_cache || !be->v_cache || !be->x || !be->xn || !be->xq || (be->kern->pack_token && !be->xpacked) ||
        !be->xscale ||
        !be->xqsum || !be->xblock || !be->xbsum || !be->acc || !be->q || !be->k || !be->v || !be->att || !be->gate ||
        !be->up || !be->scores || !be->lm_in || !be->head_rows || !be->logits) {
        bn_errorf(err, "cpu: out of memory for KV cache and scratch (%d x %d tokens, batch %d)",
                  be->n_seq, be->n_ctx, be->max_batch);
        goto fail;
    }
    if (cfg->lm_head_q8 && quantize_head(be, err) != 0) goto fail;
    *out = be;
    return 0;
fail:
    cpu_destroy(be);
    return -1;
}

static uint64_t cpu_memory_bytes(const bn_backend *be) { return be->bytes; }

static uint64_t cpu_decode_bytes(const bn_backend *be) { return bn_cpu_decode_bytes(be->m, be->head_q != NULL); }

// 256 MiB is far past any last-level cache, and the best of 5 passes over it
// takes well under a second.
static double cpu_read_bandwidth_gbs(const bn_backend *be) {
    return bn_read_bandwidth_gbs(be->pool, (size_t)256 << 20, 5);
}

const char *bn_cpu_backend_kernels(const bn_backend *be) { return be->kern->name; }

const bn_backend_ops bn_cpu_backend = {
    .name = "cpu",
    .probe = cpu_probe,
    .create = cpu_create,
    .destroy = cpu_destroy,
    .forward = bn_cpu_forward,
    .forward_argmax = bn_cpu_forward_argmax,
    .forward_top = bn_cpu_forward_top,
    .copy_kv = bn_cpu_copy_kv,
    .memory_bytes = cpu_memory_bytes,
    .decode_bytes = cpu_decode_bytes,
    .read_bandwidth_gbs = cpu_read_bandwidth_gbs,
};
