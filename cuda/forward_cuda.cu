// forward_cuda.cu - the CUDA forward pass: one stream, no host synchronisation
// inside a step.
//
// Several sequences in one call (backend.h: a step of continuous batching) share
// each pass over the weights: every bitlinear takes all the call's tokens at once
// (they are independent of one another), and only attention looks at a token's
// sequence. The call is cut into chunks of max_batch tokens and each chunk into
// pieces, a piece being the tokens of one run inside it: single-token pieces
// (decode tokens, all of different slots) go through one decode-attention launch
// that finds each token's slot, longer ones (prompt chunks) through rope_kv and
// the prefill attention on their own slot. A token's arithmetic is the same in a
// batch as alone, so every sequence's logits are bit-identical either way
// (tests/test_batch.c). BITNET_CUDA_BATCH=0 runs the sequences one after another
// instead, each a normal single-sequence forward.
//
// Token ids and positions travel through device memory, so a decode step
// (n == 1) is captured once per output kind (none, logits, argmax, best entries,
// best entries and softmax denominator) and decode form (the split-KV or
// one-kernel attention, or the persistent kernel) as a CUDA graph and replayed
// at every position (BITNET_CUDA_GRAPH=0 disables that).
//
// Per layer: QKV (input: rmsnorm(x, attn_norm)) -> attention -> O (input:
// rmsnorm(att, attn_sub_norm); += x) -> gate|up (rmsnorm(x, ffn_norm)) -> down
// (rmsnorm(relu(gate)^2*up, ffn_sub_norm); += x). The other families (model.h)
// change two of these inputs through a bn_nq_mode: silu(gate)*up as the GLU, and
// no sub-norms (att and the GLU quantized as they are; the sub-norm weights are
// then all ones, upload.cu). Each bitlinear multiplies the
// int8 codes of its normalized input (a TQ1_0/TQ2_0 model's, per block of 256:
// a norm kernel and ternary_q8k.cu's product, for any batch). A batch of up to gemv_max tokens takes the
// GEMVs, each of whose blocks quantizes its input itself while its weights
// arrive (with BITNET_CUDA_NORM=last: the last block of the kernel before does
// it once, into codes 0/1 alternately); a larger batch takes a norm kernel and
// the tensor-core GEMM (the dp4a one with BITNET_CUDA_GEMM=dp4a).
// One token takes the split-KV decode attention (RoPE and the KV write inside),
// or below position attd_short (BITNET_CUDA_ATTD_SHORT) its one-kernel form;
// more take rope_kv and the tensor-core prefill attention. One token of one
// sequence below position `persist` (BITNET_CUDA_PERSIST) takes none of this:
// the persistent kernel (decode_persistent.cu) runs all its layers. With PDL
// (backend_cuda.cuh) every kernel after the embedding may start before the one
// before it ends.
//
// The steps have the names of the CPU's (cpu/forward.c) and of the reference
// backend's one-token pass (cpu/forward_ref.c), which is the readable version
// of the model: bitlinear, attention, lm_head; enqueue_layers is their
// embedding and per-layer attention_block and ffn_block.
#include <stdio.h>
#include <string.h>

#include "backend_cuda.cuh"
#include "cuda_check.cuh"
#include "cuda_testing.cuh"

// Records an event after the launch just made, when bench_cuda profiles a step.
static void mark(bn_backend *be, const char *name) {
    bn_cuda_prof *p = be->prof;
    if (!p || p->n >= BN_PROF_MAX) return;
    p->name[p->n] = name;
    (void)cudaEventRecord(p->ev[++p->n], be->st);
}

static bn_cuda_next_norm next_norm(const bn_backend *be, const float *w, bn_nq_mode mode,
                                   const bn_cuda_codes *out, unsigned *counter) {
    bn_cuda_next_norm nn = {w, mode, be->hp.norm_eps, out->q, out->s, out->qsum, counter};
    return nn;
}

// A bitlinear's input: the float rows it normalizes (norm_w; mode for the FFN's
// GLU or no norm) and the buffer for their int8 codes; `ready` when the kernel
// before has already written the codes there (BITNET_CUDA_NORM=last).
typedef struct bitlinear_in {
    const float *x;
    int64_t ldx;
    const float *norm_w;
    bn_nq_mode mode;
    const bn_cuda_codes *codes;
    bool ready;
} bitlinear_in;

// y (=|+=) W . quant(rmsnorm(x)); nn (NULL: none) quantizes y for the next one.
static int bitlinear(bn_backend *be, const char *name, const uint8_t *w, int K, int M, const bitlinear_in *in, int n,
                     bn_cuda_rowscale rs, bool add, float *y, int64_t ldy, const bn_cuda_next_norm *nn,
                     bn_error *err) {
    const float eps = be->hp.norm_eps;
    const bn_cuda_codes *c = in->codes;
    if (be->tq) { // TQ1_0/TQ2_0: activations per block of 256, whatever the batch (ternary_q8k.cu)
        BN_CUDA_TRY(bn_cuda_rmsnorm_q8k(in->x, in->ldx, in->norm_w, n, K, eps, in->mode, c->q, be->q8k_d,
                                        be->q8k_bsum, be->use_pdl, be->st));
        mark(be, "rmsnorm_q8k");
        BN_CUDA_TRY(bn_cuda_ternary_q8k(w, K, M, c->q, be->q8k_d, be->q8k_bsum, n, rs, add, y, ldy, be->tq_mma,
                                        be->use_pdl, be->st));
        mark(be, name);
        return 0;
    }
    if (n <= be->gemv_max) {
        if (in->ready)
            BN_CUDA_TRY(bn_cuda_ternary_gemv(w, K, M, c->q, c->s, c->qsum, n, rs, add, y, ldy, nn, be->use_pdl, be->st));
        else
            BN_CUDA_TRY(bn_cuda_ternary_gemv_norm(w, K, M, in->x, in->ldx, in->norm_w, eps, in->mode, n, rs, add, y, ldy,
                                                  be->use_pdl, be->st));
        mark(be, name);
        return 0;
    }
    BN_CUDA_TRY(bn_cuda_rmsnorm_quant(in->x, in->ldx, in->norm_w, n, K, eps, in->mode, c->q, c->s, c->qsum, be->use_pdl,
                                      be->st));
    mark(be, "rmsnorm_quant");
    if (be->dp4a_gemm)
        BN_CUDA_TRY(bn_cuda_ternary_gemm(w, K, M, c->q, c->s, c->qsum, n, rs, add, y, ldy, be->st));
    else
        BN_CUDA_TRY(bn_cuda_ternary_gemm_mma(w, K, M, c->q, c->s, c->qsum, n, rs, add, y, ldy, be->gemm_tile, be->st));
    mark(be, name);
    return 0;
}

