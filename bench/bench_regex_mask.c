// bench_regex_mask.c - what a regex reply's mask (core/regex_reply.c) costs a
// row of logits: bn_regex_reply_mask over a model's whole vocabulary,
// single-threaded, at the reply's start (the row worked out: each token's bytes
// stepped through the automaton) and again at the same state (the row from the
// masks kept), each the best of 9; then over a whole reply the automaton
// accepts, token by token, the mean per token.
//
//   bench_regex_mask [MODEL]   (default: $BITNET_FIXTURES/tiny-a/tiny-a.gguf,
//                               whose vocabulary is Llama-3's 128,256 tokens)
// Compare the milliseconds with a decode step of the same model on the same
// machine: the mask runs once per step for each slot whose request has a regex.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "clock.h"
#include "regex_reply.h"

typedef struct pattern {
    const char *name, *regex, *reply; // reply: a text it matches, tokenized as a model would write it
} pattern;

static const pattern patterns[] = {
    {"choice of 3", "yes|no|it depends", "it depends"},
    {"number and unit", "[0-9]{1,3} (apples|pears)\\.", "128 pears."},
    {"address", "[a-z]{1,16}\\.[a-z]{1,16}@[a-z]{2,12}\\.(com|org|net)", "jane.austen@chawton.org"},
};

static double best_of(int n, double (*f)(void *), void *ctx) {
    double best = 1e30;
    for (int i = 0; i < n; i++) {
        const double ms = f(ctx);
        best = ms < best ? ms : best;
    }
    return best;
}

typedef struct run {
    const bn_engine *e;
    const char *regex;
    float *row;
    int32_t V;
    bn_regex_reply *kept; // for the cached rows
} run;

static double worked_out(void *ctx) {
    run *r = ctx;
    bn_regex_reply rr;
    bn_error err;
    if (bn_regex_reply_init(&rr, r->regex, r->V, &err)) return 1e30;
    const double t0 = bn_now_ms();
    bn_regex_reply_mask(&rr, r->e, r->row);
    const double ms = bn_now_ms() - t0;
    bn_regex_reply_free(&rr);
    return ms;
}

static double from_kept(void *ctx) {
    run *r = ctx;
    const double t0 = bn_now_ms();
    bn_regex_reply_mask(r->kept, r->e, r->row);
    return bn_now_ms() - t0;
}

int main(int argc, char **argv) {
    char path[4096];
    const char *fixtures = getenv("BITNET_FIXTURES");
    snprintf(path, sizeof path, "%s/tiny-a/tiny-a.gguf", fixtures ? fixtures : "../shared/fixtures");
    const char *model = argc > 1 ? argv[1] : path;
    bn_engine *e;
    bn_error err;
    if (bn_engine_load(model, NULL, &e, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    const int32_t V = bn_engine_info(e).n_vocab;
    float *row = malloc(sizeof(float) * (size_t)V);
    if (!row) return 1;
    printf("%s: %d tokens, one thread\n%-16s %12s %12s %16s\n", model, V, "pattern", "worked out", "kept",
           "reply, per token");
    for (size_t p = 0; p < sizeof patterns / sizeof patterns[0]; p++) {
        bn_regex_reply kept;
        if (bn_regex_reply_init(&kept, patterns[p].regex, V, &err)) {
            fprintf(stderr, "error: %s\n", err.msg);
            return 1;
        }
        run r = {e, patterns[p].regex, row, V, &kept};
        const double cold = best_of(9, worked_out, &r);
        bn_regex_reply_mask(&kept, e, row);
        const double warm = best_of(9, from_kept, &r);
        // The reply, token by token: a mask before each token, then the token.
        int32_t *ids;
        size_t n;
        if (bn_engine_tokenize(e, patterns[p].reply, false, false, &ids, &n, &err)) return 1;
        bn_regex_reply reply;
        if (bn_regex_reply_init(&reply, patterns[p].regex, V, &err)) return 1;
        const double t0 = bn_now_ms();
        for (size_t i = 0; i < n; i++) {
            bn_regex_reply_mask(&reply, e, row);
            bn_regex_reply_feed(&reply, e, ids[i]);
        }
        const double per = (bn_now_ms() - t0) / (double)n;
        printf("%-16s %9.3f ms %9.3f ms %13.3f ms  (%zu tokens)\n", patterns[p].name, cold, warm, per, n);
        bn_regex_reply_free(&reply);
        bn_regex_reply_free(&kept);
        free(ids);
    }
    free(row);
    bn_engine_free(e);
    return 0;
}
