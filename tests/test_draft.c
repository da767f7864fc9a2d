// test_draft.c - bn_draft_steps (core/draft.c), the draft model's calls for
// several sequences at once, on the shipped model: each sequence drafts the
// tokens it drafts alone (a sequence's row in a call of several is its row in
// a call of its own, bit for bit, on the CPU), greedy, with a p-min and
// sampled; the calls go a token at a time for all sequences together, at most
// BN_DRAFT_CALL_RUNS sequences a call, and a first feed longer than the call's
// room is split; a sequence fed its prompt ahead feeds only the rest at its
// draft; the back-off idles and counts misses. A p-min test from the
// backend's best entries and softmax denominators (forward_top) drafts what it
// drafts from whole rows, and holds at p-min's boundary either way. A draft
// model that fails, at its first pass or midway, costs a session or a batch
// its drafts, not its tokens.
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "bitnet.h"
#include "devtools.h"
#include "draft.h"
#include "engine_internal.h"
#include "sampler.h"

#define N_SEQ 20  // more than BN_DRAFT_CALL_RUNS
#define MAX_DRAFT 6
#define TEXT_MAX 24

static bn_engine *g_engine;
static int32_t *g_text;
static size_t g_n_text;

static int setup(void **state) {
    (void)state;
    bn_error err = {{0}};
    if (!(g_engine = bn_shipped_engine()) ||
        bn_engine_tokenize(g_engine, "It is a truth universally acknowledged, that a single man in possession",
                           true, false, &g_text, &g_n_text, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return g_n_text >= 8 ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    free(g_text);
    bn_engine_free(g_engine);
    return 0;
}

// A backend's ops, counting its forward calls (of every kind).
static bn_backend_ops g_counted;
static const bn_backend_ops *g_inner;
static int g_calls, g_tokens, g_top_calls;
static bool g_no_top; // open_counted's backends without forward_top: whole rows

static int counted_forward(bn_backend *be, const int32_t *t, const int32_t *p, const int32_t *s, int n, float *l,
                           bool all, bn_error *err) {
    g_calls++, g_tokens += n;
    return g_inner->forward(be, t, p, s, n, l, all, err);
}
static int counted_argmax(bn_backend *be, const int32_t *t, const int32_t *p, const int32_t *s, int n, int32_t *a,
                          bn_error *err) {
    g_calls++, g_tokens += n;
    return g_inner->forward_argmax(be, t, p, s, n, a, err);
}
static int counted_top(bn_backend *be, const int32_t *t, const int32_t *p, const int32_t *s, int n, bn_top *top,
                       double *sums, bn_error *err) {
    g_calls++, g_tokens += n, g_top_calls++;
    return g_inner->forward_top(be, t, p, s, n, top, sums, err);
}

// A CPU backend of the shipped model with n_seq sequences of n_ctx positions,
// its calls counted.
static bn_opened open_counted(int n_seq, int n_ctx) {
    const bn_session_params p = {.backend = "cpu", .n_threads = 2, .n_ctx = n_ctx};
    bn_opened o;
    bn_error err;
    if (bn_backend_open(g_engine, &p, n_seq, &o, &err)) fail_msg("%s", err.msg);
    g_inner = o.ops;
    g_counted = *o.ops;
    g_counted.forward = counted_forward;
    g_counted.forward_argmax = o.ops->forward_argmax ? counted_argmax : NULL;
    g_counted.forward_top = o.ops->forward_top && !g_no_top ? counted_top : NULL;
    o.ops = &g_counted;
    return o;
}

// Sequence i's text: the start of g_text, 3 + i % 5 tokens long.
static int text_len(int i) { return 3 + i % 5; }

typedef struct drafts {
    int32_t out[N_SEQ][MAX_DRAFT];
    int got[N_SEQ];
    int calls;
    bn_draft_backoff backoff[N_SEQ];
} drafts;

// Drafts for sequences first .. first + n (their samplers smp[i], NULL: greedy)
// in one bn_draft_steps over backend o, whose sequence slot j is sequence first + j.
static void draft_together(bn_opened *o, int first, int n, bn_sampler *const *smp, float p_min, drafts *d) {
    const int32_t V = (int32_t)g_engine->model->hp.n_vocab;
    bn_error err;
    bn_draft_call call;
    bn_draft_seq seq[N_SEQ];
    bn_draft_job jobs[N_SEQ];
    bn_sampler *copy[N_SEQ] = {0};
    int32_t hist[N_SEQ][TEXT_MAX + MAX_DRAFT + 1];
    bn_sampler *greedy = NULL;
    const bn_sampling g = bn_sampling_greedy();
    assert_int_equal(bn_sampler_create(&g, V, TEXT_MAX + MAX_DRAFT, &greedy, &err), 0);
    assert_int_equal(bn_draft_call_init(&call, o->n_ctx, n, n > 1, &err), 0);
    float *rows = malloc((size_t)call.max_runs * V * sizeof *rows);
    assert_non_null(rows);
    for (int j = 0; j < n; j++) {
        const int i = first + j;
        seq[j] = (bn_draft_seq){.hist = hist[j], .slot = j, .n_ctx = o->n_ctx};
        jobs[j] = (bn_draft_job){.seq = &seq[j], .backoff = &d->backoff[i], .copy = &copy[j],
                                 .smp = smp[i] ? smp[i] : greedy, .text = g_text, .n = text_len(i),
                                 .max = MAX_DRAFT, .out = d->out[i]};
    }
    g_calls = 0;
    if (bn_draft_steps(o, V, &call, jobs, n, p_min, rows, &err)) fail_msg("%s", err.msg);
    d->calls += g_calls;
    for (int j = 0; j < n; j++) d->got[first + j] = jobs[j].got;
    for (int j = 0; j < n; j++) bn_sampler_free(copy[j]);
    bn_sampler_free(greedy);
    bn_draft_call_free(&call);
    free(rows);
}

// Every sequence drafting alone, on a backend of its own.
static void draft_alone(bn_sampler *const *smp, float p_min, drafts *d) {
    for (int i = 0; i < N_SEQ; i++) {
        bn_opened o = open_counted(1, 64);
        draft_together(&o, i, 1, smp, p_min, d);
        o.ops->destroy(o.be);
    }
}

static void expect_same_drafts(const drafts *a, const drafts *b) {
    for (int i = 0; i < N_SEQ; i++) {
        assert_int_equal(a->got[i], b->got[i]);
        assert_memory_equal(a->out[i], b->out[i], sizeof a->out[i][0] * (size_t)a->got[i]);
    }
}

// Samplers: none (greedy), or each sequence its own seed and temperature.
static void make_samplers(bn_sampler **smp, bool sampled) {
    bn_error err;
    for (int i = 0; i < N_SEQ; i++) {
        smp[i] = NULL;
        if (!sampled) continue;
        bn_sampling s = bn_sampling_default();
        s.temperature = 0.7f + 0.05f * (float)i;
        s.seed = 40 + (uint64_t)i;
        if (i % 3 == 1) s.top_k = 0, s.top_p = 1, s.min_p = 0; // no top-k: whole rows
        assert_int_equal(bn_sampler_create(&s, (int32_t)g_engine->model->hp.n_vocab, 64, &smp[i], &err), 0);
    }
}

// The calls a token at a time together take: at round r, the sequences still
// drafting (alone, sequence i took calls_i: a call per token, and one more
// where it stopped short of MAX_DRAFT), BN_DRAFT_CALL_RUNS a call.
static int calls_together(const drafts *d) {
    int calls = 0;
    for (int r = 0;; r++) {
        int drafting = 0;
        for (int i = 0; i < N_SEQ; i++) drafting += d->got[i] + (d->got[i] < MAX_DRAFT) > r;
        if (!drafting) return calls;
        calls += (drafting + BN_DRAFT_CALL_RUNS - 1) / BN_DRAFT_CALL_RUNS;
    }
}

// Sequences drafting together draft what each drafts alone. With room for
// every first feed in one call, the calls are calls_together's; with n_ctx
// (the call's room) too short for that, more, yet fewer than alone.
static void check_together(bool sampled, float p_min, int n_ctx, const char *what) {
    bn_sampler *smp[N_SEQ];
    make_samplers(smp, sampled);
    static drafts alone, together;
    memset(&alone, 0, sizeof alone);
    memset(&together, 0, sizeof together);
    draft_alone(smp, p_min, &alone);
    bn_opened o = open_counted(N_SEQ, n_ctx);
    draft_together(&o, 0, N_SEQ, smp, p_min, &together);
    o.ops->destroy(o.be);
    expect_same_drafts(&alone, &together);
    int drafted = 0, feed = 0, stopped = 0;
    for (int i = 0; i < N_SEQ; i++)
        drafted += together.got[i], feed += text_len(i), stopped += together.got[i] < MAX_DRAFT;
    fprintf(stderr, "  %s: %d tokens drafted for %d sequences (%d stopped short) in %d calls, %d alone\n", what,
            drafted, N_SEQ, stopped, together.calls, alone.calls);
    assert_true(drafted > 0);
    assert_int_equal(alone.calls, drafted + stopped);
    if (feed <= n_ctx) assert_int_equal(together.calls, calls_together(&together));
    else assert_true(together.calls > calls_together(&together) && together.calls < alone.calls);
    for (int i = 0; i < N_SEQ; i++) bn_sampler_free(smp[i]);
}

static void test_greedy(void **state) {
    (void)state;
    check_together(false, 0, 128, "greedy");
}

static void test_p_min(void **state) {
    (void)state;
    check_together(false, 0.05f, 128, "greedy, p-min 0.05");
}

static void test_sampled(void **state) {
    (void)state;
    check_together(true, 0, 128, "sampled");
    check_together(true, 0.05f, 128, "sampled, p-min 0.05");
}

static void test_first_feed_split(void **state) {
    (void)state;
    check_together(false, 0, 16, "greedy, 16-token calls");
}

// A p-min test from forward_top's entries and denominators drafts what the
// test on whole rows drafts, greedy and sampled (a third of the samplers take
// whole rows anyway), at three p-mins.
static void test_p_min_from_top(void **state) {
    (void)state;
    for (int sampled = 0; sampled < 2; sampled++)
        for (int k = 0; k < 3; k++) {
            const float p_min = (float[]){0.02f, 0.05f, 0.12f}[k];
            bn_sampler *smp[N_SEQ];
            static drafts top, rows;
            memset(&top, 0, sizeof top);
            memset(&rows, 0, sizeof rows);
            make_samplers(smp, sampled);
            g_top_calls = 0;
            draft_alone(smp, p_min, &top);
            const int top_calls = g_top_calls;
            g_no_top = true;
            draft_alone(smp, p_min, &rows);
            g_no_top = false;
            expect_same_drafts(&top, &rows);
            int drafted = 0;
            for (int i = 0; i < N_SEQ; i++) drafted += top.got[i];
            fprintf(stderr, "  %s, p-min %.2f: %d tokens drafted, %d of %d calls through forward_top\n",
                    sampled ? "sampled" : "greedy", p_min, drafted, top_calls, top.calls);
            assert_true(drafted > 0 && top_calls > 0 && top_calls <= top.calls);
            if (k > 0) assert_true(drafted < N_SEQ * MAX_DRAFT); // some drafts stopped at p-min
            for (int i = 0; i < N_SEQ; i++) bn_sampler_free(smp[i]);
        }
}

// The p-min test against the probability computed here in full (the softmax
// of the row the draft model gives the text, in long double): with p-min just
// under it the draft takes its first token, just over it none, at each of five
// text lengths, from forward_top's denominators and from whole rows.
static void test_p_min_boundary(void **state) {
    (void)state;
    const int32_t V = (int32_t)g_engine->model->hp.n_vocab;
    float *row = malloc((size_t)V * sizeof *row);
    assert_non_null(row);
    for (int i = 0; i < 5; i++) {
        bn_opened o = open_counted(1, 64);
        bn_error err;
        const int n = text_len(i);
        int32_t pos[TEXT_MAX];
        for (int t = 0; t < n; t++) pos[t] = t;
        assert_int_equal(o.ops->forward(o.be, g_text, pos, NULL, n, row, false, &err), 0);
        o.ops->destroy(o.be);
        float best = row[0];
        for (int32_t v = 1; v < V; v++) best = row[v] > best ? row[v] : best;
        long double sum = 0;
        for (int32_t v = 0; v < V; v++) sum += expl((long double)row[v] - best);
        const double p = (double)(1 / sum);
        bn_sampler *smp[N_SEQ] = {0};
        for (int side = 0; side < 4; side++) {
            static drafts d;
            memset(&d, 0, sizeof d);
            g_no_top = side >= 2;
            bn_opened fresh = open_counted(1, 64);
            draft_together(&fresh, i, 1, smp, (float)(side % 2 ? p * 1.0001 : p * 0.9999), &d);
            fresh.ops->destroy(fresh.be);
            g_no_top = false;
            assert_true(side % 2 ? d.got[i] == 0 : d.got[i] >= 1); // its first token, and maybe more
        }
    }
    free(row);
}

// A feed_only job feeds the text as far as it goes, once (a second asks for no
// call), touching no back-off; the draft after it feeds only the rest, and
// drafts what the sequence drafts from scratch.
static void test_feed_only(void **state) {
    (void)state;
    const int32_t V = (int32_t)g_engine->model->hp.n_vocab;
    bn_error err;
    bn_draft_call call;
    int32_t hist[TEXT_MAX + MAX_DRAFT + 1], out[MAX_DRAFT];
    float *row = malloc((size_t)V * sizeof *row);
    assert_non_null(row);
    bn_opened o = open_counted(1, 64);
    assert_int_equal(bn_draft_call_init(&call, o.n_ctx, 1, false, &err), 0);
    bn_draft_seq seq = {.hist = hist, .n_ctx = o.n_ctx};
    bn_draft_backoff idle = {.idle = 3};
    for (int round = 0; round < 2; round++) { // the second finds it all fed
        bn_draft_job feed = {.seq = &seq, .feed_only = true, .backoff = &idle, .text = g_text, .n = 5};
        g_calls = g_tokens = 0;
        assert_int_equal(bn_draft_steps(&o, V, &call, &feed, 1, 0, row, &err), 0);
        assert_int_equal(g_calls, round ? 0 : 1);
        assert_int_equal(g_tokens, round ? 0 : 5);
        assert_int_equal(seq.n_past, 5);
        assert_int_equal(feed.got, 0);
        assert_int_equal(idle.idle, 3);
    }
    bn_sampler *greedy = NULL;
    const bn_sampling g = bn_sampling_greedy();
    assert_int_equal(bn_sampler_create(&g, V, 64, &greedy, &err), 0);
    bn_draft_backoff b = {0};
    bn_sampler *copy = NULL;
    bn_draft_job job = {.seq = &seq, .backoff = &b, .copy = &copy, .smp = greedy, .text = g_text, .n = 7,
                        .max = MAX_DRAFT, .out = out};
    g_calls = g_tokens = 0;
    assert_int_equal(bn_draft_steps(&o, V, &call, &job, 1, 0, row, &err), 0);
    assert_int_equal(job.got, MAX_DRAFT);
    assert_int_equal(g_tokens, 2 + MAX_DRAFT - 1); // text[5..7), then a token a call
    static drafts alone;
    memset(&alone, 0, sizeof alone);
    bn_sampler *smp[N_SEQ] = {0};
    bn_opened fresh = open_counted(1, 64);
    draft_together(&fresh, 4, 1, smp, 0, &alone); // sequence 4's text: 7 tokens
    fresh.ops->destroy(fresh.be);
    assert_int_equal(text_len(4), 7);
    assert_int_equal(alone.got[4], MAX_DRAFT);
    assert_memory_equal(alone.out[4], out, sizeof out);
    bn_sampler_free(greedy);
    bn_draft_call_free(&call);
    o.ops->destroy(o.be);
    free(row);
}

// A draft that gives no token counts a miss, and the back-off then idles the
// sequence's next draft: no call, nothing drafted, no miss more.
static void test_backoff(void **state) {
    (void)state;
    bn_sampler *smp[N_SEQ] = {0};
    static drafts d;
    memset(&d, 0, sizeof d);
    bn_opened o = open_counted(N_SEQ, 128);
    draft_together(&o, 0, N_SEQ, smp, 1.0f, &d); // no token is that sure
    for (int i = 0; i < N_SEQ; i++) {
        assert_int_equal(d.got[i], 0);
        assert_int_equal(d.backoff[i].misses, 1);
        assert_int_equal(d.backoff[i].idle, 1);
    }
    assert_int_equal(d.calls, 2); // the first feed, 16 and 4 sequences
    draft_together(&o, 0, N_SEQ, smp, 0, &d);
    assert_int_equal(d.calls, 2);
    for (int i = 0; i < N_SEQ; i++) {
        assert_int_equal(d.got[i], 0);
        assert_int_equal(d.backoff[i].misses, 1);
        assert_int_equal(d.backoff[i].idle, 0);
    }
    draft_together(&o, 0, N_SEQ, smp, 0, &d); // drafts again
    for (int i = 0; i < N_SEQ; i++) assert_int_equal(d.got[i], MAX_DRAFT);
    bn_draft_judge(&d.backoff[0], true);
    assert_int_equal(d.backoff[0].misses, 0);
    o.ops->destroy(o.be);
}

// ---- a draft model that fails -------------------------------------------------------

// A copy of the model file src (m: the model loaded from it) with an f16 NaN in
// row `row` of its embedding, loaded from path (a mkstemp template).
static bn_engine *nan_in_row(const char *src, const bn_model *m, int32_t row, char *path) {
    FILE *f = fopen(src, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    rewind(f);
    uint8_t *bytes = malloc((size_t)n);
    assert_int_equal(fread(bytes, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    const bn_tensor *e = &m->tok_embd;
    assert_int_equal(e->type, BN_GGML_F16);
    const size_t at = (size_t)((const uint8_t *)e->data - m->gguf->base) + ((size_t)row * e->ne0 + 1) * 2;
    bytes[at] = 0x00, bytes[at + 1] = 0x7e; // f16 NaN
    const int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, bytes, (size_t)n), n);
    close(fd);
    free(bytes);
    bn_engine *bad;
    bn_error err;
    if (bn_engine_load(path, NULL, &bad, &err)) fail_msg("%s", err.msg);
    return bad;
}

static int collect(void *user, int32_t id, const char *text, size_t len) {
    (void)text, (void)len;
    int32_t *ids = user;
    if (id >= 0) ids[1 + ids[0]++] = id;
    return 0;
}

static void expect_note(const char *note) {
    if (!note) fail_msg("no note says the draft model failed");
    if (!strstr(note, "the draft model failed") || !strstr(note, "NaN or an infinity")) fail_msg("note: %s", note);
}

enum { N_FAIL = 40 }; // tokens each generation below makes

// The main model's greedy tokens alone: alone[0] of them, from alone[1].
static void tokens_alone(int32_t alone[N_FAIL + 1]) {
    const bn_session_params sp = {.backend = "cpu", .n_threads = 2, .n_ctx = 128};
    const bn_sampling greedy = bn_sampling_greedy();
    bn_session *s;
    bn_error err;
    memset(alone, 0, sizeof(int32_t) * (N_FAIL + 1));
    if (bn_session_create(g_engine, &sp, &s, &err) ||
        bn_session_generate(s, g_text, g_n_text, N_FAIL, &greedy, collect, alone, NULL, &err))
        fail_msg("%s", err.msg);
    bn_session_free(s);
    assert_int_equal(alone[0], N_FAIL);
}

// With `bad` drafting (a draft model whose passes fail, at once or later), a
// session and a two-slot batch (one request ahead of the other) give the tokens
// the main model gives alone, say why drafting stopped, and drafted at least
// `drafted_least` tokens before it did.
static void check_failing_draft(bn_engine *bad, const int32_t alone[N_FAIL + 1], uint64_t drafted_least) {
    const bn_session_params sp = {.backend = "cpu", .n_threads = 2, .n_ctx = 128};
    const bn_sampling greedy = bn_sampling_greedy();
    bn_session *s = NULL, *d = NULL;
    bn_error err;
    if (bn_session_create(g_engine, &sp, &s, &err) || bn_session_create(bad, &sp, &d, &err) ||
        bn_session_set_draft(s, d, 4, 0, &err))
        fail_msg("%s", err.msg);
    assert_null(bn_session_draft_note(s));
    int32_t drafted[N_FAIL + 1] = {0};
    if (bn_session_generate(s, g_text, g_n_text, N_FAIL, &greedy, collect, drafted, NULL, &err))
        fail_msg("%s", err.msg);
    assert_memory_equal(alone, drafted, sizeof drafted);
    expect_note(bn_session_draft_note(s));
    if (bn_session_lookup_stats(s).drafted < drafted_least) fail_msg("the session drafted too little");
    bn_session_set_draft(s, d, 4, 0, &err); // cleared by a new draft
    assert_null(bn_session_draft_note(s));
    bn_session_free(s);
    bn_session_free(d);

    const bn_batch_params bp = {.session = sp, .n_slots = 2};
    bn_batch *b;
    if (bn_batch_create(g_engine, &bp, &b, &err) || bn_batch_set_draft(b, bad, &sp, 4, 0, &err))
        fail_msg("%s", err.msg);
    int32_t got[2][N_FAIL] = {{0}}, n_got[2] = {0};
    const bn_request req = {.prompt = g_text, .n_prompt = g_n_text, .max_tokens = N_FAIL, .sampling = greedy};
    assert_int_equal(bn_batch_add(b, &req, &err), 0);
    for (int done = 0, steps = 0; done < 2; steps++) {
        if (steps == 3 && bn_batch_add(b, &req, &err) != 1) fail_msg("%s", err.msg);
        const bn_batch_event *ev;
        int n;
        if (bn_batch_step(b, &ev, &n, &err)) fail_msg("%s", err.msg);
        for (int i = 0; i < n; i++) {
            if (ev[i].token >= 0 && !ev[i].eog) got[ev[i].slot][n_got[ev[i].slot]++] = ev[i].token;
            if (ev[i].done) bn_batch_remove(b, ev[i].slot), done++;
        }
    }
    for (int k = 0; k < 2; k++) {
        assert_int_equal(n_got[k], N_FAIL);
        assert_memory_equal(got[k], alone + 1, sizeof got[k]);
    }
    expect_note(bn_batch_draft_note(b));
    if (bn_batch_lookup_stats(b).drafted < drafted_least) fail_msg("the batch drafted too little");
    bn_batch_free(b);
}

// A draft model that fails at its first pass: the shipped model with a NaN in
// row 3 of its tied embedding (logit 3 of every token is NaN).
static void test_failing_draft_model(void **state) {
    (void)state;
    int32_t alone[N_FAIL + 1];
    tokens_alone(alone);
    char src[4096], path[] = "/tmp/bn_test_draft_XXXXXX";
    bn_engine *bad = nan_in_row(bn_shipped_path("models/bitnet-austen-6m.gguf", src, sizeof src), g_engine->model, 3,
                                path);
    check_failing_draft(bad, alone, 0);
    bn_engine_free(bad);
    unlink(path);
}

// One that fails midway, after drafting: a random model of the same vocabulary
// with an untied head and a NaN in the embedding row of a token the reply
// writes later (not in the prompt or the reply before it). A NaN in one token's
// row reaches only that token's own logits (the int8 activations of the layers
// after it leave the other positions finite), so the draft model fails at the
// first draft call that ends with that token, if one does: the first such
// token of the reply for which one does, after some drafts, is the one taken.
static void test_draft_model_fails_midway(void **state) {
    (void)state;
    int32_t alone[N_FAIL + 1];
    tokens_alone(alone);
    char src[4096], random_path[64], path[] = "/tmp/bn_test_draft_XXXXXX";
    bn_synth_config cfg;
    bn_error err;
    bn_engine *random;
    if (bn_synth_preset("tiny", &cfg, &err)) fail_msg("%s", err.msg);
    cfg.vocab_path = bn_shipped_path("models/bitnet-austen-6m.gguf", src, sizeof src);
    cfg.untied_head = true, cfg.seed = 5;
    bn_tmp_path(random_path, sizeof random_path, "draft");
    if (bn_synth_model_write(&cfg, random_path, &err) || bn_engine_load(random_path, NULL, &random, &err))
        fail_msg("%s", err.msg);
    const bn_session_params sp = {.backend = "cpu", .n_threads = 2, .n_ctx = 128};
    const bn_sampling greedy = bn_sampling_greedy();
    bn_engine *bad = NULL;
    for (int k = 2; k < N_FAIL / 2 && !bad; k++) {
        bool seen = false;
        for (size_t i = 0; i < g_n_text; i++) seen |= g_text[i] == alone[k];
        for (int i = 1; i < k; i++) seen |= alone[i] == alone[k];
        if (seen) continue;
        bn_engine *e = nan_in_row(random_path, random->model, alone[k], path);
        bn_session *s = NULL, *d = NULL;
        int32_t ids[N_FAIL + 1] = {0};
        if (bn_session_create(g_engine, &sp, &s, &err) || bn_session_create(e, &sp, &d, &err) ||
            bn_session_set_draft(s, d, 4, 0, &err) ||
            bn_session_generate(s, g_text, g_n_text, N_FAIL, &greedy, collect, ids, NULL, &err))
            fail_msg("%s", err.msg);
        if (bn_session_draft_note(s) && bn_session_lookup_stats(s).drafted > 0) {
            fprintf(stderr, "  the draft model fails at the reply's token %d, after %llu drafted\n", k,
                    (unsigned long long)bn_session_lookup_stats(s).drafted);
            bad = e;
        } else {
            bn_engine_free(e);
            unlink(path);
            memcpy(path + strlen(path) - 6, "XXXXXX", 6);
        }
        bn_session_free(s);
        bn_session_free(d);
    }
    bn_engine_free(random);
    if (!bad) fail_msg("no token of the reply made the draft model fail after drafts");
    check_failing_draft(bad, alone, 1);
    bn_engine_free(bad);
    unlink(path);
    unlink(random_path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy),          cmocka_unit_test(test_p_min),   cmocka_unit_test(test_sampled),
        cmocka_unit_test(test_first_feed_split), cmocka_unit_test(test_p_min_from_top),
        cmocka_unit_test(test_p_min_boundary),   cmocka_unit_test(test_feed_only),
        cmocka_unit_test(test_backoff),          cmocka_unit_test(test_failing_draft_model),
        cmocka_unit_test(test_draft_model_fails_midway),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