// Halves of one sequence slot's cache in one layer: [n_head_kv][n_ctx][hd].
static size_t kv_slot(const bn_backend *be) { return (size_t)be->n_ctx * (size_t)be->nkv; }

// rope_kv and the prefill (or plain) attention of the n tokens from row t0 of
// be->qkv, all of one sequence whose cache of this layer is kc/vc; into be->att.
static int attention_run(bn_backend *be, int t0, int n, __half *kc, __half *vc, bn_error *err) {
    const bn_hparams *hp = &be->hp;
    const int H = (int)hp->n_head, Hkv = (int)hp->n_head_kv, hd = (int)hp->head_dim;
    const int32_t *pos = be->d_pos + t0;
    float *att = be->att + (size_t)t0 * be->nq;
    BN_CUDA_TRY(bn_cuda_rope_kv(be->qkv + (size_t)t0 * be->nqkv, be->nqkv, pos, n, H, Hkv, hd, (int)hp->n_rot,
                                hp->rope_neox, be->rope_theta_scale, be->n_ctx, be->qh, kc, vc, be->use_pdl, be->st));
    mark(be, "rope_kv");
    if (!be->plain_attention && bn_cuda_attention_prefill_supported(hd)) {
        BN_CUDA_TRY(bn_cuda_attention_prefill(be->qh, kc, vc, pos, n, H, Hkv, hd, be->n_ctx, att, be->use_pdl, be->st));
        mark(be, "attention (prefill)");
    } else {
        BN_CUDA_TRY(bn_cuda_attention(be->qh, kc, vc, pos, n, H, Hkv, hd, be->n_ctx, att, be->use_pdl, be->st));
        mark(be, "attention (plain)");
    }
    return 0;
}

// The decode attention of the m tokens from row t0 of be->qkv, one per slot
// (d_seq, when seqs) or all of slot `seq`'s cache kc/vc, into be->att: the
// one-kernel form (all m tokens bn_decode_one_kernel) or the split pair. nn: the
// O projection's codes (may be NULL). keys: what the one-kernel form's blocks
// hold (above every position); a graph replays one launch at every position
// below attd_short, so it needs attd_short, while an eager launch of several
// sequences (never a graph) needs only its largest position + 1, and smaller
// blocks share a multiprocessor.
static int attention_decode(bn_backend *be, int t0, int m, bool seqs, bool one_kernel, int keys, __half *kc,
                            __half *vc, unsigned *cnt, const bn_cuda_next_norm *nn, bn_error *err) {
    const bn_hparams *hp = &be->hp;
    const int H = (int)hp->n_head, Hkv = (int)hp->n_head_kv, hd = (int)hp->head_dim, n_rot = (int)hp->n_rot;
    const float *qkv = be->qkv + (size_t)t0 * be->nqkv;
    const int32_t *pos = be->d_pos + t0, *seq = seqs ? be->d_seq + t0 : NULL;
    const int64_t stride = seqs ? (int64_t)be->n_ctx * be->nkv : 0;
    float *att = be->att + (size_t)t0 * be->nq;
    if (one_kernel) {
        BN_CUDA_TRY(bn_cuda_attention_decode_short(qkv, be->nqkv, pos, m, H, Hkv, hd, n_rot, hp->rope_neox,
                                                   be->rope_theta_scale, be->n_ctx, keys, kc, vc, seq,
                                                   stride, att, nn, be->use_pdl, be->st));
        mark(be, "attention (decode, 1 kernel)");
        return 0;
    }
    BN_CUDA_TRY(bn_cuda_attention_decode(qkv, be->nqkv, pos, m, H, Hkv, hd, n_rot, hp->rope_neox, be->rope_theta_scale,
                                         be->n_ctx, be->attd_split, kc, vc, seq, stride, be->attd_scratch, &cnt[4],
                                         att, nn, be->use_pdl, be->st));
    mark(be, "attention (decode, 2 kernels)");
    return 0;
}

// Attention of layer l for a chunk of several sequences (be->piece): runs of
// single tokens together through the decode attention, each token in its own
// slot (d_seq), up to decode_group at a time; longer pieces one by one. nn: as
// in attention(); the decode kernel applies it only when one launch covers the
// whole chunk, else one rmsnorm_quant follows.
static int attention_pieces(bn_backend *be, int l, int n, const bn_cuda_next_norm *nn, bn_error *err) {
    const int H = (int)be->hp.n_head;
    const size_t slot_halves = kv_slot(be);
    __half *kc = be->kc + (size_t)l * be->n_seq * slot_halves, *vc = be->vc + (size_t)l * be->n_seq * slot_halves;
    unsigned *cnt = be->counters + (size_t)l * BN_COUNTERS_PER_LAYER(H, be->decode_group);
    bool fused = false;
    for (int i = 0; i < be->n_piece;) {
        const bn_cuda_piece *p = &be->piece[i];
        if (p->n > 1 || be->plain_attention) {
            const size_t slot = (size_t)p->seq * slot_halves;
            if (attention_run(be, p->t0, p->n, kc + slot, vc + slot, err)) return -1;
            i++;
            continue;
        }
        // Pieces are consecutive in the chunk: i..j-1 are tokens t0..t0+j-i-1.
        bool one;
        int keys;
        const int j = bn_decode_launch(be->piece, be->n_piece, i, be->h_pos, be->decode_group, be->attd_short, &one,
                                       &keys);
        fused = j - i == n;
        if (attention_decode(be, p->t0, j - i, true, one, keys, kc, vc, cnt, fused ? nn : NULL, err)) return -1;
        i = j;
    }
    if (nn && !fused) {
        BN_CUDA_TRY(bn_cuda_rmsnorm_quant(be->att, be->nq, nn->w, n, be->nq, nn->eps, nn->mode, nn->q, nn->s, nn->qsum,
                                          be->use_pdl, be->st));
        mark(be, "rmsnorm_quant");
    }
    return 0;
}

