// chunk_plan.h - how the CUDA backend cuts a call of several sequences into the
// launches of one chunk (forward_cuda.cu), as plain C with no CUDA in it, so
// tests/test_chunk_plan.c checks it on any machine.
//
// A chunk is up to max_batch consecutive tokens of the call; a piece is the
// tokens of one run (one sequence) inside it. Every bitlinear takes the whole
// chunk; attention goes piece by piece, except that consecutive single-token
// pieces (decode tokens, each of another sequence) share a decode-attention
// launch, up to `group` of them and all of one attention form: the one-kernel
// form for positions below one_below (BITNET_CUDA_ATTD_SHORT), else the split
// pair.
#ifndef BN_CUDA_CHUNK_PLAN_H
#define BN_CUDA_CHUNK_PLAN_H

#include <stdbool.h>
#include <stdint.h>

// The tokens [t0, t0 + n) of a chunk that belong to one run, in slot seq.
typedef struct bn_cuda_piece {
    int t0, n, seq;
} bn_cuda_piece;

// The pieces of the chunk of n tokens from c0 of a call whose token i is in
// slot seq[i], in order, into piece; returns how many (at most one per run: a
// call holds each slot in one run, so at most the slots there are).
static inline int bn_chunk_pieces(const int32_t *seq, int c0, int n, bn_cuda_piece *piece) {
    int n_piece = 0;
    for (int t = 0; t < n; t++) {
        const int g = c0 + t;
        if (t == 0 || seq[g] != seq[g - 1]) {
            piece[n_piece].t0 = t;
            piece[n_piece].n = 0;
            piece[n_piece].seq = seq[g];
            n_piece++;
        }
        piece[n_piece - 1].n++;
    }
    return n_piece;
}

// Whether a decode token at position pos takes the one-kernel attention. Each
// token's own position decides, so its arithmetic is the same alone or batched.
static inline bool bn_decode_one_kernel(int32_t pos, int one_below) { return pos < one_below; }

// The decode-attention launch that starts at single-token piece i (pos: the
// chunk's positions): pieces i..j-1, returning j. *one: they take the one-kernel
// form; *keys: then the keys its blocks hold, the largest position + 1 rounded
// up to a multiple of 16 (fewer distinct launch shapes) but at most one_below.
static inline int bn_decode_launch(const bn_cuda_piece *piece, int n_piece, int i, const int32_t *pos, int group,
                                   int one_below, bool *one, int *keys) {
    *one = bn_decode_one_kernel(pos[piece[i].t0], one_below);
    int j = i + 1, k = pos[piece[i].t0] + 1;
    for (; j < n_piece && piece[j].n == 1 && j - i < group; j++) {
        const int32_t p = pos[piece[j].t0];
        if (bn_decode_one_kernel(p, one_below) != *one) break;
        if (p + 1 > k) k = p + 1;
    }
    k = (k + 15) / 16 * 16;
    *keys = k < one_below ? k : one_below;
    return j;
}

#endif
