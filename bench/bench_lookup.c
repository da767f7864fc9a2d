// bench_lookup.c - what prompt lookup decoding (bn_session_set_lookup) costs and
// gains on one machine, in one run:
//   1. a verifying pass: the time of one forward pass over 1 + k tokens after a
//      256-token context, k = 0..8, with every row of logits (as lookup feeds
//      it), the best of 5 each, beside a single decode step (k = 0);
//   2. a generation of -n greedy tokens from the prompt, with lookup off and
//      with --lookup N, alternated -r times: ms per generated token (best run),
//      the drafts taken, and that the tokens are the same.
//
//   bench_lookup -m MODEL [-b cpu|cuda] [-t THREADS] [-k KERNELS] [-p PROMPT | -f FILE]
//                [-n 128] [--lookup 8] [-r 2] [--json]
// The table goes to stderr; with --json, one JSON object to stdout. Exits 1
// where the tokens differ on the CPU, whose passes are its steps bit for bit;
// on CUDA a pass's rows come from other kernels than a step's, so a random
// model's near tie may go the other way: reported, not failed.
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "clock.h"

#define MAX_K 8
#define CONTEXT 256
#define MAX_GEN 4096

static int fail(const char *what, const bn_error *err) {
    fprintf(stderr, "bench_lookup: %s: %s\n", what, err ? err->msg : "");
    return 1;
}

typedef struct gen {
    int32_t ids[MAX_GEN];
    int n;
} gen;

static int collect(void *user, int32_t id, const char *text, size_t len) {
    (void)text, (void)len;
    gen *g = user;
    if (id >= 0 && g->n < MAX_GEN) g->ids[g->n++] = id;
    return 0;
}