// Attention of layer l for the n tokens whose Q|K|V rows are in be->qkv, into
// be->att. nn (NULL: none): its output's codes for the O projection.
static int attention(bn_backend *be, int l, int n, const bn_cuda_next_norm *nn, bn_error *err) {
    if (be->n_piece) return attention_pieces(be, l, n, nn, err);
    const int H = (int)be->hp.n_head;
    const size_t slot = ((size_t)l * (size_t)be->n_seq + (size_t)be->seq) * kv_slot(be);
    __half *kc = be->kc + slot, *vc = be->vc + slot;
    unsigned *cnt = be->counters + (size_t)l * BN_COUNTERS_PER_LAYER(H, be->decode_group);
    if (n == 1 && !be->plain_attention)
        return attention_decode(be, 0, 1, false, bn_decode_one_kernel(be->h_pos[0], be->attd_short),
                                be->attd_short, kc, vc, cnt, nn, err);
    if (attention_run(be, 0, n, kc, vc, err)) return -1;
    if (nn) {
        BN_CUDA_TRY(bn_cuda_rmsnorm_quant(be->att, be->nq, nn->w, n, be->nq, nn->eps, nn->mode, nn->q, nn->s, nn->qsum,
                                          be->use_pdl, be->st));
        mark(be, "rmsnorm_quant");
    }
    return 0;
}

// Below this position the persistent kernel takes the one-kernel attention:
// attd_short, as far as its plan holds that form's scores.
static int persist_short(const bn_backend *be) {
    return be->persist_plan.max_keys < be->attd_short ? be->persist_plan.max_keys : be->attd_short;
}

// How a decode step of one token of slot be->seq at position p runs (the form
// its graphs are kept under). The persistent kernel takes the attention form the
// kernels take at p; where its plan cannot hold the one-kernel form's scores
// (positions persist_short .. attd_short - 1) the kernels run the step.
static int decode_form(const bn_backend *be, int32_t p) {
    if (p < be->persist && (p < persist_short(be) || p >= be->attd_short)) return BN_DECODE_PERSIST;
    return bn_decode_one_kernel(p, be->attd_short) ? BN_DECODE_SHORT : BN_DECODE_SPLIT;
}

// Every layer of one token of slot be->seq in the persistent kernel, with the
// one-kernel attention below persist_short, else the split pair, whose group
// counters the layers share (layer 0's).
static int persistent_layers(bn_backend *be, bn_nq_mode glu, bn_nq_mode sub, bn_error *err) {
    const bn_hparams *hp = &be->hp;
    const size_t slot = (size_t)be->seq * kv_slot(be);
    BN_CUDA_TRY(bn_cuda_decode_persistent(&be->persist_plan, be->d_layers, (int)hp->n_layer, hp->norm_eps, glu, sub,
                                          be->x, be->qkv, be->att, be->gu, be->d_pos, (int)hp->n_head,
                                          (int)hp->n_head_kv, (int)hp->head_dim, (int)hp->n_rot, hp->rope_neox,
                                          be->rope_theta_scale, be->n_ctx, be->kc + slot, be->vc + slot,
                                          (int64_t)(be->n_seq * kv_slot(be)), persist_short(be), be->attd_split,
                                          be->attd_scratch, be->counters + 4, be->persist_sync, be->st));
    mark(be, "layers (persistent kernel)");
    return 0;
}

// Tokens/positions of this chunk are already in h_tok/h_pos. Leaves the final
// hidden states in be->x.
static int enqueue_layers(bn_backend *be, int n, bn_error *err) {
    const bn_hparams *hp = &be->hp;
    const int E = (int)hp->n_embd, F = (int)hp->n_ff, H = (int)hp->n_head;
    BN_CUDA_TRY(cudaMemcpyAsync(be->d_tok, be->h_tok, sizeof(int32_t) * (size_t)n, cudaMemcpyHostToDevice, be->st));
    BN_CUDA_TRY(cudaMemcpyAsync(be->d_pos, be->h_pos, sizeof(int32_t) * (size_t)n, cudaMemcpyHostToDevice, be->st));
    if (be->n_piece)
        BN_CUDA_TRY(cudaMemcpyAsync(be->d_seq, be->h_seq, sizeof(int32_t) * (size_t)n, cudaMemcpyHostToDevice, be->st));
    mark(be, "token and position upload");
    BN_CUDA_TRY(bn_cuda_embedding(be->embd, be->embd_type, be->d_tok, n, E, be->x, be->st));
    mark(be, "embedding");
    const bn_nq_mode glu = hp->ffn_silu ? BN_NQ_SILU : BN_NQ_RELU2;
    const bn_nq_mode sub = hp->sub_norms ? 0 : BN_NQ_NO_NORM;
    be->after_persistent = n == 1 && !be->n_piece && decode_form(be, be->h_pos[0]) == BN_DECODE_PERSIST;
    if (be->after_persistent) return persistent_layers(be, glu, sub, err);
    const bn_cuda_codes *c0 = &be->codes[0], *c1 = &be->codes[1];
    // With BITNET_CUDA_NORM=last the GEMVs read codes the kernel before wrote.
    const bool last = be->norm_last && n <= be->gemv_max;
    if (last && hp->n_layer > 0) {
        BN_CUDA_TRY(bn_cuda_rmsnorm_quant(be->x, E, be->layers[0].attn_norm, n, E, hp->norm_eps, false, c0->q, c0->s,
                                          c0->qsum, be->use_pdl, be->st));
        mark(be, "rmsnorm_quant");
    }
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const bn_cuda_layer *C = &be->layers[l];
        unsigned *cnt = be->counters + (size_t)l * BN_COUNTERS_PER_LAYER(H, be->decode_group);
        const float *next = l + 1 < hp->n_layer ? be->layers[l + 1].attn_norm : NULL;
        const bn_cuda_next_norm n_att = next_norm(be, C->attn_sub_norm, sub, c1, &cnt[0]);
        const bn_cuda_next_norm n_o = next_norm(be, C->ffn_norm, 0, c0, &cnt[1]);
        const bn_cuda_next_norm n_gu = next_norm(be, C->ffn_sub_norm, glu | sub, c1, &cnt[2]);
        const bn_cuda_next_norm n_down = next_norm(be, next, 0, c0, &cnt[3]);
        const bitlinear_in in_qkv = {be->x, E, C->attn_norm, 0, c0, last};
        const bitlinear_in in_o = {be->att, be->nq, C->attn_sub_norm, sub, c1, last};
        const bitlinear_in in_gu = {be->x, E, C->ffn_norm, 0, c0, last};
        const bitlinear_in in_down = {be->gu, 2 * F, C->ffn_sub_norm, glu | sub, c1, last};
        // attention_block (the first three calls), then ffn_block (the last two).
        if (bitlinear(be, "gemv qkv", C->wqkv, E, be->nqkv, &in_qkv, n, C->rs_qkv, false, be->qkv, be->nqkv, NULL,
                      err) ||
            attention(be, (int)l, n, last ? &n_att : NULL, err) ||
            bitlinear(be, "gemv o", C->wo, be->nq, E, &in_o, n, C->rs_o, true, be->x, E, last ? &n_o : NULL, err) ||
            bitlinear(be, "gemv gate|up", C->wgu, E, 2 * F, &in_gu, n, C->rs_gu, false, be->gu, 2 * F,
                      last ? &n_gu : NULL, err) ||
            bitlinear(be, "gemv down", C->wdown, F, E, &in_down, n, C->rs_down, true, be->x, E,
                      last && next ? &n_down : NULL, err))
            return -1;
    }
    return 0;
}

