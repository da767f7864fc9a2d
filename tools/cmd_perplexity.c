// cmd_perplexity.c - `bitnet-gpu perplexity`: how well a model predicts a text,
// computed as llama.cpp's llama-perplexity computes it, so the two tools' numbers
// compare directly (scripts/golden/make-perplexity-golden.sh runs bitnet.cpp's).
//
// The text is tokenized whole (BOS first where the vocabulary asks for it) and
// cut into chunks of -c tokens (default 512); each chunk is evaluated from an
// empty context with its first token replaced by BOS, and its second half is
// scored: the negative log-probability of every token from the row before it.
// The perplexity is exp(mean of those), printed as it goes after each chunk
// ("[1]12.3456,[2]...") and at the end with its standard error.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "clock.h"
#include "commands.h"
#include "default_model.h"
#include "logprob.h"
#include "run.h"

#define PERPLEXITY_FLAGS (BN_FLAGS_PROMPT | BN_FLAGS_FILE | BN_FLAGS_BACKEND | BN_FLAGS_JSON | BN_FLAGS_PERPLEXITY)
#define PERPLEXITY_SYNOPSIS "[-m MODEL] -f FILE [-c 512] [--chunks N] [options]"
#define DEFAULT_CTX 512
#define DEFAULT_BATCH 128

typedef struct score {
    double nll, nll2; // sums of -log p and its square over the scored tokens
    long count;
} score;

// Feeds chunk[0..n_ctx) from an empty context, `batch` tokens a pass, and scores
// tokens first+1..n_ctx-1 from the rows before them. Passes wholly before `first`
// bring back only their last row.
static int score_chunk(bn_session *s, const int32_t *chunk, int n_ctx, int batch, int n_vocab, float *rows,
                       score *sc, bn_error *err) {
    const int first = n_ctx / 2;
    bn_session_reset(s);
    for (int j0 = 0; j0 < n_ctx; j0 += batch) {
        const int n = n_ctx - j0 < batch ? n_ctx - j0 : batch;
        if (j0 + n <= first) {
            if (bn_session_eval(s, chunk + j0, (size_t)n, rows, err)) return -1;
            continue;
        }
        if (bn_session_eval_all(s, chunk + j0, (size_t)n, rows, err)) return -1;
        for (int j = j0 < first ? first - j0 : 0; j < n && j0 + j < n_ctx - 1; j++) {
            const float *row = rows + (size_t)j * n_vocab;
            float max;
            const double log_sum = bn_log_sum_exp(row, n_vocab, &max);
            const double v = -bn_logprob(row, chunk[j0 + j + 1], max, log_sum);
            sc->nll += v;
            sc->nll2 += v * v;
            sc->count++;
        }
    }
    return 0;
}

static int check_flags(const bn_run_flags *f) {
    const char *why = f->prompt && f->prompt_file        ? "-p and -f both give the text: use one of them"
                    : !f->prompt && !f->prompt_file      ? "perplexity needs a text: -f FILE (or -p TEXT)"
                                                         : NULL;
    if (!why) return 0;
    fprintf(stderr, "error: %s (see bitnet-gpu perplexity --help)\n", why);
    return 2;
}

