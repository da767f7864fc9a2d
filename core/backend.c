// backend.c - choosing a compute backend by name, and the input checks of forward().
#include "backend.h"

#include <string.h>


const bn_backend_ops *bn_backend_find(const char *name) {
    if (!name) return NULL;
    if (strcmp(name, "cpu") == 0) return &bn_cpu_backend;
#ifdef BITNET_CUDA
    if (strcmp(name, "cuda") == 0) return &bn_cuda_backend;
#endif
    return NULL;
}

int bn_backend_check_tokens(const char *who, const int32_t *tokens, const int32_t *pos,
                            const int32_t *seq, int n_tokens, uint32_t n_vocab, int n_ctx,
                            int n_seq, bn_error *err) {
    if (n_tokens < 1 || !tokens || !pos)
        return bn_errorf(err, "%s: forward needs at least one token and its position", who);
    int runs = 0;
    for (int i = 0; i < n_tokens; i++) {
        const int32_t s = bn_seq_of(seq, i);
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= n_vocab)
            return bn_errorf(err, "%s: token id %d out of range (vocabulary %u)", who, tokens[i], n_vocab);
        if (pos[i] < 0 || pos[i] >= n_ctx)
            return bn_errorf(err, "%s: position %d outside the context (%d tokens)", who, pos[i], n_ctx);
        if (s < 0 || s >= n_seq)
            return bn_errorf(err, "%s: sequence %d outside the %d slots", who, s, n_seq);
        if (i > 0 && bn_seq_of(seq, i - 1) == s) {
            if (pos[i] <= pos[i - 1])
                return bn_errorf(err, "%s: positions of sequence %d do not increase", who, s);
            continue;
        }
        // A new run: its slot must not have had one already (a scan of the run
        // starts before it: runs are few, and it needs no scratch memory).
        for (int j = 0; j < i; j++)
            if ((j == 0 || bn_seq_of(seq, j - 1) != bn_seq_of(seq, j)) && bn_seq_of(seq, j) == s)
                return bn_errorf(err, "%s: sequence %d comes in two runs of one call", who, s);
        runs++;
    }
    return runs;
}