// Logits of `rows` hidden rows at x into be->logits, with the argmax of the
// last one fused in when argmax (device) is given.
static int lm_head(bn_backend *be, const float *x, int rows, int32_t *argmax, bn_error *err) {
    const bn_hparams *hp = &be->hp;
    const int E = (int)hp->n_embd, V = (int)hp->n_vocab;
    const int in_type = be->head_q8 ? BN_CUDA_I8 : be->head_type;
    // Not launched early after the persistent kernel: a programmatic dependency on
    // a cooperative launch saves a microsecond at most and is one more thing a
    // driver's graph capture may refuse.
    BN_CUDA_TRY(bn_cuda_rmsnorm_cast(x, E, be->out_norm, rows, E, hp->norm_eps, in_type, be->head_in,
                                     be->head_xscale, be->use_pdl && !be->after_persistent, be->st));
    mark(be, "head rmsnorm");
    if (be->head_q8) {
        BN_CUDA_TRY(bn_cuda_head_q8_gemv(be->head_q, be->head_rs, E, V, (const int8_t *)be->head_in,
                                         be->head_xscale, rows, be->logits, argmax, be->head_scratch,
                                         be->head_counter, be->use_pdl, be->st));
        mark(be, argmax ? "head gemv q8 + argmax" : "head gemv q8");
    } else {
        BN_CUDA_TRY(bn_cuda_head_gemv(be->head, be->head_type, E, V, be->head_in, rows, be->logits, argmax,
                                      be->head_scratch, be->head_counter, be->use_pdl, be->st));
        mark(be, argmax ? "head gemv + argmax" : "head gemv");
    }
    return 0;
}

// Logits of hidden rows [row0, row0 + rows) into be->logits (with the argmax of
// the last one fused in for BN_OUT_ARGMAX), then the output kind's copy back to
// pinned memory.
static int enqueue_head(bn_backend *be, int row0, int rows, int kind, bn_error *err) {
    const size_t E = be->hp.n_embd, V = be->hp.n_vocab;
    if (lm_head(be, be->x + row0 * E, rows, kind == BN_OUT_ARGMAX ? be->d_argmax : NULL, err)) return -1;
    if (kind == BN_OUT_ARGMAX) {
        BN_CUDA_TRY(cudaMemcpyAsync(be->h_argmax, be->d_argmax, sizeof(int32_t), cudaMemcpyDeviceToHost, be->st));
    } else if (kind == BN_OUT_TOP || kind == BN_OUT_TOP_SUMS) {
        const bool sums = kind == BN_OUT_TOP_SUMS;
        BN_CUDA_TRY(bn_cuda_top_rows(be->logits, rows, (int64_t)V, (int)V, be->d_top, sums ? be->d_top_sums : NULL,
                                     be->st));
        mark(be, sums ? "top entries + exp sums" : "top entries");
        BN_CUDA_TRY(cudaMemcpyAsync(be->h_top, be->d_top, sizeof(bn_top) * BN_TOP_MAX * (size_t)rows,
                                    cudaMemcpyDeviceToHost, be->st));
        if (sums)
            BN_CUDA_TRY(cudaMemcpyAsync(be->h_top_sums, be->d_top_sums, sizeof(double) * (size_t)rows,
                                        cudaMemcpyDeviceToHost, be->st));
    } else {
        BN_CUDA_TRY(cudaMemcpyAsync(be->h_logits, be->logits, sizeof(float) * (size_t)rows * V,
                                    cudaMemcpyDeviceToHost, be->st));
    }
    mark(be, "result download");
    return 0;
}

// A decode step of one token with output `kind`, enqueued on the stream.
static int enqueue_decode(bn_backend *be, int kind, bn_error *err) {
    if (enqueue_layers(be, 1, err)) return -1;
    return kind == BN_OUT_NONE ? 0 : enqueue_head(be, 0, 1, kind, err);
}

// The graphs of a decode step at position p: one set per form (the launches differ).
static cudaGraphExec_t *decode_graphs(bn_backend *be, int32_t p) { return be->graph[decode_form(be, p)]; }

// Captures enqueue_decode once as a graph (after one eager run of the same step,
// see forward_impl, whose position is still in h_pos). On failure the stream
// leaves capture mode and graphs are switched off for this backend: every step
// then runs eagerly.
static void capture_decode(bn_backend *be, int kind) {
    cudaGraphExec_t *graphs = decode_graphs(be, be->h_pos[0]);
    bn_error cerr = {{0}};
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamBeginCapture(be->st, cudaStreamCaptureModeThreadLocal);
    if (e == cudaSuccess) {
        const int rc = enqueue_decode(be, kind, &cerr);
        e = cudaStreamEndCapture(be->st, &graph);
        if (rc == 0 && e == cudaSuccess && graph) e = cudaGraphInstantiate(&graphs[kind], graph, 0);
        else if (rc != 0) e = cudaErrorStreamCaptureInvalidated;
        if (graph) (void)cudaGraphDestroy(graph);
        if (e == cudaSuccess) return;
    }
    snprintf(be->graph_error, sizeof be->graph_error, "%s%s%s", cudaGetErrorString(e), cerr.msg[0] ? ": " : "",
             cerr.msg);
    graphs[kind] = NULL;
    be->use_graph = false;
    (void)cudaGetLastError(); // the eager run reports any real error itself
}