int main(int argc, char **argv) {
    const char *model = NULL, *backend = "cpu", *kernels = NULL;
    const char *prompt = "It is a truth universally acknowledged, that";
    char *file_text = NULL;
    int threads = 0, n_gen = 128, lookup = 8, reps = 2;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const bool has = i + 1 < argc;
        if (!strcmp(argv[i], "-m") && has) model = argv[++i];
        else if (!strcmp(argv[i], "-b") && has) backend = argv[++i];
        else if (!strcmp(argv[i], "-t") && has) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-k") && has) kernels = argv[++i];
        else if (!strcmp(argv[i], "-p") && has) prompt = argv[++i];
        else if (!strcmp(argv[i], "-f") && has) {
            FILE *f = fopen(argv[++i], "rb");
            if (!f) return fail(argv[i], NULL);
            file_text = calloc(1, 1 << 20);
            if (!file_text) return fail("out of memory", NULL);
            fread(file_text, 1, (1 << 20) - 1, f);
            fclose(f);
            prompt = file_text;
        } else if (!strcmp(argv[i], "-n") && has) n_gen = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--lookup") && has) lookup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r") && has) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json")) json = true;
        else {
            fprintf(stderr, "usage: %s -m MODEL [-b cpu|cuda] [-t THREADS] [-k KERNELS] [-p PROMPT | -f FILE] "
                            "[-n 128] [--lookup 8] [-r 2] [--json]\n", argv[0]);
            return 2;
        }
    }
    if (!model || n_gen < 2 || n_gen > MAX_GEN || lookup < 1 || reps < 1) return fail("bad arguments", NULL);
    bn_error err;
    bn_engine *e;
    bn_session *s;
    if (bn_engine_load(model, NULL, &e, &err)) return fail(model, &err);
    const bn_model_info info = bn_engine_info(e);
    bn_session_params sp = {.backend = backend, .n_threads = threads, .cpu_kernels = kernels};
    if (bn_session_create(e, &sp, &s, &err)) return fail("session", &err);
    const char *set = bn_session_cpu_kernels(s), *ran = bn_session_backend(s);
    const bool cpu = !strcmp(ran, "cpu");

    // 1. Verifying passes of 1 + k tokens after CONTEXT tokens.
    int32_t toks[CONTEXT + MAX_K + 1];
    for (int i = 0; i < CONTEXT + MAX_K + 1; i++) toks[i] = (int32_t)((1000 + 7919 * i) % info.n_vocab);
    float *rows = malloc(sizeof *rows * (size_t)info.n_vocab * (MAX_K + 1));
    if (!rows) return fail("out of memory", NULL);
    if (bn_session_eval(s, toks, CONTEXT, rows, &err)) return fail("context", &err);
    double pass_ms[MAX_K + 1];
    for (int k = 0; k <= MAX_K; k++) {
        pass_ms[k] = 1e30;
        for (int r = 0; r < 5; r++) {
            if (bn_session_keep_prefix(s, toks, CONTEXT + 1) != CONTEXT) return fail("keep_prefix", NULL);
            const double t0 = bn_now_ms();
            if (bn_session_eval_all(s, toks + CONTEXT, (size_t)k + 1, rows, &err)) return fail("pass", &err);
            const double t = bn_now_ms() - t0;
            if (t < pass_ms[k]) pass_ms[k] = t;
        }
    }
    free(rows);
    bn_session_free(s);

    // 2. Generations, lookup off and on, alternated.
    int32_t *ids;
    size_t n_ids;
    if (bn_engine_tokenize(e, prompt, bn_engine_add_bos(e), false, &ids, &n_ids, &err)) return fail("prompt", &err);
    static gen runs[2];
    double ms[2] = {1e30, 1e30};
    bn_lookup_stats stats = {0};
    const bn_sampling greedy = bn_sampling_greedy();
    for (int r = 0; r < reps; r++)
        for (int on = 0; on < 2; on++) {
            bn_timings t;
            if (bn_session_create(e, &sp, &s, &err) || bn_session_set_lookup(s, on ? lookup : 0, &err))
                return fail("session", &err);
            runs[on].n = 0;
            if (bn_session_generate(s, ids, n_ids, n_gen, &greedy, collect, &runs[on], &t, &err))
                return fail("generate", &err);
            const double per = t.decode_ms / (t.n_gen > 1 ? t.n_gen - 1 : 1);
            if (per < ms[on]) ms[on] = per;
            if (on) stats = bn_session_lookup_stats(s);
            bn_session_free(s);
        }
    const bool same = runs[0].n == runs[1].n && !memcmp(runs[0].ids, runs[1].ids, sizeof *ids * (size_t)runs[0].n);

    fprintf(stderr, "bench_lookup: %s, %s%s%s, %d threads\n", model, ran, set ? "/" : "", set ? set : "", threads);
    fprintf(stderr, "a pass of 1 + k tokens after %d, every row (best of 5):\n", CONTEXT);
    for (int k = 0; k <= MAX_K; k++)
        fprintf(stderr, "  k = %d: %7.2f ms = %.2f steps\n", k, pass_ms[k], pass_ms[k] / pass_ms[0]);
    fprintf(stderr, "generation of %d greedy tokens from a %zu-token prompt (best of %d):\n", n_gen, n_ids, reps);
    fprintf(stderr, "  lookup off: %.2f ms/token\n  lookup %d:  %.2f ms/token (%.2fx); ", ms[0], lookup, ms[1],
            ms[0] / ms[1]);
    fprintf(stderr, "%" PRIu64 " drafted in %" PRIu64 " passes, %" PRIu64 " taken; tokens %s\n", stats.drafted,
            stats.passes, stats.accepted,
            same ? "the same" : cpu ? "DIFFER" : "differ (a near tie, within rounding here)");
    if (json) {
        printf("{\"model\": \"%s\", \"backend\": \"%s\", \"cpu_kernels\": \"%s\", \"threads\": %d, \"pass_ms\": [",
               model, ran, set ? set : "", threads);
        for (int k = 0; k <= MAX_K; k++) printf("%s%.3f", k ? ", " : "", pass_ms[k]);
        printf("], \"prompt_tokens\": %zu, \"generated\": %d, \"ms_per_token\": %.3f, \"lookup\": %d, "
               "\"lookup_ms_per_token\": %.3f, \"drafted\": %" PRIu64 ", \"accepted\": %" PRIu64
               ", \"passes\": %" PRIu64 ", \"same\": %s}\n",
               n_ids, n_gen, ms[0], lookup, ms[1], stats.drafted, stats.accepted, stats.passes,
               same ? "true" : "false");
    }
    free(ids);
    free(file_text);
    bn_engine_free(e);
    return same || !cpu ? 0 : 1;
}
