// lookup.c - the drafts of prompt lookup decoding (lookup.h).
#include "lookup.h"

#include <string.h>

int bn_lookup_draft(const int32_t *hist, int n_hist, int max_draft, int32_t *draft) {
    if (max_draft > BN_LOOKUP_MAX) max_draft = BN_LOOKUP_MAX;
    for (int n = BN_LOOKUP_NGRAM_MAX; n >= BN_LOOKUP_NGRAM_MIN && max_draft > 0; n--) {
        if (n_hist < n + 1) continue;
        const int32_t *tail = hist + n_hist - n;
        for (int j = n_hist - n - 1; j >= 0; j--) { // the most recent occurrence first
            if (hist[j] != tail[0] || memcmp(hist + j, tail, (size_t)n * sizeof *hist)) continue;
            const int from = j + n; // the continuation: hist, then the draft itself
            for (int i = 0; i < max_draft; i++)
                draft[i] = from + i < n_hist ? hist[from + i] : draft[from + i - n_hist];
            return max_draft;
        }
    }
    return 0;
}

int bn_lookup_next_len(int cur, int max, int drafted, int accepted) {
    int next = accepted >= drafted ? 2 * cur : accepted + 1;
    return next < 1 ? 1 : next > max ? max : next;
}

void bn_lookup_begin(bn_lookup_pass *p, const int32_t *draft, int d) {
    memcpy(p->draft, draft, (size_t)d * sizeof *draft);
    p->n_drafted = d;
    p->next_row = 1;
}

bool bn_lookup_takes(const bn_lookup_pass *p, int32_t pending) {
    return p->next_row > 0 && p->next_row <= p->n_drafted && pending == p->draft[p->next_row - 1];
}

int bn_lookup_len(const bn_lookup_pass *p, int max) {
    if (!p->next_row) return p->len < max ? p->len : max;
    return bn_lookup_next_len(p->len, max, p->n_drafted, p->next_row - 1);
}

void bn_lookup_end(bn_lookup_pass *p, int max) {
    p->len = bn_lookup_len(p, max);
    p->next_row = p->n_drafted = 0;
}