// After the stream has synchronised: one token's output from pinned memory.
static void take_output(const bn_backend *be, int kind, float *logits, int32_t *argmax, bn_top *top,
                        double *sums) {
    if (kind == BN_OUT_ARGMAX) *argmax = be->h_argmax[0];
    else if (kind == BN_OUT_TOP || kind == BN_OUT_TOP_SUMS) memcpy(top, be->h_top, sizeof(bn_top) * BN_TOP_MAX);
    else if (kind == BN_OUT_LOGITS) memcpy(logits, be->h_logits, sizeof(float) * (size_t)be->hp.n_vocab);
    if (kind == BN_OUT_TOP_SUMS) *sums = be->h_top_sums[0];
}

// One run: n_tokens tokens of sequence be->seq. Its output: all rows of logits,
// or the last token's row, or its argmax, or its BN_TOP_MAX best entries (and,
// with sums, its softmax denominator).
static int forward_run(bn_backend *be, const int32_t *tokens, const int32_t *pos, int n_tokens, float *logits,
                       bool all_logits, int32_t *argmax, bn_top *top, double *sums, bn_error *err) {
    const int V = (int)be->hp.n_vocab;
    const int kind = argmax ? BN_OUT_ARGMAX
                     : top  ? (sums ? BN_OUT_TOP_SUMS : BN_OUT_TOP)
                     : logits ? BN_OUT_LOGITS
                              : BN_OUT_NONE;

    cudaGraphExec_t *graphs = decode_graphs(be, pos[0]);
    if (n_tokens == 1 && be->use_graph && graphs[kind] && !be->prof) {
        be->h_tok[0] = tokens[0];
        be->h_pos[0] = pos[0];
        BN_CUDA_TRY(cudaGraphLaunch(graphs[kind], be->st));
        BN_CUDA_TRY(cudaStreamSynchronize(be->st));
        take_output(be, kind, logits, argmax, top, sums);
        return 0;
    }

    // Eager path: chunks of max_batch tokens; K/V of earlier chunks are in the cache.
    for (int c0 = 0; c0 < n_tokens; c0 += be->max_batch) {
        const int n = n_tokens - c0 < be->max_batch ? n_tokens - c0 : be->max_batch;
        const bool last = c0 + n == n_tokens;
        // The previous chunk's copies out of h_tok/h_pos finished at its synchronise.
        memcpy(be->h_tok, tokens + c0, sizeof(int32_t) * (size_t)n);
        memcpy(be->h_pos, pos + c0, sizeof(int32_t) * (size_t)n);
        if (enqueue_layers(be, n, err)) return -1;
        if (kind == BN_OUT_LOGITS && all_logits) {
            for (int r0 = 0; r0 < n; r0 += BN_LM_ROWS) {
                const int rows = n - r0 < BN_LM_ROWS ? n - r0 : BN_LM_ROWS;
                if (enqueue_head(be, r0, rows, kind, err)) return -1;
                BN_CUDA_TRY(cudaStreamSynchronize(be->st));
                memcpy(logits + (size_t)(c0 + r0) * V, be->h_logits, sizeof(float) * (size_t)rows * V);
            }
        } else if (kind != BN_OUT_NONE && last) {
            if (enqueue_head(be, n - 1, 1, kind, err)) return -1;
            BN_CUDA_TRY(cudaStreamSynchronize(be->st));
            take_output(be, kind, logits, argmax, top, sums);
        } else {
            BN_CUDA_TRY(cudaStreamSynchronize(be->st));
        }
    }
    // The first decode step of each output kind ran eagerly above; capture it now
    // for the next ones. Capturing before any eager run would put first-use work
    // inside the capture: lazy loading of this module's kernels (the CUDA 12
    // default) and the kernels' shared-memory limits, either of which can make
    // capture fail and switch graphs off for the session. Capture executes
    // nothing, so h_tok needs no particular content; h_pos[0] still holds this
    // step's position, which picks the attention form the graph is made with.
    if (n_tokens == 1 && be->use_graph && !graphs[kind] && !be->prof) capture_decode(be, kind);
    return 0;
}

// ---- several sequences in one pass ----------------------------------------------

// Copies `bytes` of device memory `dev` into `out` through the pinned buffer `pinned`,
// once the stream has come to them.
static int download(bn_backend *be, void *out, void *pinned, const void *dev, size_t bytes, bn_error *err) {
    BN_CUDA_TRY(cudaMemcpyAsync(pinned, dev, bytes, cudaMemcpyDeviceToHost, be->st));
    BN_CUDA_TRY(cudaStreamSynchronize(be->st));
    memcpy(out, pinned, bytes);
    return 0;
}