int bn_cmd_perplexity(int argc, char **argv) {
    bn_run_flags f;
    bool help;
    int rc = bn_parse_run_flags("perplexity", PERPLEXITY_FLAGS, PERPLEXITY_SYNOPSIS, argc, argv, &f, &help);
    if (help || rc) return rc;
    if ((rc = check_flags(&f))) return rc;
    if (!f.model && !(f.model = bn_default_model("perplexity"))) return 2;
    if (f.session.n_ctx <= 0) f.session.n_ctx = DEFAULT_CTX;
    const int batch = f.batch > 0 ? f.batch : DEFAULT_BATCH;
    char *file_text = NULL;
    if (f.prompt_file) {
        if (bn_read_prompt_file(f.prompt_file, &file_text)) return 1;
        f.prompt = file_text;
    }
    bn_run r;
    if (bn_run_open(&f, &r)) {
        free(file_text);
        return 1;
    }
    int32_t *tokens = NULL;
    size_t n_tokens = 0;
    float *rows = NULL;
    double *running = NULL;
    bn_error err;
    rc = 1;
    const int n_ctx = bn_session_n_ctx(r.session), n_vocab = bn_engine_info(r.engine).n_vocab;
    if (n_ctx < 3) { // the second half of a chunk less its last token: nothing to score
        fprintf(stderr, "error: a perplexity needs a context of at least 3 tokens (-c %d)\n", n_ctx);
        goto done;
    }
    const bool bos = bn_engine_add_bos(r.engine);
    if (bn_engine_tokenize(r.engine, f.prompt, bos, false, &tokens, &n_tokens, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        goto done;
    }
    if (n_tokens < 2 * (size_t)n_ctx) {
        fprintf(stderr, "error: a perplexity with a context of %d needs at least %d tokens; the text has %zu\n",
                n_ctx, 2 * n_ctx, n_tokens);
        goto done;
    }
    int n_chunks = (int)(n_tokens / (size_t)n_ctx);
    if (f.chunks > 0 && f.chunks < n_chunks) n_chunks = f.chunks;
    const int rows_per_pass = batch < n_ctx ? batch : n_ctx;
    rows = malloc((size_t)rows_per_pass * n_vocab * sizeof *rows);
    running = malloc((size_t)n_chunks * sizeof *running);
    if (!rows || !running) {
        fprintf(stderr, "error: out of memory for %d rows of %d logits\n", rows_per_pass, n_vocab);
        goto done;
    }
    fprintf(stderr, "perplexity: %zu tokens, %d chunks of %d, scoring the second half of each; %d tokens a pass\n",
            n_tokens, n_chunks, n_ctx, rows_per_pass);
    score sc = {0};
    const double t0 = bn_now_ms();
    for (int i = 0; i < n_chunks; i++) {
        int32_t *chunk = tokens + (size_t)i * n_ctx;
        const int32_t original = chunk[0];
        if (bos) chunk[0] = bn_engine_bos(r.engine);
        const int failed = score_chunk(r.session, chunk, n_ctx, rows_per_pass, n_vocab, rows, &sc, &err);
        chunk[0] = original;
        if (failed) {
            fprintf(stderr, "\nerror: %s\n", err.msg);
            goto done;
        }
        running[i] = exp(sc.nll / (double)sc.count);
        if (!f.json) {
            printf("[%d]%.4f,", i + 1, running[i]);
            fflush(stdout);
        }
    }
    const double seconds = (bn_now_ms() - t0) / 1e3;
    const double mean = sc.nll / (double)sc.count, var = sc.nll2 / (double)sc.count - mean * mean;
    const double ppl = exp(mean), ppl_error = var > 0 ? sqrt(var / (double)(sc.count - 1)) * ppl : 0;
    if (f.json) {
        cJSON *o = cJSON_CreateObject(), *per = cJSON_AddArrayToObject(o, "per_chunk");
        cJSON_AddNumberToObject(o, "ppl", ppl);
        cJSON_AddNumberToObject(o, "ppl_error", ppl_error);
        cJSON_AddNumberToObject(o, "n_ctx", n_ctx);
        cJSON_AddNumberToObject(o, "chunks", n_chunks);
        cJSON_AddNumberToObject(o, "tokens", (double)n_tokens);
        cJSON_AddNumberToObject(o, "tokens_scored", (double)sc.count);
        for (int i = 0; i < n_chunks; i++) cJSON_AddItemToArray(per, cJSON_CreateNumber(running[i]));
        cJSON_AddStringToObject(o, "backend", bn_session_backend(r.session));
        cJSON_AddNumberToObject(o, "seconds", seconds);
        bn_print_json(o, false);
    } else {
        printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", ppl, ppl_error);
    }
    fprintf(stderr, "perplexity: %ld tokens scored in %.2f s on %s (%.1f tokens/s fed)\n", sc.count, seconds,
            bn_session_backend(r.session), (double)n_chunks * n_ctx / seconds);
    rc = 0;
done:
    free(running);
    free(rows);
    free(tokens);
    free(file_text);
    bn_run_close(&r);
    return rc;
}