// The head rows of a chunk of several sequences, listed in h_rows (indices into
// the chunk): gathered BN_LM_ROWS at a time into head_x and multiplied with the
// head; n_rows rows of logits into `logits`, or their argmax ids into `argmax`,
// or their BN_TOP_MAX best entries into `top` (and softmax denominators into
// sums, when not NULL).
static int enqueue_head_rows(bn_backend *be, int n_rows, float *logits, int32_t *argmax, bn_top *top,
                             double *sums, bn_error *err) {
    const size_t E = be->hp.n_embd, V = be->hp.n_vocab;
    BN_CUDA_TRY(cudaMemcpyAsync(be->d_rows, be->h_rows, sizeof(int32_t) * (size_t)n_rows, cudaMemcpyHostToDevice,
                                be->st));
    for (int r0 = 0; r0 < n_rows; r0 += BN_LM_ROWS) {
        const int rows = n_rows - r0 < BN_LM_ROWS ? n_rows - r0 : BN_LM_ROWS;
        BN_CUDA_TRY(bn_cuda_embedding(be->x, BN_CUDA_F32, be->d_rows + r0, rows, (int)E, be->head_x, be->st));
        mark(be, "head rows gather");
        if (lm_head(be, be->head_x, rows, NULL, err)) return -1;
        if (argmax) {
            BN_CUDA_TRY(bn_cuda_argmax_rows(be->logits, rows, (int64_t)V, (int)V, be->d_argmax + r0, be->st));
            mark(be, "argmax");
            continue;
        }
        if (top) {
            BN_CUDA_TRY(bn_cuda_top_rows(be->logits, rows, (int64_t)V, (int)V, be->d_top + (size_t)r0 * BN_TOP_MAX,
                                         sums ? be->d_top_sums + r0 : NULL, be->st));
            mark(be, sums ? "top entries + exp sums" : "top entries");
            continue;
        }
        if (download(be, logits + (size_t)r0 * V, be->h_logits, be->logits, sizeof(float) * (size_t)rows * V, err))
            return -1;
    }
    if (argmax) return download(be, argmax, be->h_argmax, be->d_argmax, sizeof(int32_t) * (size_t)n_rows, err);
    if (top && download(be, top, be->h_top, be->d_top, sizeof(bn_top) * BN_TOP_MAX * (size_t)n_rows, err))
        return -1;
    if (sums) return download(be, sums, be->h_top_sums, be->d_top_sums, sizeof(double) * (size_t)n_rows, err);
    return 0;
}

// A call with runs of several sequences (seq not NULL), in chunks of max_batch
// tokens, each cut into pieces (see the top of this file). Output rows as
// backend.h says: every token's with all_logits, else each run's last.
static int forward_chunks(bn_backend *be, const int32_t *tokens, const int32_t *pos, const int32_t *seq,
                          int n_tokens, float *logits, bool all_logits, int32_t *argmax, bn_top *top, double *sums,
                          bn_error *err) {
    const size_t V = be->hp.n_vocab;
    const bool want = logits || argmax || top;
    size_t out_row = 0;
    for (int c0 = 0; c0 < n_tokens; c0 += be->max_batch) {
        const int n = n_tokens - c0 < be->max_batch ? n_tokens - c0 : be->max_batch;
        int n_rows = 0;
        be->n_piece = bn_chunk_pieces(seq, c0, n, be->piece);
        for (int t = 0; t < n; t++) {
            const int g = c0 + t;
            be->h_tok[t] = tokens[g];
            be->h_pos[t] = pos[g];
            be->h_seq[t] = seq[g];
            if (want && (all_logits || bn_run_ends(seq, g, n_tokens))) be->h_rows[n_rows++] = t;
        }
        if (enqueue_layers(be, n, err)) return -1;
        if (n_rows && enqueue_head_rows(be, n_rows, logits ? logits + out_row * V : NULL,
                                        argmax ? argmax + out_row : NULL, top ? top + out_row * BN_TOP_MAX : NULL,
                                        sums ? sums + out_row : NULL, err))
            return -1;
        BN_CUDA_TRY(cudaStreamSynchronize(be->st)); // h_tok, h_pos, h_seq are free again
        out_row += (size_t)n_rows;
    }
    return 0;
}

static int forward_seqs(bn_backend *be, const int32_t *tokens, const int32_t *pos, const int32_t *seq, int n_tokens,
                        float *logits, bool all_logits, int32_t *argmax, bn_top *top, double *sums, bn_error *err) {
    const int rc = forward_chunks(be, tokens, pos, seq, n_tokens, logits, all_logits, argmax, top, sums, err);
    be->n_piece = 0; // the single-sequence path again
    return rc;
}

// Splits the call into its runs (one per sequence, see the top of this file).
static int forward_impl(bn_backend *be, const int32_t *tokens, const int32_t *pos, const int32_t *seq,
                        int n_tokens, float *logits, bool all_logits, int32_t *argmax, bn_top *top, double *sums,
                        bn_error *err) {
    const size_t V = be->hp.n_vocab;
    const int runs = bn_backend_check_tokens("cuda", tokens, pos, seq, n_tokens, be->hp.n_vocab, be->n_ctx,
                                             be->n_seq, err);
    if (runs < 0) return -1;
    BN_CUDA_TRY(cudaSetDevice(be->device));
    // Pinned room for BN_LM_ROWS logit rows (33 MB for the 2B-4T vocabulary),
    // made on the first call that wants logits: greedy and sampled decoding never
    // do, and pinning it at create would lengthen every start.
    if (logits && !be->h_logits)
        BN_CUDA_TRY(cudaMallocHost((void **)&be->h_logits, sizeof(float) * BN_LM_ROWS * (size_t)V));
    if (runs > 1 && be->batch_seqs)
        return forward_seqs(be, tokens, pos, seq, n_tokens, logits, all_logits, argmax, top, sums, err);
    for (int t0 = 0, run = 0; t0 < n_tokens; run++) {
        int t1 = t0 + 1;
        while (t1 < n_tokens && !bn_run_ends(seq, t1 - 1, n_tokens)) t1++;
        be->seq = bn_seq_of(seq, t0);
        float *out = !logits ? NULL : logits + (all_logits ? (size_t)t0 : (size_t)run) * V;
        if (forward_run(be, tokens + t0, pos + t0, t1 - t0, out, all_logits, argmax ? argmax + run : NULL,
                        top ? top + (size_t)run * BN_TOP_MAX : NULL, sums ? sums + run : NULL, err))
            return -1;
        t0 = t1;
    }
    return 0;
}

// What came back must be finite (backend.h: bn_all_finite): each row of logits;
// each argmax id, which the device makes -1 for a row that is not
// (cuda/reduce.cuh); each row's top entries (the id -1 entries past a
// vocabulary under BN_TOP_MAX aside). A NaN the device computes is positive,
// and the top-rows kernel ranks a positive NaN or +inf above every number, so
// a row that holds one shows it in its first entry. A negative NaN or -inf
// ranks last: the top entries miss it, unless the row is that short, and only
// the rows and the argmax find it (the CPU backend checks every row whatever
// it gives). Returns the index of the first token whose output is not finite,
// or -1.
static int check_output(const bn_backend *be, const int32_t *seq, int n_tokens, const float *logits,
                        bool all_logits, const int32_t *argmax, const bn_top *top) {
    const size_t V = be->hp.n_vocab;
    for (int t = 0, r = 0; t < n_tokens; t++) {
        if (!all_logits && !bn_run_ends(seq, t, n_tokens)) continue;
        bool finite = true;
        if (logits) finite = bn_all_finite(logits + (size_t)r * V, (int64_t)V);
        if (argmax) finite = argmax[r] >= 0;
        for (int i = 0; top && i < BN_TOP_MAX; i++) {
            const bn_top *e = &top[(size_t)r * BN_TOP_MAX + i];
            finite &= e->id < 0 || bn_all_finite(&e->logit, 1);
        }
        if (!finite) return t; // the token whose row it is
        r++;
    }
    return -1;
}

static int forward_checked(bn_backend *be, const int32_t *tokens, const int32_t *pos, const int32_t *seq,
                           int n_tokens, float *logits, bool all_logits, int32_t *argmax, bn_top *top, double *sums,
                           bn_error *err) {
    if (forward_impl(be, tokens, pos, seq, n_tokens, logits, all_logits, argmax, top, sums, err)) {
        // A launch that failed may leave copies out of the pinned buffers queued
        // before it, which the next call would overwrite: let them finish.
        (void)cudaStreamSynchronize(be->st);
        return -1;
    }
    const int t = check_output(be, seq, n_tokens, logits, all_logits, argmax, top);
    return t < 0 ? 0 : bn_backend_nonfinite("cuda", pos[t], bn_seq_of(seq, t), err);
}

int bn_cuda_forward(bn_backend *be, const int32_t *tokens, const int32_t *pos, const int32_t *seq, int n_tokens,
                    float *logits, bool all_logits, bn_error *err) {
    return forward_checked(be, tokens, pos, seq, n_tokens, logits, all_logits, NULL, NULL, NULL, err);
}

int bn_cuda_forward_argmax(bn_backend *be, const int32_t *tokens, const int32_t *pos, const int32_t *seq,
                           int n_tokens, int32_t *argmax, bn_error *err) {
    if (!argmax) return bn_errorf(err, "cuda: forward_argmax needs an output");
    return forward_checked(be, tokens, pos, seq, n_tokens, NULL, false, argmax, NULL, NULL, err);
}

int bn_cuda_forward_top(bn_backend *be, const int32_t *tokens, const int32_t *pos, const int32_t *seq, int n_tokens,
                        bn_top *top, double *exp_sums, bn_error *err) {
    if (!top) return bn_errorf(err, "cuda: forward_top needs an output");
    return forward_checked(be, tokens, pos, seq, n_tokens, NULL, false, NULL, top, exp_sums, err);
}

// backend.h's copy_kv: per layer, the n_head_kv rows of n_pos positions of one
// slot's K (and V) to another's, as one strided copy on the forward stream.
int bn_cuda_copy_kv(bn_backend *be, int from, int to, int n_pos, bn_error *err) {
    const size_t hd = be->hp.head_dim, pitch = (size_t)be->n_ctx * hd * sizeof(__half);
    BN_CUDA_TRY(cudaSetDevice(be->device));
    for (uint32_t l = 0; l < be->hp.n_layer; l++) {
        const size_t src = ((size_t)l * be->n_seq + (size_t)from) * kv_slot(be);
        const size_t dst = ((size_t)l * be->n_seq + (size_t)to) * kv_slot(be);
        BN_CUDA_TRY(cudaMemcpy2DAsync(be->kc + dst, pitch, be->kc + src, pitch, (size_t)n_pos * hd * sizeof(__half),
                                      be->hp.n_head_kv, cudaMemcpyDeviceToDevice, be->st));
        BN_CUDA_TRY(cudaMemcpy2DAsync(be->vc + dst, pitch, be->vc + src, pitch, (size_t)n_pos * hd * sizeof(__half),
                                      be->hp.n_head_kv, cudaMemcpyDeviceToDevice, be->st));
    }
    return 0;
}

// ---- test and profiling hooks (cuda_testing.cuh) ------------------------------------

extern "C" int bn_cuda_debug_step(bn_backend *be, int32_t token, int32_t pos, int n_layers, float *x, float *qkv,
                                  float *att, float *gu, bn_error *err) {
    const bn_hparams *hp = &be->hp;
    if (n_layers < 1 || (uint32_t)n_layers > hp->n_layer) return bn_errorf(err, "cuda: %d layers of %u", n_layers, hp->n_layer);
    const uint32_t all = hp->n_layer;
    const bool graphs = be->use_graph;
    be->hp.n_layer = (uint32_t)n_layers; // every launcher takes the count from here
    be->use_graph = false;
    const int rc = forward_checked(be, &token, &pos, NULL, 1, NULL, false, NULL, NULL, NULL, err);
    be->hp.n_layer = all;
    be->use_graph = graphs;
    if (rc) return -1;
    BN_CUDA_TRY(cudaMemcpy(x, be->x, sizeof(float) * hp->n_embd, cudaMemcpyDeviceToHost));
    BN_CUDA_TRY(cudaMemcpy(qkv, be->qkv, sizeof(float) * (size_t)be->nqkv, cudaMemcpyDeviceToHost));
    BN_CUDA_TRY(cudaMemcpy(att, be->att, sizeof(float) * (size_t)be->nq, cudaMemcpyDeviceToHost));
    BN_CUDA_TRY(cudaMemcpy(gu, be->gu, sizeof(float) * 2 * hp->n_ff, cudaMemcpyDeviceToHost));
    return 0;
}

extern "C" int bn_cuda_profile_step(bn_backend *be, int32_t token, int32_t pos, bn_cuda_prof_row *rows,
                                    int max_rows, int *n_rows, double *total_ms, bn_error *err) {
    BN_CUDA_TRY(cudaSetDevice(be->device)); // the events belong to the current device
    bn_cuda_prof *p = (bn_cuda_prof *)calloc(1, sizeof *p);
    if (!p) return bn_errorf(err, "cuda: out of host memory");
    int rc = -1, created = 0;
    *n_rows = 0;
    for (; created <= BN_PROF_MAX; created++)
        if (cudaEventCreate(&p->ev[created]) != cudaSuccess) break;
    if (created <= BN_PROF_MAX) {
        bn_errorf(err, "cuda: cannot create profiling events");
    } else if (cudaEventRecord(p->ev[0], be->st) != cudaSuccess) {
        bn_errorf(err, "cuda: cannot record an event");
    } else {
        int32_t id = 0;
        be->prof = p;
        rc = forward_checked(be, &token, &pos, NULL, 1, NULL, false, &id, NULL, NULL, err);
        be->prof = NULL;
        if (rc == 0 && cudaEventSynchronize(p->ev[p->n]) != cudaSuccess) rc = bn_errorf(err, "cuda: event sync");
    }
    if (rc == 0) {
        float ms = 0.f;
        (void)cudaEventElapsedTime(&ms, p->ev[0], p->ev[p->n]);
        *total_ms = ms;
        for (int i = 0; i < p->n; i++) { // aggregate by name, in first-seen order
            (void)cudaEventElapsedTime(&ms, p->ev[i], p->ev[i + 1]);
            int r = 0;
            while (r < *n_rows && strcmp(rows[r].name, p->name[i])) r++;
            if (r == *n_rows) {
                if (r == max_rows) continue;
                rows[r].name = p->name[i];
                rows[r].ms = 0;
                rows[r].calls = 0;
                (*n_rows)++;
            }
            rows[r].ms += ms;
            rows[r].calls++;
        }
    }
    for (int i = 0; i < created; i++) (void)cudaEventDestroy(p->ev[i]);
    free(p);
    return rc;
}

// ---- the GEMV's batch limit, measured on this card (gemv_crossover.h) ------------

// Microseconds of one FFN's bitlinears (gate|up, then down on its GLU) of n tokens
// through the GEMVs (gemv) or the norm kernels and GEMMs, averaged over the first
// `layers` layers in turn, so that each reads its weights from HBM as a step
// does. The outputs go to scratch (down's to att, not added to x): x stays the
// zeros it was set to.
static int time_ffn(bn_backend *be, int n, bool gemv, int layers, cudaEvent_t ev[2], double *us, bn_error *err) {
    const bn_hparams *hp = &be->hp;
    const int E = (int)hp->n_embd, F = (int)hp->n_ff, saved = be->gemv_max;
    const bn_nq_mode down_mode = (hp->ffn_silu ? BN_NQ_SILU : BN_NQ_RELU2) | (hp->sub_norms ? 0 : BN_NQ_NO_NORM);
    be->gemv_max = gemv ? n : 0;
    int rc = cudaEventRecord(ev[0], be->st) == cudaSuccess ? 0 : bn_errorf(err, "cuda: event record failed");
    for (int l = 0; rc == 0 && l < layers; l++) {
        const bn_cuda_layer *C = &be->layers[l];
        const bitlinear_in in_gu = {be->x, E, C->ffn_norm, 0, &be->codes[0], false};
        const bitlinear_in in_down = {be->gu, 2 * F, C->ffn_sub_norm, down_mode, &be->codes[1], false};
        rc = bitlinear(be, "gate|up (tuning)", C->wgu, E, 2 * F, &in_gu, n, C->rs_gu, false, be->gu, 2 * F, NULL,
                       err) ||
             bitlinear(be, "down (tuning)", C->wdown, F, E, &in_down, n, C->rs_down, false, be->att, E, NULL, err);
    }
    be->gemv_max = saved;
    if (rc) return -1;
    BN_CUDA_TRY(cudaEventRecord(ev[1], be->st));
    BN_CUDA_TRY(cudaEventSynchronize(ev[1]));
    float ms = 0.f;
    BN_CUDA_TRY(cudaEventElapsedTime(&ms, ev[0], ev[1]));
    *us = 1e3 * ms / layers;
    return 0;
}

int bn_cuda_tune_gemv_max(bn_backend *be, int cap, bn_error *err) {
    enum { ROUNDS = 3 }; // each size's best of three, the paths in alternating order
    const bn_hparams *hp = &be->hp;
    be->tuned_sizes = 0;
    if (be->tq || hp->n_layer == 0 || cap < 1) return 0; // TQ bitlinears take neither path
    // Enough layers that their FFN weights exceed 4x the L2.
    int l2 = 0;
    BN_CUDA_TRY(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, be->device));
    const size_t bytes = (size_t)hp->n_embd * 3 * hp->n_ff / 4;
    const size_t want = 4 * (size_t)l2 / bytes + 1;
    const int layers = want < hp->n_layer ? (int)want : (int)hp->n_layer;
    // The input: zeros (a finite norm), as many tokens as the largest batch timed.
    BN_CUDA_TRY(cudaMemsetAsync(be->x, 0, sizeof(float) * (size_t)cap * hp->n_embd, be->st));
    cudaEvent_t ev[2] = {NULL, NULL};
    int rc = cudaEventCreate(&ev[0]) == cudaSuccess && cudaEventCreate(&ev[1]) == cudaSuccess
                 ? 0
                 : bn_errorf(err, "cuda: cannot create events");
    int count = 0;
    while (count < BN_CROSSOVER_SIZES && bn_crossover_sizes[count] <= cap) count++;
    for (int i = 0; i < count; i++) be->tuned_gemv_us[i] = be->tuned_gemm_us[i] = INFINITY;
    double warm; // first launches load the kernels and wake the clocks: not counted
    for (int i = 0; rc == 0 && i < count; i++)
        rc = time_ffn(be, bn_crossover_sizes[i], true, layers, ev, &warm, err) ||
             time_ffn(be, bn_crossover_sizes[i], false, layers, ev, &warm, err);
    for (int r = 0; rc == 0 && r < ROUNDS; r++)
        for (int i = 0; rc == 0 && i < count; i++)
            for (int k = 0; rc == 0 && k < 2; k++) {
                const bool gemv = (k == 0) == (r % 2 == 0);
                double us;
                rc = time_ffn(be, bn_crossover_sizes[i], gemv, layers, ev, &us, err);
                double *best = gemv ? &be->tuned_gemv_us[i] : &be->tuned_gemm_us[i];
                if (rc == 0 && us < *best) *best = us;
            }
    for (int i = 0; i < 2; i++)
        if (ev[i]) (void)cudaEventDestroy(ev[i]);
    if (rc) return -1;
    be->tuned_sizes = count;
    be->gemv_max = bn_gemv_crossover(bn_crossover_sizes, be->tuned_gemv_us, be->tuned_gemm_us, count, be->gemv_max);
    if (be->gemv_max > cap) be->gemv_max = cap;
    return 0;
}
