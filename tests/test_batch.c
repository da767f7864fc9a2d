// test_batch.c - many sequences in one forward pass, and the batch API on top.
//
// Backend level (core/backend.h): a forward over several sequences - prompt
// chunks of some, decode tokens of others, in one call - gives the logits of
// running each sequence alone: bit for bit on the CPU, whose kernels do not
// depend on how tokens are grouped. On CUDA a decode step of several sequences
// is bit-identical too (each token's arithmetic is its own), but a prompt cut
// into other chunks takes other attention kernels (one token: the split-KV
// decode kernel; several: the tensor-core prefill kernel), which sum in another
// order, so there the staggered runs are held to the fixtures' tolerance. A
// slot reused from position 0 forgets its old sequence; bad sequence ids and
// runs are errors. Batch level (bitnet.h bn_batch): greedy
// tokens through a batch equal bn_session_generate's, however the requests
// overlap and whatever start of a prompt a slot had cached; stop strings,
// max_tokens, the context limit, removal and the errors. A session's prompt
// cache (bn_session_keep_prefix) against a fresh session. Logprobs against the
// log-softmax of a fresh session's logits; prompt logprobs against those and
// against bitnet.cpp's golden logits. JSON mode against cJSON.
// Model: the tiny-a fixture (skips without it).
#include "test_util.h"

#include <math.h>

#include <cjson/cJSON.h>

#include "argmax.h"
#include "engine_internal.h" // the engine's tokenizer (test_json_mask_exact)
#include "golden_case.h"
#include "json_mask.h"
#include "backend.h"
#include "bitnet.h"
#include "model.h"
#include "top.h"

#define N_SEQ 4
#define N_CTX 64
#define N_DECODE 6

static const char *const prompts[N_SEQ] = {"2+2=", "The capital of France is",
                                           "Once upon a time, in a land far away,", "A"};

typedef struct fixture {
    bn_engine *engine;
    bn_model *model;
    int32_t *ids[N_SEQ];
    size_t n_ids[N_SEQ];
} fixture;
static fixture fx;

static int setup(void **state) {
    (void)state;
    char buf[4096];
    const char *path = bn_fixture_path("tiny-a/tiny-a.gguf", buf, sizeof buf);
    bn_error err;
    if (!path) return 0; // each test skips
    if (bn_engine_load(path, NULL, &fx.engine, &err) || bn_model_load(path, &fx.model, &err)) {
        fprintf(stderr, "load: %s\n", err.msg);
        return -1;
    }
    for (int s = 0; s < N_SEQ; s++)
        if (bn_engine_tokenize(fx.engine, prompts[s], true, false, &fx.ids[s], &fx.n_ids[s], &err))
            return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    for (int s = 0; s < N_SEQ; s++) free(fx.ids[s]);
    bn_model_free(fx.model);
    bn_engine_free(fx.engine);
    return 0;
}

#define REQUIRE_MODEL()                                                                  \
    do {                                                                                 \
        BN_REQUIRE_FIXTURE(p_, "tiny-a/tiny-a.gguf");                                    \
        (void)p_;                                                                        \
    } while (0)

static bn_backend *create(const bn_backend_ops *ops, int n_seq, int max_batch) {
    bn_backend_config cfg = {.n_ctx = N_CTX, .n_seq = n_seq, .max_batch = max_batch, .cpu.n_threads = 2};
    bn_backend *be = NULL;
    bn_error err;
    if (ops->create(fx.model, &cfg, &be, &err)) fail_msg("create: %s", err.msg);
    return be;
}

// Each sequence alone: its prompt's last row, then N_DECODE greedy steps' rows.
// ref[s][k] is row k of sequence s (k = 0: after the prompt); tok[s][k] its argmax.
static void run_alone(const bn_backend_ops *ops, float *ref, int32_t tok[N_SEQ][N_DECODE + 1]) {
    const int64_t V = fx.model->hp.n_vocab;
    bn_error err;
    for (int s = 0; s < N_SEQ; s++) {
        bn_backend *be = create(ops, 1, 0);
        int32_t pos[N_CTX];
        for (int i = 0; i < N_CTX; i++) pos[i] = i;
        int n = (int)fx.n_ids[s];
        float *row = ref + (int64_t)s * (N_DECODE + 1) * V;
        if (ops->forward(be, fx.ids[s], pos, NULL, n, row, false, &err)) fail_msg("%s", err.msg);
        for (int k = 0; k <= N_DECODE; k++) {
            int32_t id = bn_argmax(row + k * V, (int32_t)V);
            tok[s][k] = id;
            if (k == N_DECODE) break;
            if (ops->forward(be, &id, &pos[n + k], NULL, 1, row + (k + 1) * V, false, &err))
                fail_msg("%s", err.msg);
        }
        ops->destroy(be);
    }
}

// Row `got` against the sequence alone: bit for bit, or (exact false) within
// the fixtures' tolerance (max |diff| 0.1, mean 1e-3) and with the same argmax
// unless the row alone has a near tie there (its best leads ours by at most
// twice the difference: the other kernel's summation order may flip it).
static void check_row(const bn_backend_ops *ops, bool exact, const float *row, const float *want, int s, int got,
                      int max_batch) {
    const int64_t V = fx.model->hp.n_vocab;
    if (exact) {
        if (memcmp(row, want, sizeof(float) * V))
            fail_msg("%s, max_batch %d: sequence %d row %d differs from the sequence alone", ops->name, max_batch,
                     s, got);
        return;
    }
    double mx = 0, mean = 0;
    for (int64_t i = 0; i < V; i++) {
        const double d = fabs((double)row[i] - want[i]);
        mx = d > mx ? d : mx;
        mean += d / (double)V;
    }
    const int32_t ours = bn_argmax(row, (int32_t)V), best = bn_argmax(want, (int32_t)V);
    if (!(mx <= 0.1 && mean <= 1e-3) || (ours != best && !(want[best] - want[ours] <= 2 * mx)))
        fail_msg("%s, max_batch %d: sequence %d row %d: max |diff| %.3g, mean %.3g from the sequence alone",
                 ops->name, max_batch, s, got, mx, mean);
}

// Feeds the sequences together, staggered so that one call mixes prompt chunks
// and decode tokens: sequence s starts at step s, its prompt in chunks of 3.
static void run_batched(const bn_backend_ops *ops, int max_batch, bool exact, const float *ref,
                        int32_t tok[N_SEQ][N_DECODE + 1]) {
    const int64_t V = fx.model->hp.n_vocab;
    bn_backend *be = create(ops, N_SEQ, max_batch);
    float *rows = malloc(sizeof(float) * N_SEQ * V);
    int fed[N_SEQ] = {0}, got[N_SEQ] = {0};
    bn_error err;
    for (int step = 0; step < 64; step++) {
        int32_t t[N_SEQ * 4], p[N_SEQ * 4], q[N_SEQ * 4], run_seq[N_SEQ];
        bool run_row[N_SEQ];
        int n = 0, runs = 0;
        for (int s = N_SEQ - 1; s >= 0; s--) { // slots out of order in the call
            if (step < s || got[s] > N_DECODE) continue;
            const int np = (int)fx.n_ids[s];
            if (fed[s] < np) {
                const int take = np - fed[s] < 3 ? np - fed[s] : 3;
                for (int i = 0; i < take; i++, n++) t[n] = fx.ids[s][fed[s] + i], p[n] = fed[s] + i, q[n] = s;
                fed[s] += take;
                run_row[runs] = fed[s] == np;
            } else { // the token picked from the last row
                t[n] = tok[s][got[s] - 1], p[n] = fed[s]++, q[n] = s, n++;
                run_row[runs] = true;
            }
            run_seq[runs++] = s;
        }
        if (!n) break;
        if (ops->forward(be, t, p, q, n, rows, false, &err)) fail_msg("%s", err.msg);
        for (int r = 0; r < runs; r++) {
            const int s = run_seq[r];
            if (!run_row[r]) continue;
            check_row(ops, exact, rows + r * V, ref + ((int64_t)s * (N_DECODE + 1) + got[s]) * V, s, got[s],
                      max_batch);
            got[s]++;
        }
    }
    for (int s = 0; s < N_SEQ; s++) assert_int_equal(got[s], N_DECODE + 1);

    // forward_argmax gives one id per run; a reused slot starts afresh at position 0.
    int32_t t[2] = {fx.ids[2][0], fx.ids[0][0]}, p[2] = {0, 0}, q[2] = {1, 3}, am[2];
    if (ops->forward_argmax(be, t, p, q, 2, am, &err)) fail_msg("%s", err.msg);
    bn_backend *one = create(ops, 1, 0);
    int32_t alone;
    if (ops->forward_argmax(one, &t[1], &p[1], NULL, 1, &alone, &err)) fail_msg("%s", err.msg);
    assert_int_equal(am[1], alone);
    ops->destroy(one);
    free(rows);
    ops->destroy(be);
}

// forward_top's entries for the call just made through forward() (the same
// input again: the same K/V written), against bn_top_select of its rows; and
// its rows' softmax denominators against bn_top_exp_sum's (the CPU's bit for
// bit, another backend's within 1e-12: the same terms in another order).
static void check_top(const bn_backend_ops *ops, bn_backend *be, const int32_t *t, const int32_t *pos,
                      const int32_t *seq, int n, int n_rows, const float *rows) {
    const int64_t V = fx.model->hp.n_vocab;
    const int32_t k = V < BN_TOP_MAX ? (int32_t)V : BN_TOP_MAX;
    bn_top *got = malloc(sizeof(bn_top) * BN_TOP_MAX * n_rows), want[BN_TOP_MAX];
    double *sums = malloc(sizeof(double) * n_rows);
    bn_error err;
    for (int with_sums = 0; with_sums < 2; with_sums++) {
        if (ops->forward_top(be, t, pos, seq, n, got, with_sums ? sums : NULL, &err)) fail_msg("%s", err.msg);
        for (int r = 0; r < n_rows; r++) {
            bn_top_select(rows + r * V, (int32_t)V, k, want);
            for (int32_t i = k; i < BN_TOP_MAX; i++) want[i] = (bn_top){-1, -INFINITY};
            if (memcmp(got + r * BN_TOP_MAX, want, sizeof want))
                fail_msg("%s: forward_top's row %d is not the best entries of forward's", ops->name, r);
            const double sum = bn_top_exp_sum(rows + r * V, (int32_t)V, want[0].logit, INFINITY);
            const double tol = strcmp(ops->name, "cpu") ? 1e-12 * sum : 0;
            if (with_sums && !(fabs(sums[r] - sum) <= tol))
                fail_msg("%s: row %d's exp sum %.17g, bn_top_exp_sum %.17g", ops->name, r, sums[r], sum);
        }
    }
    free(sums);
    free(got);
}

// Each prompt in its slot as one call, as alone; then every decode step of all
// the sequences as one call (slots in reverse order): bit for bit on both
// backends. The last step through forward_argmax: the backend's own argmax of
// those rows is the greedy token of the sequence alone. Each call before it
// again through forward_top: the best entries of the rows forward gave.
static void run_decode_steps(const bn_backend_ops *ops, const float *ref, int32_t tok[N_SEQ][N_DECODE + 1]) {
    const int64_t V = fx.model->hp.n_vocab;
    bn_backend *be = create(ops, N_SEQ, 0);
    float *rows = malloc(sizeof(float) * N_SEQ * V);
    int32_t pos[N_CTX], seq[N_CTX];
    bn_error err;
    for (int s = 0; s < N_SEQ; s++) {
        const int n = (int)fx.n_ids[s];
        for (int i = 0; i < n; i++) pos[i] = i, seq[i] = s;
        if (ops->forward(be, fx.ids[s], pos, seq, n, rows, false, &err)) fail_msg("%s", err.msg);
        check_row(ops, true, rows, ref + (int64_t)s * (N_DECODE + 1) * V, s, 0, 0);
        if (ops->forward_top) check_top(ops, be, fx.ids[s], pos, seq, n, 1, rows);
    }
    for (int k = 1; k <= N_DECODE; k++) {
        int32_t t[N_SEQ], am[N_SEQ];
        for (int r = 0; r < N_SEQ; r++) {
            const int s = N_SEQ - 1 - r;
            t[r] = tok[s][k - 1], pos[r] = (int32_t)fx.n_ids[s] + k - 1, seq[r] = s;
        }
        if (k == N_DECODE) {
            if (ops->forward_argmax(be, t, pos, seq, N_SEQ, am, &err)) fail_msg("%s", err.msg);
            for (int r = 0; r < N_SEQ; r++) assert_int_equal(am[r], tok[N_SEQ - 1 - r][k]);
            break;
        }
        if (ops->forward(be, t, pos, seq, N_SEQ, rows, false, &err)) fail_msg("%s", err.msg);
        for (int r = 0; r < N_SEQ; r++) {
            const int s = N_SEQ - 1 - r;
            check_row(ops, true, rows + r * V, ref + ((int64_t)s * (N_DECODE + 1) + k) * V, s, k, 0);
        }
        if (ops->forward_top) check_top(ops, be, t, pos, seq, N_SEQ, N_SEQ, rows);
    }
    free(rows);
    ops->destroy(be);
}

// copy_kv: sequence 0's prompt copied whole to slot 1, and but for its last
// position to slot 2, which is then fed that last token; the next token in each
// slot then gives sequence 0's row (exact: bit for bit), as the sequence fed
// alone (ref). A copy that missed a layer, a head or a position would not.
static void check_copy_kv(const bn_backend_ops *ops, bool exact, const float *ref, int32_t tok[N_SEQ][N_DECODE + 1]) {
    const int64_t V = fx.model->hp.n_vocab;
    const int n = (int)fx.n_ids[0];
    bn_backend *be = create(ops, 3, 0);
    float *rows = malloc(sizeof(float) * 3 * V);
    int32_t pos[N_CTX], seq[N_CTX];
    bn_error err;
    for (int i = 0; i < n; i++) pos[i] = i, seq[i] = 0;
    if (ops->forward(be, fx.ids[0], pos, seq, n, rows, false, &err) || ops->copy_kv(be, 0, 1, n, &err) ||
        ops->copy_kv(be, 0, 2, n - 1, &err))
        fail_msg("%s", err.msg);
    const int32_t last[1] = {fx.ids[0][n - 1]}, last_pos[1] = {n - 1}, slot2[1] = {2};
    if (ops->forward(be, last, last_pos, slot2, 1, rows, false, &err)) fail_msg("%s", err.msg);
    check_row(ops, exact, rows, ref, 0, 0, 0);
    const int32_t t[3] = {tok[0][0], tok[0][0], tok[0][0]}, p[3] = {n, n, n}, s[3] = {2, 1, 0};
    if (ops->forward(be, t, p, s, 3, rows, false, &err)) fail_msg("%s", err.msg);
    for (int r = 0; r < 3; r++) check_row(ops, exact, rows + r * V, ref + V, s[r], 1, 0);
    free(rows);
    ops->destroy(be);
}

static void check_backend(const bn_backend_ops *ops, bool exact) {
    const int64_t V = fx.model->hp.n_vocab;
    float *ref = malloc(sizeof(float) * N_SEQ * (N_DECODE + 1) * V);
    int32_t tok[N_SEQ][N_DECODE + 1];
    run_alone(ops, ref, tok);
    run_decode_steps(ops, ref, tok);
    check_copy_kv(ops, exact, ref, tok);
    run_batched(ops, 0, exact, ref, tok);
    run_batched(ops, 5, exact, ref, tok); // calls cut into chunks inside runs and between them
    free(ref);
}

// The CUDA backend; without a usable one the test skips (fails in a GPU check).
static const bn_backend_ops *require_cuda(void) {
    const bn_backend_ops *cuda = bn_backend_find("cuda");
    bn_error why;
    BN_REQUIRE_GPU(!cuda ? "not compiled in" : cuda->probe(&why) ? why.msg : NULL,
                   "no usable CUDA device (%s)", "SKIP: no usable CUDA device (%s)\n");
    return cuda;
}

static void test_forward_cpu(void **state) {
    (void)state;
    REQUIRE_MODEL();
    check_backend(&bn_cpu_backend, true);
}

static void test_forward_cuda(void **state) {
    (void)state;
    REQUIRE_MODEL();
    check_backend(require_cuda(), false);
}

static void test_forward_errors(void **state) {
    (void)state;
    REQUIRE_MODEL();
    bn_backend *be = create(&bn_cpu_backend, 2, 0);
    bn_error err;
    float *rows = malloc(sizeof(float) * 2 * fx.model->hp.n_vocab);
    const int32_t t[3] = {1, 2, 3}, p[3] = {0, 1, 2};
    const int32_t far[3] = {0, 2, 0}, split[3] = {0, 1, 0}, down[3] = {1, 0, 1};
    assert_int_equal(bn_cpu_backend.forward(be, t, p, far, 3, rows, false, &err), -1);
    assert_non_null(strstr(err.msg, "sequence 2"));
    assert_int_equal(bn_cpu_backend.forward(be, t, p, split, 3, rows, false, &err), -1);
    assert_non_null(strstr(err.msg, "two runs"));
    const int32_t back[3] = {1, 0, 2};
    assert_int_equal(bn_cpu_backend.forward(be, t, back, NULL, 3, rows, false, &err), -1);
    assert_non_null(strstr(err.msg, "increase"));
    assert_int_equal(bn_cpu_backend.forward(be, t, p, down, 3, rows, false, &err), -1);
    free(rows);
    bn_cpu_backend.destroy(be);
}

// ---- bn_batch ----------------------------------------------------------------

typedef struct result {
    int32_t ids[64];
    int n_ids;
    char text[1024];
    size_t len;
    bn_stop stop;
    int slot, n_cached; // the slot it ran in, and the prompt tokens taken from its cache
} result;

static int collect(void *user, int32_t id, const char *text, size_t len) {
    result *r = user;
    if (id >= 0 && r->n_ids < 64) r->ids[r->n_ids++] = id;
    if (r->len + len < sizeof r->text) memcpy(r->text + r->len, text, len), r->len += len;
    return 0;
}

static bn_batch *open_batch_on(const char *backend, int n_slots, int step_tokens) {
    bn_batch_params p = {.session = {.backend = backend, .n_threads = 2, .n_ctx = N_CTX},
                         .n_slots = n_slots, .step_tokens = step_tokens};
    bn_batch *b;
    bn_error err;
    if (bn_batch_create(fx.engine, &p, &b, &err)) fail_msg("%s", err.msg);
    return b;
}

static bn_batch *open_batch(int n_slots, int step_tokens) { return open_batch_on("cpu", n_slots, step_tokens); }

// Runs steps until every request is done, admitting them in order into slots as
// they free up (as a server does), request i not before step start[i].
static void run_requests(bn_batch *b, const bn_request *req, const int *start, int n, result *out) {
    int done = 0, next = 0;
    bn_error err;
    for (int i = 0; i < n; i++) out[i] = (result){.n_ids = 0};
    for (int step = 0; done < n && step < 1000; step++) {
        while (next < n && start[next] <= step && bn_batch_n_free(b) > 0)
            if (bn_batch_add(b, &req[next++], &err) < 0) fail_msg("add: %s", err.msg);
        const bn_batch_event *ev;
        int n_ev;
        if (bn_batch_step(b, &ev, &n_ev, &err)) fail_msg("step: %s", err.msg);
        for (int e = 0; e < n_ev; e++) {
            result *r = &out[(intptr_t)ev[e].user];
            if (!bn_engine_is_eog(fx.engine, ev[e].token)) r->ids[r->n_ids++] = ev[e].token;
            assert_true(r->len + ev[e].len < sizeof r->text);
            memcpy(r->text + r->len, ev[e].text, ev[e].len);
            r->len += ev[e].len;
            r->slot = ev[e].slot;
            r->n_cached = ev[e].n_cached;
            if (!ev[e].done) continue;
            r->stop = ev[e].stop;
            bn_batch_remove(b, ev[e].slot);
            done++;
        }
    }
    assert_int_equal(done, n);
    assert_int_equal(bn_batch_n_active(b), 0);
    assert_int_equal(bn_batch_n_free(b), bn_batch_n_slots(b));
}

static void assert_same(const result *got, const result *want, int i) {
    if (got->n_ids != want->n_ids || memcmp(got->ids, want->ids, sizeof(int32_t) * got->n_ids))
        fail_msg("request %d: %d tokens through the batch, %d alone, or different ids", i,
                 got->n_ids, want->n_ids);
    if (got->len != want->len || memcmp(got->text, want->text, got->len))
        fail_msg("request %d: text \"%.*s\" through the batch, \"%.*s\" alone", i, (int)got->len,
                 got->text, (int)want->len, want->text);
    assert_int_equal(got->stop, want->stop);
}

static bn_request request(int i, int max_tokens, bn_sampling sp) {
    return (bn_request){.prompt = fx.ids[i % N_SEQ], .n_prompt = fx.n_ids[i % N_SEQ],
                        .max_tokens = max_tokens, .sampling = sp, .user = (void *)(intptr_t)i};
}

// Request i sampled hot (temperature 1, this seed): the random fixture model's
// own choices, anything but JSON, for the JSON tests to hold.
static bn_request hot_request(int i, int max_tokens, uint64_t seed) {
    bn_sampling hot = bn_sampling_default();
    hot.seed = seed;
    hot.temperature = 1.0f;
    return request(i, max_tokens, hot);
}

// What a session makes of request r alone.
static result alone_result(const bn_request *r) {
    bn_session_params sp = {.backend = "cpu", .n_threads = 2, .n_ctx = N_CTX};
    bn_session *s;
    bn_error err;
    bn_timings t;
    result out = {.n_ids = 0};
    const char *schema = r->json_schema ? r->json_schema : r->json_object ? "{\"type\": \"object\"}" : NULL;
    if (bn_session_create(fx.engine, &sp, &s, &err) || bn_session_set_json_schema(s, schema, &err) ||
        bn_session_generate(s, r->prompt, r->n_prompt, r->max_tokens, &r->sampling, collect, &out, &t, &err))
        fail_msg("%s", err.msg);
    out.stop = t.stop;
    bn_session_free(s);
    return out;
}

// Greedy and seeded sampling through a batch, however the requests overlap,
// equal each request generated alone in a session. Both sample a top-k of at
// most BN_TOP_MAX from the rows' best entries (forward_top), but the batch, in
// steps with request 6 (top-k 0) or 3 (a penalty and a bias that raise logits)
// in them, from whole rows: there the two paths meet (test_sampler checks them
// draw for draw, check_top the entries). Request 1 has penalties and biases that
// only lower logits.
static void test_batch_same_as_alone(void **state) {
    (void)state;
    REQUIRE_MODEL();
    enum { N = 7 };
    bn_sampling hot = bn_sampling_default(), widest = bn_sampling_default(), all = bn_sampling_default();
    hot.seed = 7;
    widest.seed = 9;
    widest.top_k = BN_TOP_MAX;
    widest.temperature = 1.5f;
    all.seed = 3;
    all.top_k = 0;
    // Penalties and biases that only lower logits (a step may bring back only the
    // best entries), and ones that raise them (it needs the row).
    const bn_logit_bias lower[] = {{13, -2.f}, {220, -1.f}}, raise[] = {{1820, 1.5f}};
    bn_sampling penal = bn_sampling_greedy(), drawn = bn_sampling_default();
    penal.frequency_penalty = 0.5f;
    penal.presence_penalty = 0.3f;
    penal.repeat_penalty = 1.1f;
    penal.logit_bias = lower;
    penal.n_logit_bias = 2;
    drawn.seed = 5;
    drawn.presence_penalty = -0.5f;
    drawn.logit_bias = raise;
    drawn.n_logit_bias = 1;
    bn_request req[N];
    result alone[N], got[N];
    const int max_tokens[N] = {12, 20, 5, 40, 1, 9, 16};
    for (int i = 0; i < N; i++) {
        req[i] = request(i, max_tokens[i], i == 5 ? hot : i == 2 ? widest : i == 6 ? all : i == 1 ? penal
                                                                              : i == 3 ? drawn
                                                                                       : bn_sampling_greedy());
        alone[i] = alone_result(&req[i]);
    }
    const int at_once[N] = {0}, staggered[N] = {0, 0, 1, 3, 3, 4, 9};
    const struct { int slots, step_tokens; const int *start; } runs[] = {
        {N, 0, at_once}, {N, 0, staggered}, {3, 0, staggered}, {2, 4, at_once}, {1, 1, at_once}};
    for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
        bn_batch *b = open_batch(runs[k].slots, runs[k].step_tokens);
        run_requests(b, req, runs[k].start, N, got);
        for (int i = 0; i < N; i++) assert_same(&got[i], &alone[i], i);
        bn_batch_free(b);
    }
}

// Runs one request to its end in batch b and checks it against the request alone.
static result run_one(bn_batch *b, const bn_request *r, int i) {
    const int start = 0;
    bn_request one = *r;
    one.user = 0; // out[0]
    result got, want = alone_result(r);
    run_requests(b, &one, &start, 1, &got);
    assert_same(&got, &want, i);
    return got;
}

// The prompt cache: a request goes to the free slot that holds the longest start
// of its prompt and feeds only the rest; its tokens are those of the whole prompt
// fed alone, bit for bit on the CPU. A slot caches what it was fed (not the
// last, pending token; of a cancelled prompt, the chunks fed), and a request that
// shares nothing takes the slot free longest. Changing what is reused by one
// token, or trusting the cache past the first difference, changes the tokens.
static void test_batch_prompt_cache(void **state) {
    (void)state;
    REQUIRE_MODEL();
    bn_batch *b = open_batch(2, 4);
    bn_sampling hot = bn_sampling_default();
    hot.seed = 11;
    hot.temperature = 1.2f;
    // A story in slot 0, a question in slot 1 (both free, never used: the first).
    bn_request story = request(2, 8, bn_sampling_greedy()), question = request(1, 6, hot);
    const int n_story = (int)story.n_prompt, n_q = (int)question.n_prompt;
    result a = run_one(b, &story, 0);
    assert_int_equal(a.slot, 0);
    assert_int_equal(a.n_cached, 0);
    // The next turn: the story, 5 of its 8 tokens, then another text (whose first
    // token differs from the story's 6th). Slot 0 was fed the prompt and 7 tokens.
    int32_t turn[N_CTX];
    int n_turn = 0;
    for (int i = 0; i < n_story; i++) turn[n_turn++] = story.prompt[i];
    for (int i = 0; i < 5; i++) turn[n_turn++] = a.ids[i];
    for (size_t i = 1; i < fx.n_ids[1]; i++) turn[n_turn++] = fx.ids[1][i];
    assert_int_not_equal(turn[n_story + 5], a.ids[5]);
    bn_request next = request(2, 10, hot);
    next.prompt = turn, next.n_prompt = (size_t)n_turn;
    result r = run_one(b, &next, 1);
    assert_int_equal(r.slot, 0);
    assert_int_equal(r.n_cached, n_story + 5);
    // The question shares only its BOS with slot 0's cache, less than half of it:
    // it goes to slot 1 (free longest, slot 0 was just used), which gets that BOS
    // copied from slot 0; then again to slot 1, from its cache: all of it but its
    // last token.
    assert_int_equal(question.prompt[0], story.prompt[0]);
    assert_int_not_equal(question.prompt[1], story.prompt[1]);
    r = run_one(b, &question, 2);
    assert_int_equal(r.slot, 1);
    assert_int_equal(r.n_cached, 1);
    r = run_one(b, &question, 3);
    assert_int_equal(r.slot, 1);
    assert_int_equal(r.n_cached, n_q - 1);
    // The story again: slot 0 holds its prompt (the turn began with it).
    r = run_one(b, &story, 4);
    assert_int_equal(r.slot, 0);
    assert_int_equal(r.n_cached, n_story - 1);
    // Asked not to, it reuses nothing; it takes the slot free longest (1).
    story.no_prefix_cache = true;
    r = run_one(b, &story, 5);
    assert_int_equal(r.slot, 1);
    assert_int_equal(r.n_cached, 0);
    // The question, cancelled after one step of 4 of its prompt tokens: the slot
    // (0, free longest) caches those 4 only, and the question goes back to it.
    bn_request cut = request(1, 4, bn_sampling_greedy());
    assert_true(n_q > 4 && n_q <= 8);
    cut.no_prefix_cache = true;
    bn_error err;
    const int slot = bn_batch_add(b, &cut, &err);
    assert_int_equal(slot, 0);
    const bn_batch_event *ev;
    int n_ev;
    assert_int_equal(bn_batch_step(b, &ev, &n_ev, &err), 0);
    assert_int_equal(n_ev, 0);
    bn_batch_remove(b, slot);
    cut.no_prefix_cache = false;
    r = run_one(b, &cut, 6);
    assert_int_equal(r.slot, 0);
    assert_int_equal(r.n_cached, 4);
    // Both slots hold the question; slot 1 is freed first, so it takes the next one.
    bn_request q = request(1, 1, bn_sampling_greedy());
    assert_int_equal(bn_batch_add(b, &q, &err), 0);
    assert_int_equal(bn_batch_add(b, &q, &err), 1);
    for (int done = 0; done < 2;) {
        assert_int_equal(bn_batch_step(b, &ev, &n_ev, &err), 0);
        for (int e = 0; e < n_ev; e++) done += ev[e].done;
    }
    bn_batch_remove(b, 1);
    bn_batch_remove(b, 0);
    r = run_one(b, &q, 7);
    assert_int_equal(r.slot, 1);
    assert_int_equal(r.n_cached, n_q - 1);
    bn_batch_free(b);
}

// The prompt cache across slots: a request whose prompt's start another slot
// holds, running or free, gets those K/V copied into its own slot and generates
// what it would alone (bit for bit on the CPU): from a prompt still being fed
// (the chunks so far), and from one that has begun generating (all of the
// prompt but its last token, which is fed again).
static void test_batch_copies_prefix(void **state) {
    (void)state;
    REQUIRE_MODEL();
    bn_batch *b = open_batch(3, 4);
    assert_true(bn_batch_shares_prompts(b));
    bn_request req[3] = {hot_request(2, 6, 31), hot_request(2, 6, 32), hot_request(2, 6, 33)};
    for (int i = 0; i < 3; i++) req[i].user = (void *)(intptr_t)i;
    const int n = (int)req[0].n_prompt;
    assert_true(n > 8);
    // Request 1 comes after one step (4 of request 0's prompt tokens fed), request
    // 2 once request 0 has fed its whole prompt, 4 tokens a step.
    const int start[3] = {0, 1, (n + 3) / 4 + 1};
    result got[3];
    run_requests(b, req, start, 3, got);
    assert_int_equal(got[0].n_cached, 0);
    assert_int_equal(got[1].n_cached, 4);
    assert_int_equal(got[2].n_cached, n - 1);
    for (int i = 0; i < 3; i++) {
        const result want = alone_result(&req[i]);
        assert_same(&got[i], &want, i);
    }
    bn_batch_free(b);
}

// The session's prompt cache (bn_session_keep_prefix): after keeping the common
// start, feeding the rest gives the logits of a fresh session fed the whole
// prompt: bit for bit on the CPU, within the fixtures' tolerance on CUDA (check_row).
static void check_keep_prefix(const char *backend, bool exact) {
    const bn_backend_ops *ops = bn_backend_find(backend);
    const int n_vocab = bn_engine_info(fx.engine).n_vocab;
    bn_session_params sp = {.backend = backend, .n_threads = 2, .n_ctx = N_CTX};
    bn_session *s, *fresh;
    bn_error err;
    bn_timings t;
    if (bn_session_create(fx.engine, &sp, &s, &err) || bn_session_create(fx.engine, &sp, &fresh, &err))
        fail_msg("%s", err.msg);
    const bn_request story = request(2, 8, bn_sampling_greedy());
    const int n_story = (int)story.n_prompt;
    assert_int_equal(bn_session_keep_prefix(s, story.prompt, story.n_prompt), 0);
    result a = {.n_ids = 0};
    if (bn_session_generate(s, story.prompt, story.n_prompt, 8, &story.sampling, collect, &a, &t, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(a.n_ids, 8);
    float *got = malloc(sizeof(float) * (size_t)n_vocab), *want = malloc(sizeof(float) * (size_t)n_vocab);
    // Next turns: the story, `reply` of its 8 tokens, another text. The session
    // was fed the story and 7 of them (the 8th was sampled, not fed).
    for (int reply = 8; reply >= 5; reply -= 3) {
        int32_t turn[N_CTX];
        int n_turn = 0;
        for (int i = 0; i < n_story; i++) turn[n_turn++] = story.prompt[i];
        for (int i = 0; i < reply; i++) turn[n_turn++] = a.ids[i];
        for (size_t i = 1; i < fx.n_ids[1]; i++) turn[n_turn++] = fx.ids[1][i];
        if (reply < 8) assert_int_not_equal(turn[n_story + reply], a.ids[reply]);
        const int k = bn_session_keep_prefix(s, turn, (size_t)n_turn);
        assert_int_equal(k, n_story + (reply == 8 ? 7 : reply));
        assert_int_equal(bn_session_pos(s), k);
        bn_session_reset(fresh);
        if (bn_session_eval(s, turn + k, (size_t)(n_turn - k), got, &err) ||
            bn_session_eval(fresh, turn, (size_t)n_turn, want, &err))
            fail_msg("%s", err.msg);
        check_row(ops, exact, got, want, 0, reply, 0);
        // The same turn again (the session was fed all of it): all but its last token.
        assert_int_equal(bn_session_keep_prefix(s, turn, (size_t)n_turn), n_turn - 1);
        if (bn_session_eval(s, turn + n_turn - 1, 1, got, &err)) fail_msg("%s", err.msg);
        check_row(ops, exact, got, want, 0, reply, 1);
    }
    // Another prompt shares only the BOS; an empty one keeps nothing.
    assert_int_equal(bn_session_keep_prefix(s, fx.ids[1], fx.n_ids[1]), 1);
    assert_int_equal(bn_session_keep_prefix(s, fx.ids[1], 0), 0);
    assert_int_equal(bn_session_pos(s), 0);
    free(got);
    free(want);
    bn_session_free(s);
    bn_session_free(fresh);
}

static void test_session_keep_prefix(void **state) {
    (void)state;
    REQUIRE_MODEL();
    check_keep_prefix("cpu", true);
}

static void test_session_keep_prefix_cuda(void **state) {
    (void)state;
    REQUIRE_MODEL();
    require_cuda();
    check_keep_prefix("cuda", false);
}

// log-softmax(row)[id], in double, and the row's k likeliest ids (logit down,
// the lower id first), found by the test itself.
static double log_softmax_at(const float *row, int n, int32_t id) {
    double max = row[0], sum = 0;
    for (int i = 1; i < n; i++) max = row[i] > max ? row[i] : max;
    for (int i = 0; i < n; i++) sum += exp(row[i] - max);
    return row[id] - max - log(sum);
}

static void likeliest(const float *row, int n, int k, int32_t *ids) {
    for (int j = 0; j < k; j++) {
        int32_t best = -1;
        for (int32_t i = 0; i < n; i++) {
            bool taken = false;
            for (int m = 0; m < j; m++) taken = taken || ids[m] == i;
            if (!taken && (best < 0 || row[i] > row[best])) best = i;
        }
        ids[j] = best;
    }
}

// Each sampled token's log-probability lp[t] and its K likeliest alternatives
// (top_id, top_lp) are the log-softmax of the logits a fresh session computes for
// that position after prompt and ids[0..t) (the same row bit for bit on the CPU).
enum { LP_GEN = 6, LP_TOP = 5 };
static void check_logprobs(const int32_t *prompt, size_t n_prompt, const result *got, const float *lp,
                           int32_t top_id[][LP_TOP], float top_lp[][LP_TOP]) {
    const int n_vocab = bn_engine_info(fx.engine).n_vocab;
    int32_t seq[N_CTX];
    int n_seq = (int)n_prompt;
    memcpy(seq, prompt, sizeof(int32_t) * n_prompt);
    float *row = malloc(sizeof(float) * (size_t)n_vocab);
    bn_session_params sp = {.backend = "cpu", .n_threads = 2, .n_ctx = N_CTX};
    bn_error err;
    for (int t = 0; t < got->n_ids; t++) {
        bn_session *s;
        if (bn_session_create(fx.engine, &sp, &s, &err) || bn_session_eval(s, seq, (size_t)n_seq, row, &err))
            fail_msg("%s", err.msg);
        bn_session_free(s);
        const int32_t tok = got->ids[t];
        if (fabs(lp[t] - log_softmax_at(row, n_vocab, tok)) > 1e-4)
            fail_msg("token %d: logprob %g, the row's log-softmax %g", t, lp[t], log_softmax_at(row, n_vocab, tok));
        int32_t ids[LP_TOP];
        likeliest(row, n_vocab, LP_TOP, ids);
        for (int j = 0; j < LP_TOP; j++) {
            assert_int_equal(top_id[t][j], ids[j]);
            assert_true(fabs(top_lp[t][j] - log_softmax_at(row, n_vocab, ids[j])) <= 1e-4);
        }
        seq[n_seq++] = tok;
    }
    free(row);
}

// Hot sampling with a repetition penalty that favours tokens seen before,
// changing their logits in place: the logprobs must be the raw row's.
static bn_sampling logprobs_sampling(void) {
    bn_sampling hot = bn_sampling_default();
    hot.seed = 5;
    hot.temperature = 1.3f;
    hot.repeat_penalty = 0.3f;
    return hot;
}

// logprobs in a batch: as check_logprobs says, and asking for them changes no
// token, neither the slot's nor a greedy neighbour's in the same steps.
static void test_batch_logprobs(void **state) {
    (void)state;
    REQUIRE_MODEL();
    bn_request req[2] = {request(2, LP_GEN, logprobs_sampling()), request(1, LP_GEN, bn_sampling_greedy())};
    req[0].logprobs = true;
    req[0].top_logprobs = LP_TOP;
    result want[2] = {alone_result(&req[0]), alone_result(&req[1])}, got[2] = {{.n_ids = 0}, {.n_ids = 0}};
    bn_batch *b = open_batch(2, 0);
    bn_error err;
    for (int i = 0; i < 2; i++) assert_int_equal(bn_batch_add(b, &req[i], &err), i);
    float lp[LP_GEN], top_lp[LP_GEN][LP_TOP];
    int32_t top_id[LP_GEN][LP_TOP];
    for (int step = 0, done = 0; done < 2 && step < 100; step++) {
        const bn_batch_event *ev;
        int n_ev;
        if (bn_batch_step(b, &ev, &n_ev, &err)) fail_msg("%s", err.msg);
        for (int e = 0; e < n_ev; e++) {
            result *r = &got[ev[e].slot];
            if (ev[e].slot == 0) {
                assert_int_equal(ev[e].n_top, LP_TOP);
                lp[r->n_ids] = ev[e].logprob;
                for (int j = 0; j < LP_TOP; j++)
                    top_id[r->n_ids][j] = ev[e].top[j].id, top_lp[r->n_ids][j] = ev[e].top[j].logprob;
            } else {
                assert_int_equal(ev[e].n_top, 0);
            }
            r->ids[r->n_ids++] = ev[e].token;
            if (ev[e].done) bn_batch_remove(b, ev[e].slot), done++;
        }
    }
    bn_batch_free(b);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(got[i].n_ids, want[i].n_ids);
        assert_memory_equal(got[i].ids, want[i].ids, sizeof(int32_t) * (size_t)got[i].n_ids);
    }
    check_logprobs(req[0].prompt, req[0].n_prompt, &got[0], lp, top_id, top_lp);
    // A greedy slot with logprobs alone in its steps: still from whole rows (the
    // argmax alone would carry none), the same tokens as without.
    bn_request greedy = request(2, 3, bn_sampling_greedy());
    greedy.logprobs = true;
    result plain = alone_result(&greedy);
    b = open_batch(1, 0);
    assert_int_equal(bn_batch_add(b, &greedy, &err), 0);
    for (int done = 0, t = 0; !done;) {
        const bn_batch_event *ev;
        int n_ev;
        if (bn_batch_step(b, &ev, &n_ev, &err)) fail_msg("%s", err.msg);
        for (int e = 0; e < n_ev; e++, t++) {
            assert_int_equal(ev[e].token, plain.ids[t]);
            assert_true(ev[e].logprob < 0 && ev[e].logprob > -30); // the likeliest token of a row
            assert_int_equal(ev[e].n_top, 0);
            done = ev[e].done;
        }
    }
    bn_batch_free(b);
    // Out of range.
    b = open_batch(1, 0);
    req[0].top_logprobs = BN_TOP_LOGPROBS_MAX + 1;
    assert_int_equal(bn_batch_add(b, &req[0], &err), -1);
    assert_non_null(strstr(err.msg, "top_logprobs"));
    bn_batch_free(b);
}

// What a request with prompt_logprobs (and top_logprobs PLP_TOP) reported:
// the prompt's log-probabilities and likeliest tokens, its sampled ids.
enum { PLP_TOP = 3 };
typedef struct scored {
    int n_prompt, n_cached;
    float lp[N_CTX];
    int32_t top_id[N_CTX][PLP_TOP];
    float top_lp[N_CTX][PLP_TOP];
    result r;
} scored;

// Runs requests req[0..n) in batch b (n free slots), all added at once;
// out[i] is request i's.
static void score_in(bn_batch *b, const bn_request *req, int n, scored *out) {
    bn_error err;
    int slot_of[N_SEQ], request_of[N_SEQ];
    assert_true(n <= N_SEQ && bn_batch_n_slots(b) <= N_SEQ);
    for (int i = 0; i < n; i++) {
        out[i] = (scored){.n_prompt = (int)req[i].n_prompt};
        slot_of[i] = bn_batch_add(b, &req[i], &err);
        assert_true(slot_of[i] >= 0);
        request_of[slot_of[i]] = i;
    }
    for (int step = 0, done = 0; done < n; step++) {
        assert_true(step < 200);
        const bn_batch_event *ev;
        int n_ev;
        if (bn_batch_step(b, &ev, &n_ev, &err)) fail_msg("%s", err.msg);
        for (int e = 0; e < n_ev; e++) {
            const int i = request_of[ev[e].slot];
            scored *o = &out[i];
            o->r.ids[o->r.n_ids++] = ev[e].token;
            o->n_cached = ev[e].n_cached;
            if (!req[i].prompt_logprobs) {
                assert_null(ev[e].prompt_logprob);
                assert_null(ev[e].prompt_top);
            } else if (ev[e].done) {
                assert_true(isnan(ev[e].prompt_logprob[0]));
                assert_int_equal(ev[e].n_top, req[i].top_logprobs);
                for (int t = 1; t < o->n_prompt; t++) {
                    o->lp[t] = ev[e].prompt_logprob[t];
                    for (int j = 0; j < ev[e].n_top; j++) {
                        o->top_id[t][j] = ev[e].prompt_top[t * ev[e].n_top + j].id;
                        o->top_lp[t][j] = ev[e].prompt_top[t * ev[e].n_top + j].logprob;
                    }
                }
            }
            if (ev[e].done) bn_batch_remove(b, ev[e].slot), done++;
        }
    }
    (void)slot_of;
}

// Runs requests req[0..n) in a new batch of n slots that feeds at most
// step_tokens a step; out[i] is request i's.
static void run_scored(const char *backend, const bn_request *req, int n, int step_tokens, scored *out) {
    bn_batch *b = open_batch_on(backend, n, step_tokens);
    score_in(b, req, n, out);
    bn_batch_free(b);
}

// A scored prompt's values against the rows a session computes over it (rows[i]
// follows ids[i]): each token's log-probability and its n_top likeliest tokens
// are the test's own log-softmax of the row (to 1e-4: it sums in another order).
static void check_scored(const scored *got, const int32_t *ids, int n, const float *rows, int n_top) {
    const int n_vocab = bn_engine_info(fx.engine).n_vocab;
    for (int i = 1; i < n; i++) {
        const float *row = rows + (size_t)(i - 1) * n_vocab;
        if (fabs(got->lp[i] - log_softmax_at(row, n_vocab, ids[i])) > 1e-4)
            fail_msg("prompt token %d: logprob %g, the row's log-softmax %g", i, got->lp[i],
                     log_softmax_at(row, n_vocab, ids[i]));
        int32_t best[PLP_TOP];
        likeliest(row, n_vocab, n_top, best);
        for (int j = 0; j < n_top; j++) {
            assert_int_equal(got->top_id[i][j], best[j]);
            assert_true(fabs(got->top_lp[i][j] - log_softmax_at(row, n_vocab, best[j])) <= 1e-4);
        }
    }
}

static bn_request scoring_request(const int32_t *ids, int n, int max_tokens) {
    bn_request r = {.prompt = ids, .n_prompt = (size_t)n, .max_tokens = max_tokens,
                    .sampling = bn_sampling_greedy(), .logprobs = true, .top_logprobs = PLP_TOP,
                    .prompt_logprobs = true};
    return r;
}

// Prompt logprobs (bn_request.prompt_logprobs), against the CPU backend's own
// rows: each prompt token's log-probability and likeliest tokens are the
// log-softmax of the row a session computes over the whole prompt at once (the
// same rows bit for bit; the test's own log-softmax to 1e-4), whether the
// prompt is scored in one call or in chunks of 5 beside a
// greedy neighbour (whose tokens do not change). The sampled tokens are those
// of the prompt generated alone, the slot takes nothing from the prompt cache,
// and prompt_logprobs without logprobs is an error. A session's
// bn_session_score gives the same values.
static void test_batch_prompt_logprobs(void **state) {
    (void)state;
    REQUIRE_MODEL();
    const int n_vocab = bn_engine_info(fx.engine).n_vocab;
    // A prompt of more than BN_SCORE_ROWS (batch.c) tokens: two prompts joined.
    int32_t ids[N_CTX + 1] = {0}; // + 1: a text one token too long for the context, below
    int n = 0;
    for (int s = 2; s >= 0 && n < N_CTX - 8; s--)
        for (size_t i = 0; i < fx.n_ids[s] && n < N_CTX - 8; i++) ids[n++] = fx.ids[s][i];
    while (n < 40) ids[n] = ids[n - 7], n++;
    float *rows = malloc(sizeof(float) * (size_t)n_vocab * (size_t)n);
    bn_session_params sp = {.backend = "cpu", .n_threads = 2, .n_ctx = N_CTX};
    bn_session *sess;
    bn_error err;
    if (bn_session_create(fx.engine, &sp, &sess, &err) || bn_session_eval_all(sess, ids, (size_t)n, rows, &err))
        fail_msg("%s", err.msg);
    bn_session_free(sess);
    const bn_request alone = scoring_request(ids, n, 3);
    bn_request plain = alone;
    plain.prompt_logprobs = plain.logprobs = false;
    const result want = alone_result(&plain);
    for (int chunked = 0; chunked < 2; chunked++) {
        bn_request req[2] = {alone, request(1, 4, bn_sampling_greedy())};
        scored got[2];
        run_scored("cpu", req, chunked ? 2 : 1, chunked ? 5 : 0, got);
        assert_int_equal(got[0].r.n_ids, want.n_ids);
        assert_memory_equal(got[0].r.ids, want.ids, sizeof(int32_t) * (size_t)want.n_ids);
        check_scored(&got[0], ids, n, rows, PLP_TOP);
        if (chunked) {
            const result neighbour = alone_result(&req[1]);
            assert_int_equal(got[1].r.n_ids, neighbour.n_ids);
            assert_memory_equal(got[1].r.ids, neighbour.ids, sizeof(int32_t) * (size_t)neighbour.n_ids);
        }
    }
    // A session scores the same text alike (bn_session_score), and keeps it as a
    // prompt's cache.
    float lp[N_CTX];
    bn_token_logprob top[N_CTX * PLP_TOP];
    if (bn_session_create(fx.engine, &sp, &sess, &err) || bn_session_score(sess, ids, (size_t)n, PLP_TOP, lp, top, &err))
        fail_msg("%s", err.msg);
    assert_true(isnan(lp[0]));
    for (int i = 1; i < n; i++) {
        const float *row = rows + (size_t)(i - 1) * n_vocab;
        assert_true(fabs(lp[i] - log_softmax_at(row, n_vocab, ids[i])) <= 1e-4);
        int32_t best[PLP_TOP];
        likeliest(row, n_vocab, PLP_TOP, best);
        for (int j = 0; j < PLP_TOP; j++) assert_int_equal(top[i * PLP_TOP + j].id, best[j]);
    }
    assert_int_equal(bn_session_pos(sess), n);
    assert_int_equal(bn_session_score(sess, ids, (size_t)N_CTX + 1, 0, lp, NULL, &err), -1); // too long: kept
    assert_int_equal(bn_session_pos(sess), n);
    assert_int_equal(bn_session_keep_prefix(sess, ids, (size_t)n), n - 1);
    assert_int_equal(bn_session_score(sess, ids, 1, 0, lp, NULL, &err), 0); // one token: nothing to score
    assert_true(isnan(lp[0]));
    assert_int_equal(bn_session_score(sess, ids, 0, 0, lp, NULL, &err), -1);
    assert_int_equal(bn_session_score(sess, ids, 2, BN_TOP_LOGPROBS_MAX + 1, lp, top, &err), -1);
    assert_non_null(strstr(err.msg, "top_logprobs"));
    bn_session_free(sess);
    // In one batch of 2 slots, 7 tokens a step: after the prompt went through
    // plainly (its slot caches it), scored it takes nothing from that cache, and
    // a plain request after takes it again; two slots scoring at once (one with
    // no alternatives, one a prompt of a single token), and a slot's buffers
    // grown from a short prompt's to the long one's.
    bn_batch *b = open_batch(2, 7);
    scored got[2];
    bn_request two[2] = {plain, alone};
    two[0].max_tokens = 1;
    score_in(b, &two[0], 1, got);
    score_in(b, &two[1], 1, got);
    assert_int_equal(got[0].n_cached, 0);
    check_scored(&got[0], ids, n, rows, PLP_TOP);
    score_in(b, &two[0], 1, got);
    assert_int_equal(got[0].n_cached, n - 1);
    two[0] = scoring_request(ids, 1, 2);
    two[1] = alone;
    two[1].top_logprobs = 0;
    score_in(b, two, 2, got);
    assert_int_equal(got[0].r.n_ids, 2);
    check_scored(&got[1], ids, n, rows, 0);
    two[0] = scoring_request(ids, 5, 1);
    score_in(b, two, 1, got);
    check_scored(&got[0], ids, 5, rows, PLP_TOP);
    two[0] = alone;
    two[1] = alone;
    score_in(b, two, 2, got);
    check_scored(&got[0], ids, n, rows, PLP_TOP);
    check_scored(&got[1], ids, n, rows, PLP_TOP);
    bn_batch_free(b);
    free(rows);
    b = open_batch(1, 0);
    plain.prompt_logprobs = true;
    assert_int_equal(bn_batch_add(b, &plain, &err), -1);
    assert_non_null(strstr(err.msg, "prompt_logprobs needs logprobs"));
    bn_batch_free(b);
}

// Prompt logprobs against bitnet.cpp: each golden case's prompt followed by its
// 16 greedy ids, scored as one prompt. At the position of greedy id i the
// likeliest token is that id (where the reference's margin is at least 0.05,
// the fixtures' rule), the id's log-probability is the row's best, and the gap
// to the second best is the reference's margin within twice the fixtures'
// logit tolerance (0.1 on each logit); at ids 0 and 1, whose full reference
// rows the fixtures hold, the log-probability is the reference's log-softmax
// within the same 0.2. The cases are scored together, a slot each (their
// prompts share the scoring calls). On the CPU, and on CUDA (test_batch_cuda).
static void check_prompt_logprobs_golden(const char *backend) {
    BN_REQUIRE_FIXTURE(golden, "tiny-a/tiny-a.golden.json");
    REQUIRE_MODEL();
    const int n_vocab = bn_engine_info(fx.engine).n_vocab;
    char *text = bn_read_file(golden, NULL);
    cJSON *doc = cJSON_Parse(text);
    free(text);
    const cJSON *c;
    int n_cases = 0;
    bn_golden_case cases[N_SEQ];
    int32_t ids[N_SEQ][N_CTX];
    bn_request req[N_SEQ];
    scored got[N_SEQ];
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(doc, "cases")) {
        assert_true(n_cases < N_SEQ);
        bn_golden_case *g = &cases[n_cases];
        if (bn_golden_read_case(c, g)) fail_msg("case %d of %s is not a golden case", n_cases, golden);
        const int n = g->n_prompt + BN_GOLDEN_GEN;
        assert_true(n <= N_CTX);
        memcpy(ids[n_cases], g->prompt_ids, sizeof(int32_t) * (size_t)g->n_prompt);
        memcpy(ids[n_cases] + g->n_prompt, g->gen_ids, sizeof g->gen_ids);
        req[n_cases] = scoring_request(ids[n_cases], n, 1);
        n_cases++;
    }
    assert_true(n_cases >= 4);
    run_scored(backend, req, n_cases, 0, got);
    int k = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(doc, "cases")) {
        const bn_golden_case g = cases[k];
        const scored *scored_k = &got[k++];
        for (int i = 0; i < BN_GOLDEN_GEN; i++) {
            const int p = g.n_prompt + i;
            if (g.step[i].margin < 0.05f) break; // the fixtures' rule: a near tie may go either way
            assert_int_equal(scored_k->top_id[p][0], g.gen_ids[i]);
            assert_true(scored_k->lp[p] == scored_k->top_lp[p][0]);
            const float gap = scored_k->top_lp[p][0] - scored_k->top_lp[p][1];
            if (fabsf(gap - g.step[i].margin) > 0.2f)
                fail_msg("case %d, greedy id %d: best minus second best %g, bitnet.cpp's margin %g", k - 1,
                         i, gap, g.step[i].margin);
        }
        for (int i = 0; i < 2; i++) {
            char rel[256];
            snprintf(rel, sizeof rel, "tiny-a/%s",
                     cJSON_GetStringValue(cJSON_GetObjectItem(c, i ? "logits_gen1_f32" : "logits_f32")));
            BN_REQUIRE_FIXTURE(path, rel);
            size_t len;
            float *row = (float *)bn_read_file(path, &len);
            assert_int_equal(len, sizeof(float) * (size_t)n_vocab);
            const double want = log_softmax_at(row, n_vocab, g.gen_ids[i]);
            if (fabs(scored_k->lp[g.n_prompt + i] - want) > 0.2)
                fail_msg("case %d, greedy id %d: logprob %g, bitnet.cpp's log-softmax %g", k - 1, i,
                         scored_k->lp[g.n_prompt + i], want);
            free(row);
        }
    }
    cJSON_Delete(doc);
}

static void test_batch_prompt_logprobs_golden(void **state) {
    (void)state;
    check_prompt_logprobs_golden("cpu");
}

static void test_batch_prompt_logprobs_golden_cuda(void **state) {
    (void)state;
    REQUIRE_MODEL();
    require_cuda();
    check_prompt_logprobs_golden("cuda");
}

// A session's on_token that also reads the token's log-probabilities.
typedef struct logprobs_run {
    bn_session *s;
    result r;
    int n_top; // what bn_session_token_logprobs said at each token
    float lp[LP_GEN], top_lp[LP_GEN][LP_TOP];
    int32_t top_id[LP_GEN][LP_TOP];
} logprobs_run;

static int collect_logprobs(void *user, int32_t id, const char *text, size_t len) {
    logprobs_run *run = user;
    if (id >= 0 && run->r.n_ids < LP_GEN) {
        const bn_token_logprob *top;
        const int t = run->r.n_ids;
        run->n_top = bn_session_token_logprobs(run->s, &run->lp[t], &top);
        for (int j = 0; j < run->n_top && j < LP_TOP; j++)
            run->top_id[t][j] = top[j].id, run->top_lp[t][j] = top[j].logprob;
    }
    return collect(&run->r, id, text, len);
}

// logprobs in a session (bn_session_set_logprobs): as check_logprobs says, the
// same tokens as without them (sampled, and greedy, which would otherwise take
// the backend's argmax), and none once turned off.
static void test_session_logprobs(void **state) {
    (void)state;
    REQUIRE_MODEL();
    bn_session_params sp = {.backend = "cpu", .n_threads = 2, .n_ctx = N_CTX};
    bn_error err;
    const bn_sampling samplings[2] = {logprobs_sampling(), bn_sampling_greedy()};
    for (int k = 0; k < 2; k++) {
        const bn_request req = request(2, LP_GEN, samplings[k]);
        const result want = alone_result(&req);
        logprobs_run run = {.n_top = -2};
        bn_timings t;
        if (bn_session_create(fx.engine, &sp, &run.s, &err)) fail_msg("%s", err.msg);
        assert_int_equal(bn_session_set_logprobs(run.s, BN_TOP_LOGPROBS_MAX + 1, &err), -1);
        assert_non_null(strstr(err.msg, "top_logprobs"));
        if (bn_session_set_logprobs(run.s, LP_TOP, &err) ||
            bn_session_generate(run.s, req.prompt, req.n_prompt, LP_GEN, &req.sampling, collect_logprobs, &run, &t,
                                &err))
            fail_msg("%s", err.msg);
        assert_int_equal(run.n_top, LP_TOP);
        assert_int_equal(run.r.n_ids, want.n_ids);
        assert_memory_equal(run.r.ids, want.ids, sizeof(int32_t) * (size_t)want.n_ids);
        check_logprobs(req.prompt, req.n_prompt, &run.r, run.lp, run.top_id, run.top_lp);
        assert_int_equal(bn_session_token_id(run.s), want.ids[want.n_ids - 1]);
        // A generation that ends with an end-of-generation token (forced by a bias):
        // on_token never sees it, bn_session_token_id names it afterwards.
        const bn_logit_bias end = {128001, 100.0f};
        bn_sampling forced = samplings[k];
        forced.logit_bias = &end;
        forced.n_logit_bias = 1;
        bn_session_reset(run.s);
        if (bn_session_generate(run.s, req.prompt, req.n_prompt, LP_GEN, &forced, NULL, NULL, &t, &err))
            fail_msg("%s", err.msg);
        assert_int_equal(t.stop, BN_STOP_EOG);
        assert_int_equal(bn_session_token_id(run.s), end.token);
        float lp;
        const bn_token_logprob *top;
        assert_int_equal(bn_session_token_logprobs(run.s, &lp, &top), LP_TOP);
        assert_true(lp < 0);
        // Off again: nothing to read, the same tokens.
        bn_session_reset(run.s);
        run.r = (result){.n_ids = 0};
        if (bn_session_set_logprobs(run.s, -1, &err) ||
            bn_session_generate(run.s, req.prompt, req.n_prompt, LP_GEN, &req.sampling, collect_logprobs, &run, &t,
                                &err))
            fail_msg("%s", err.msg);
        assert_int_equal(run.n_top, -1);
        assert_memory_equal(run.r.ids, want.ids, sizeof(int32_t) * (size_t)want.n_ids);
        bn_session_free(run.s);
    }
}

// The mask keeps exactly the tokens a copy of the automaton takes whole, at
// places inside and outside strings, numbers, literals, escapes, enum values,
// property names and anyOf alternatives (the fast paths, plain text in strings
// and the byte filters, change no answer); special tokens never, and
// end-of-generation tokens only where the text may end.
static void test_json_mask_exact(void **state) {
    (void)state;
    REQUIRE_MODEL();
    static const char object[] = "{\"type\": \"object\"}";
    static const char shaped[] =
        "{\"type\": \"object\", \"properties\": {\"name\": {\"type\": \"string\"}, \"n\": {\"type\": \"integer\"},"
        " \"tag\": {\"enum\": [\"red\", \"green\", 12, 125]}, \"opt\": {\"anyOf\": [{\"type\": \"null\"},"
        " {\"type\": \"array\", \"items\": {\"type\": \"number\"}, \"maxItems\": 2}]}}, \"required\": [\"name\", \"tag\"]}";
    static const char number[] = "{\"type\": \"integer\"}";
    static const char sized[] = "{\"type\": \"object\", \"properties\": {\"s\": {\"type\": \"string\", \"maxLength\": 5}, "
                                "\"d\": {\"type\": \"string\", \"minLength\": 3, \"maxLength\": 1000}}}";
    // Bounded numbers: digits that still reach the bounds, a '.' with a digit left, no exponent.
    static const char bounded[] = "{\"type\": \"object\", \"properties\": {\"p\": {\"type\": \"number\", \"minimum\": 0, "
                                  "\"maximum\": 1}, \"q\": {\"type\": \"number\", \"exclusiveMinimum\": 0.1, "
                                  "\"maximum\": 250.5}}}";
    // Two readings in strings: a token fits if it fits either (the longer room).
    static const char either[] = "{\"anyOf\": [{\"type\": \"string\", \"maxLength\": 2}, {\"type\": \"string\", "
                                 "\"minLength\": 2, \"maxLength\": 9}]}";
    static const struct {
        const char *schema, *text;
    } cases[] = {
        {object, ""}, {object, " "}, {object, "{"}, {object, "{\""}, {object, "{\"a"}, {object, "{\"a\""},
        {object, "{\"a\":"}, {object, "{\"a\": "}, {object, "{\"a\": tr"}, {object, "{\"a\":[1"},
        {object, "{\"a\":[1.5"}, {object, "{\"a\":[1.5e"}, {object, "{\"a\":[0"}, {object, "{\"a\":\"x\\"},
        {object, "{\"a\":\"\\u12"}, {object, "{\"a\":\"\xc3"}, {object, "{\"a\":{}"}, {object, "{\"a\":[null,-"},
        {object, "{\"a\":[null ,"}, {object, "{}"}, {object, "{} "},
        {shaped, "{"}, {shaped, "{\"n"}, {shaped, "{\"name\":\"x"}, {shaped, "{\"name\":\"x\","},
        {shaped, "{\"name\":\"x\",\"n\":1"}, {shaped, "{\"name\":\"\",\"tag\":"}, {shaped, "{\"name\":\"\",\"tag\":12"},
        {shaped, "{\"name\":\"\",\"tag\":\"g"}, {shaped, "{\"name\":\"\",\"tag\":1,"},
        {shaped, "{\"name\":\"\",\"tag\":12, \"opt\":"}, {shaped, "{\"name\":\"\",\"tag\":12, \"opt\":[1,"},
        {number, ""}, {number, "1"}, {number, "-12"},
        {sized, "{\"s\":\"ab"}, {sized, "{\"s\":\"abcd"}, {sized, "{\"s\":\"abcde"}, {sized, "{\"d\":\"a"},
        {sized, "{\"d\":\"abcd"}, {sized, "{\"s\":\"\xc3"}, {either, "\"a"}, {either, "\"abc"},
        {bounded, "{\"p\":"}, {bounded, "{\"p\":0"}, {bounded, "{\"p\":0."}, {bounded, "{\"p\":0.99999999999999"},
        {bounded, "{\"p\":1"}, {bounded, "{\"p\":-"}, {bounded, "{\"q\":"}, {bounded, "{\"q\":2"},
        {bounded, "{\"q\":250."}, {bounded, "{\"q\":0.1"}, {bounded, "{\"q\":0.10000000000000"},
    };
    bn_json_vocab v;
    bn_error err;
    if (bn_json_vocab_init(&v, fx.engine, &err)) fail_msg("%s", err.msg);
    float *row = malloc(sizeof(float) * (size_t)v.n), *again = malloc(sizeof(float) * (size_t)v.n);
    bn_json_state *js = malloc(sizeof *js), *trial = malloc(sizeof *trial);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *text = cases[i].text;
        bn_json_schema *g;
        if (bn_json_schema_compile(cases[i].schema, strlen(cases[i].schema), &g, &err)) fail_msg("%s", err.msg);
        bn_json_state_init(js, g);
        const bool refused = !strcmp(text, "{\"name\":\"\",\"tag\":1,"); // 1 is no enum value
        if (bn_json_state_feed(js, text, strlen(text)) == refused)
            fail_msg("the schema %s \"%s\"", refused ? "takes" : "refuses", text);
        if (refused) {
            bn_json_schema_free(g);
            continue;
        }
        // Twice: worked out, then from the cache, which must give the same row.
        const uint64_t hits = v.hits;
        for (int32_t t = 0; t < v.n; t++) row[t] = 0;
        const int left = bn_json_mask_row(&v, fx.engine, js, row);
        for (int32_t t = 0; t < v.n; t++) again[t] = 0;
        assert_int_equal(bn_json_mask_row(&v, fx.engine, js, again), left);
        assert_int_equal(v.hits, hits + 1);
        assert_memory_equal(again, row, sizeof(float) * (size_t)v.n);
        int want_left = 0;
        for (int32_t t = 0; t < v.n; t++) {
            size_t n = 0;
            const char *bytes = bn_engine_token_bytes(fx.engine, t, &n);
            const bool eog = bn_engine_is_eog(fx.engine, t);
            const bool special = bn_tokenizer_is_special(fx.engine->tok, t) || eog;
            const bool want = eog ? bn_json_state_done(js)
                                  : bytes && n && !special && bn_json_state_next(js, bytes, n, trial);
            if (want != (row[t] == 0))
                fail_msg("after \"%s\": token %d \"%.*s\" %s", text, t, (int)n, bytes ? bytes : "",
                         want ? "masked, but it fits" : "kept, but it does not fit");
            want_left += want;
        }
        assert_int_equal(left, want_left);
        assert_true(left > 0);
        bn_json_schema_free(g);
    }
    free(js);
    free(trial);
    free(row);
    free(again);
    bn_json_vocab_free(&v);
}

// The mask cache answers only for the state it worked out: a schema compiled
// after another is freed (at the same address, likely) is a new schema; a
// state met again is a hit; once more states than it keeps have been met, the
// one met longest ago is worked out again, and right.
static void test_json_mask_cache(void **state) {
    (void)state;
    REQUIRE_MODEL();
    bn_json_vocab v;
    bn_error err;
    if (bn_json_vocab_init(&v, fx.engine, &err)) fail_msg("%s", err.msg);
    float *row = malloc(sizeof(float) * (size_t)v.n);
    bn_json_state *js = malloc(sizeof *js);
    static const char *const schemas[] = {"{\"type\": \"integer\"}", "{\"type\": \"string\"}"};
    int left[2];
    for (int i = 0; i < 2; i++) { // the same nodes and state, but for the schema's serial
        bn_json_schema *g;
        if (bn_json_schema_compile(schemas[i], strlen(schemas[i]), &g, &err)) fail_msg("%s", err.msg);
        bn_json_state_init(js, g);
        left[i] = bn_json_mask_row(&v, fx.engine, js, row);
        for (int32_t t = 0; t < v.n; t++) { // a string begins with a quote, an integer never
            size_t n = 0;
            const char *bytes = bn_engine_token_bytes(fx.engine, t, &n);
            if (row[t] == 0 && bytes && n && bytes[strspn(bytes, " \t\n\r")] == '"' && i == 0)
                fail_msg("an integer's mask keeps token %d \"%.*s\"", t, (int)n, bytes);
        }
        bn_json_schema_free(g);
    }
    assert_int_equal(v.hits, 0);
    assert_int_not_equal(left[0], left[1]);
    // An array of integers: "[1,1,...": the states after "[" and after each
    // "1," repeat, so one string of items is worked out a few times only.
    static const char array[] = "{\"type\": \"array\", \"items\": {\"type\": \"integer\"}}";
    bn_json_schema *g;
    if (bn_json_schema_compile(array, strlen(array), &g, &err)) fail_msg("%s", err.msg);
    bn_json_state_init(js, g);
    const uint64_t misses = v.misses;
    for (int i = 0; i < 40; i++) {
        bn_json_mask_row(&v, fx.engine, js, row);
        assert_true(bn_json_state_feed(js, i == 0 ? "[" : i % 2 ? "1" : ",", 1));
    }
    assert_int_equal(v.misses - misses, 4); // "", "[", "[1" and "[1,"; then "[1,1" is "[1" again
    bn_json_schema_free(g);
    free(js);
    free(row);
    bn_json_vocab_free(&v);
}

// Whole texts, one compiled schema each, masked at every byte: a vocab whose
// cache has met the states before (in these texts, in other places) gives the
// rows one that works each out afresh gives. Texts that revisit a state after
// different paths (a string after a literal or a number, after a key, at
// other depths, after other blanks; a bounded string's count, an integer's
// or a bounded number's digits) catch a key that leaves out something the automaton reads.
static void test_json_mask_cache_rows(void **state) {
    (void)state;
    REQUIRE_MODEL();
    static const struct {
        const char *schema, *texts[6]; // up to a NULL
    } cases[] = {
        {"{\"type\": \"object\"}",
         {"{\"a\":null,\"b\":\"ab\",\"c\":[1,\"x\",{\"d\":true}],\"e\":\"ab\"}", "{\"a\":1,\"b\":\"ab\"}",
          "{\"z\":[{\"y\":{}},\"ab\"],\"ab\":\"ab\"}", "{\"n\":[[1e5,-0.5],{\"\\u00e9\":\"\xc3\xa9\"}]}",
          "{\"a\":[1, 2]}", "{\"a\":[1,\n2]}"}},
        {"{\"type\": \"object\", \"properties\": {\"s\": {\"type\": \"string\", \"minLength\": 2, \"maxLength\": 4},"
         " \"n\": {\"type\": \"integer\", \"minimum\": -3, \"maximum\": 250}, \"t\": {\"type\": \"string\"}}}",
         {"{\"s\":\"abcd\",\"n\":249,\"t\":\"abcd\"}", "{\"s\":\"ab\",\"n\":-3}", "{\"n\":25,\"t\":\"ab\"}",
          "{\"s\":\"\xc3\xa9\\n\",\"n\":2}"}},
        {"{\"type\": \"object\", \"properties\": {\"d\": {\"type\": \"string\", \"minLength\": 2, \"maxLength\": 200},"
         " \"e\": {\"type\": \"string\", \"maxLength\": 6}}}",
         {"{\"d\":\"It was the best of times, it was the worst of times, it was the age of wisdom, it was the age "
          "of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of "
          "Light\",\"e\":\"abcdef\"}",
          "{\"d\":\"ab\",\"e\":\"\"}"}},
        {"{\"anyOf\": [{\"type\": \"array\", \"items\": {\"enum\": [\"red\", \"green\", 12, 125]}, \"maxItems\": 3},"
         " {\"type\": \"object\", \"properties\": {\"red\": {\"type\": \"integer\"}}}]}",
         {"[\"red\",12,125]", "[125,\"green\"]", "{\"red\":12}", "[]"}},
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"number\", \"minimum\": -1.5, \"maximum\": 2.25},"
         " \"b\": {\"type\": \"number\", \"exclusiveMinimum\": 0}}}",
         {"{\"a\":2.25,\"b\":2.25}", "{\"a\":-1.5,\"b\":0.000001}", "{\"a\":0.5,\"b\":12.5}", "{\"a\":2,\"b\":2}",
          "{\"b\":0.5}"}},
    };
    bn_json_vocab warm, cold;
    bn_error err;
    if (bn_json_vocab_init(&warm, fx.engine, &err) || bn_json_vocab_init(&cold, fx.engine, &err))
        fail_msg("%s", err.msg);
    float *got = malloc(sizeof(float) * (size_t)warm.n), *want = malloc(sizeof(float) * (size_t)warm.n);
    bn_json_state *js = malloc(sizeof *js);
    int rows = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        bn_json_schema *g;
        if (bn_json_schema_compile(cases[i].schema, strlen(cases[i].schema), &g, &err)) fail_msg("%s", err.msg);
        for (int k = 0; k < 6 && cases[i].texts[k]; k++) {
            const char *text = cases[i].texts[k];
            bn_json_state_init(js, g);
            for (size_t at = 0; at <= strlen(text); at++) {
                for (int32_t t = 0; t < warm.n; t++) got[t] = want[t] = 0;
                bn_json_mask_forget(&cold);
                const int left = bn_json_mask_row(&warm, fx.engine, js, got);
                assert_int_equal(bn_json_mask_row(&cold, fx.engine, js, want), left);
                if (memcmp(got, want, sizeof(float) * (size_t)warm.n))
                    fail_msg("%s after \"%.*s\": the cached row differs", cases[i].schema, (int)at, text);
                rows++;
                if (at < strlen(text) && !bn_json_state_feed(js, text + at, 1))
                    fail_msg("%s refuses \"%.*s\"", cases[i].schema, (int)at + 1, text);
            }
        }
        bn_json_schema_free(g);
    }
    fprintf(stderr, "mask cache: %d rows, %llu from the cache, each equal to the row worked out\n", rows,
            (unsigned long long)warm.hits);
    assert_true(warm.hits > (uint64_t)rows / 4);
    free(js);
    free(got);
    free(want);
    bn_json_vocab_free(&warm);
    bn_json_vocab_free(&cold);
}

// Requests that give the same schema text share its compilation, and so the
// masks of its states: the same request again (same seed, same tokens) has
// every row from the cache. A request with a schema that does not compile
// takes nothing away.
static void test_batch_shares_schemas(void **state) {
    (void)state;
    REQUIRE_MODEL();
    static const char schema[] = "{\"type\": \"object\", \"properties\": {\"n\": {\"type\": \"integer\"}, "
                                 "\"s\": {\"type\": \"string\"}}, \"required\": [\"n\", \"s\"]}";
    bn_batch *b = open_batch(2, 0);
    bn_request req = hot_request(3, 24, 5);
    req.json_schema = schema;
    req.user = 0; // out[0]
    const int start = 0;
    result first, again;
    uint64_t hits, misses, hits2, misses2;
    run_requests(b, &req, &start, 1, &first);
    bn_batch_json_counts(b, &hits, &misses);
    assert_true(misses > 0);
    bn_request bad = req;
    bad.json_schema = "{\"type\": \"string\", \"format\": \"email\"}";
    bn_error err;
    assert_int_equal(bn_batch_add(b, &bad, &err), -1);
    run_requests(b, &req, &start, 1, &again);
    bn_batch_json_counts(b, &hits2, &misses2);
    assert_int_equal(again.n_ids, first.n_ids);
    assert_memory_equal(again.ids, first.ids, sizeof(int32_t) * (size_t)first.n_ids);
    assert_int_equal(misses2, misses);
    assert_int_equal(hits2 - hits, (uint64_t)(hits + misses));
    bn_batch_free(b);
}

// json_object: whatever the model's logits, a request that ends by itself
// (BN_STOP_EOG) has made one JSON object, as cJSON reads it; one cut by
// max_tokens has not run into anything JSON forbids (checked when it ends
// otherwise). Sampled hot from the random tiny-a, whose own choices are
// anything but JSON.
static void test_batch_json_object(void **state) {
    (void)state;
    REQUIRE_MODEL();
    enum { N = 12 };
    const bn_chat_message ask = {"user", "Give me a JSON object."};
    int32_t *prompt;
    size_t n_prompt;
    bn_error err;
    if (bn_engine_chat_prompt(fx.engine, &ask, 1, &prompt, &n_prompt, &err)) fail_msg("%s", err.msg);
    bn_batch *b = open_batch(4, 0);
    bn_request req[N];
    for (int i = 0; i < N; i++) {
        req[i] = hot_request(1, 40, (uint64_t)i);
        req[i].prompt = prompt, req[i].n_prompt = n_prompt;
        req[i].user = (void *)(intptr_t)i; // out[i]
        req[i].json_object = true;
    }
    const int start[N] = {0};
    result got[N];
    run_requests(b, req, start, N, got);
    int whole = 0;
    for (int i = 0; i < N; i++) {
        got[i].text[got[i].len] = 0;
        if (got[i].stop != BN_STOP_EOG) {
            assert_true(got[i].stop == BN_STOP_LENGTH || got[i].stop == BN_STOP_CONTEXT);
            continue;
        }
        cJSON *o = cJSON_Parse(got[i].text);
        if (!cJSON_IsObject(o)) fail_msg("request %d ended with \"%s\", not a JSON object", i, got[i].text);
        cJSON_Delete(o);
        whole++;
    }
    fprintf(stderr, "json_object: %d of %d requests made a whole object\n", whole, N);
    assert_true(whole >= 3);
    // Without it, the same seeds make no JSON object.
    for (int i = 0; i < N; i++) req[i].json_object = false;
    run_requests(b, req, start, N, got);
    for (int i = 0; i < N; i++) {
        got[i].text[got[i].len] = 0;
        cJSON *o = cJSON_Parse(got[i].text);
        assert_false(cJSON_IsObject(o));
        cJSON_Delete(o);
    }
    bn_batch_free(b);
    free(prompt);
}

// A session held to a JSON Schema (bn_session_set_json_schema) makes what a
// batch request with that schema makes, token for token, seed for seed (one
// mask, one sampler); the replies that end by themselves are JSON the schema
// accepts (read with cJSON and checked by hand). A schema the library cannot
// follow leaves the one before; NULL lifts it.
static void test_session_json_schema(void **state) {
    (void)state;
    REQUIRE_MODEL();
    // The first 8 requests give one schema text: the batch compiles it once
    // and its mask cache serves them all. The last 8 each give their own text
    // (a title apart): more than the batch keeps compiled (3 slots + 4), so
    // the ones taken longest ago are dropped. Each equals a session alone,
    // whose mask cache starts empty.
    enum { N = 16 };
#define TAGGED "\"type\": \"object\", \"properties\": {\"n\": {\"type\": \"integer\"}, " \
               "\"tag\": {\"enum\": [\"a\", \"b\"]}}, \"required\": [\"n\", \"tag\"]}"
    static const char schema[] = "{" TAGGED;
    char titled[N][256];
    bn_batch *b = open_batch(3, 0);
    bn_request req[N];
    for (int i = 0; i < N; i++) {
        req[i] = hot_request(i, 48, (uint64_t)i);
        snprintf(titled[i], sizeof titled[i], "{\"title\": \"v%d\", " TAGGED, i);
        req[i].json_schema = i < N / 2 ? schema : titled[i];
    }
#undef TAGGED
    const int start[N] = {0};
    result got[N];
    run_requests(b, req, start, N, got);
    int whole = 0;
    for (int i = 0; i < N; i++) {
        const result alone = alone_result(&req[i]);
        assert_same(&got[i], &alone, i);
        if (got[i].stop != BN_STOP_EOG) continue;
        got[i].text[got[i].len] = 0;
        cJSON *o = cJSON_Parse(got[i].text);
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "n"), *tag = cJSON_GetObjectItemCaseSensitive(o, "tag");
        if (!cJSON_IsObject(o) || cJSON_GetArraySize(o) != 2 || !cJSON_IsNumber(n) || n->valuedouble != floor(n->valuedouble) ||
            !cJSON_IsString(tag) || (strcmp(tag->valuestring, "a") && strcmp(tag->valuestring, "b")))
            fail_msg("request %d ended with \"%s\", which the schema refuses", i, got[i].text);
        cJSON_Delete(o);
        whole++;
    }
    fprintf(stderr, "json_schema: %d of %d replies whole, each the same in a session and a batch\n", whole, N);
    assert_true(whole >= 6);
    bn_batch_free(b);
    bn_session_params sp = {.backend = "cpu", .n_threads = 1, .n_ctx = N_CTX};
    bn_session *s;
    bn_error err;
    if (bn_session_create(fx.engine, &sp, &s, &err)) fail_msg("%s", err.msg);
    assert_int_equal(bn_session_set_json_schema(s, schema, &err), 0);
    assert_int_equal(bn_session_set_json_schema(s, "{\"format\": \"email\"}", &err), -1);
    assert_non_null(strstr(err.msg, "'format' is not supported"));
    result held = {.n_ids = 0}, free_text = {.n_ids = 0};
    bn_timings t;
    if (bn_session_generate(s, req[0].prompt, req[0].n_prompt, 48, &req[0].sampling, collect, &held, &t, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(held.n_ids, got[0].n_ids); // the schema before the refused one still holds
    assert_int_equal(bn_session_set_json_schema(s, NULL, &err), 0);
    bn_session_reset(s);
    if (bn_session_generate(s, req[0].prompt, req[0].n_prompt, 8, &req[0].sampling, collect, &free_text, &t, &err))
        fail_msg("%s", err.msg);
    free_text.text[free_text.len] = 0;
    assert_true(free_text.len > 0 && free_text.text[0] != '{'); // the random model, unheld
    bn_session_free(s);
}

// Stop strings: the text ends before the earliest match, even across tokens.
static void test_batch_stop_strings(void **state) {
    (void)state;
    REQUIRE_MODEL();
    bn_batch *b = open_batch(2, 0);
    bn_request req = request(1, 24, bn_sampling_greedy());
    req.user = 0; // out[0]
    result full, got;
    const int start = 0;
    run_requests(b, &req, &start, 1, &full);
    assert_true(full.len > 12);
    // A stop string from the middle of the text (it may span tokens), another later.
    char mid[8], late[8];
    memcpy(mid, full.text + full.len / 2, 4), mid[4] = 0;
    memcpy(late, full.text + full.len - 3, 3), late[3] = 0;
    const char *stops[] = {late, "never in the text", mid, ""};
    req.stop = stops;
    req.n_stop = 4;
    run_requests(b, &req, &start, 1, &got);
    const char *at = strstr(full.text, mid);
    const char *at_late = strstr(full.text, late);
    if (at_late && at_late < at) at = at_late;
    assert_int_equal(got.stop, BN_STOP_STRING);
    assert_int_equal(got.len, (size_t)(at - full.text));
    assert_memory_equal(got.text, full.text, got.len);
    // None that matches: the whole text, stopped by max_tokens.
    const char *none[] = {"never in the text", "\x01"};
    req.stop = none;
    req.n_stop = 2;
    run_requests(b, &req, &start, 1, &got);
    assert_int_equal(got.stop, BN_STOP_LENGTH);
    assert_int_equal(got.len, full.len);
    bn_batch_free(b);
}

// The context: a prompt of N_CTX - 1 tokens gives 2 tokens, as in a session;
// max_tokens <= 0 runs until the context is full.
static void test_batch_context(void **state) {
    (void)state;
    REQUIRE_MODEL();
    int32_t long_prompt[N_CTX];
    for (int i = 0; i < N_CTX; i++) long_prompt[i] = fx.ids[2][i % fx.n_ids[2]];
    bn_batch *b = open_batch(2, 8);
    bn_request req[2] = {request(0, 0, bn_sampling_greedy()), request(1, 100, bn_sampling_greedy())};
    req[0].prompt = long_prompt;
    req[0].n_prompt = N_CTX - 1;
    const int start[2] = {0, 0};
    result got[2];
    run_requests(b, req, start, 2, got);
    assert_int_equal(got[0].stop, BN_STOP_CONTEXT);
    assert_int_equal(got[0].n_ids, 2);
    assert_int_equal(got[1].stop, BN_STOP_CONTEXT);
    assert_int_equal(got[1].n_ids, N_CTX + 1 - (int)fx.n_ids[1]);
    bn_batch_free(b);
}

static void test_batch_errors(void **state) {
    (void)state;
    REQUIRE_MODEL();
    bn_batch *b = open_batch(2, 0);
    bn_error err;
    assert_string_equal(bn_batch_backend(b), "cpu");
    assert_int_equal(bn_batch_n_ctx(b), N_CTX);
    bn_request r = request(0, 4, bn_sampling_greedy());
    int32_t bad = 1 << 30, many[N_CTX + 1] = {0};
    r.n_prompt = 0;
    assert_int_equal(bn_batch_add(b, &r, &err), -1);
    r = request(0, 4, bn_sampling_greedy());
    r.prompt = many, r.n_prompt = N_CTX + 1;
    assert_int_equal(bn_batch_add(b, &r, &err), -1);
    assert_non_null(strstr(err.msg, "does not fit"));
    r.prompt = &bad, r.n_prompt = 1;
    assert_int_equal(bn_batch_add(b, &r, &err), -1);
    r = request(0, 4, bn_sampling_greedy());
    r.sampling.temperature = -1;
    assert_int_equal(bn_batch_add(b, &r, &err), -1);
    assert_int_equal(bn_batch_n_free(b), 2);
    r = request(0, 4, bn_sampling_greedy());
    assert_int_equal(bn_batch_add(b, &r, &err), 0);
    assert_int_equal(bn_batch_add(b, &r, &err), 1);
    assert_int_equal(bn_batch_add(b, &r, &err), -1);
    assert_non_null(strstr(err.msg, "busy"));
    assert_int_equal(bn_batch_n_active(b), 2);
    const bn_batch_event *ev;
    int n_ev;
    assert_int_equal(bn_batch_step(b, &ev, &n_ev, &err), 0);
    assert_int_equal(n_ev, 2);
    bn_batch_remove(b, 0); // cancelled mid-way: the slot is free at once
    bn_batch_remove(b, 0);
    bn_batch_remove(b, -1);
    bn_batch_remove(b, 7);
    assert_int_equal(bn_batch_n_free(b), 1);
    assert_int_equal(bn_batch_step(b, &ev, &n_ev, &err), 0);
    assert_int_equal(n_ev, 1);
    assert_int_equal(ev[0].slot, 1);
    bn_batch_free(b); // with a slot still in use
}

// `test_batch cuda` runs the CUDA test alone (CTest's test_batch_cuda), so that
// where no GPU is usable its skip does not hide the CPU tests' result.
int main(int argc, char **argv) {
    const struct CMUnitTest cuda[] = {cmocka_unit_test(test_forward_cuda),
                                      cmocka_unit_test(test_session_keep_prefix_cuda),
                                      cmocka_unit_test(test_batch_prompt_logprobs_golden_cuda)};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_cpu),
        cmocka_unit_test(test_forward_errors),
        cmocka_unit_test(test_batch_same_as_alone),
        cmocka_unit_test(test_batch_prompt_cache),
        cmocka_unit_test(test_batch_copies_prefix),
        cmocka_unit_test(test_session_keep_prefix),
        cmocka_unit_test(test_batch_logprobs),
        cmocka_unit_test(test_session_logprobs),
        cmocka_unit_test(test_batch_prompt_logprobs),
        cmocka_unit_test(test_batch_prompt_logprobs_golden),
        cmocka_unit_test(test_json_mask_exact),
        cmocka_unit_test(test_json_mask_cache),
        cmocka_unit_test(test_json_mask_cache_rows),
        cmocka_unit_test(test_batch_shares_schemas),
        cmocka_unit_test(test_batch_json_object),
        cmocka_unit_test(test_session_json_schema),
        cmocka_unit_test(test_batch_stop_strings),
        cmocka_unit_test(test_batch_context),
        cmocka_unit_test(test_batch_errors),
    };
    if (argc > 1 && !strcmp(argv[1], "cuda")) return cmocka_run_group_tests(cuda, setup, teardown);
    return cmocka_run_group_tests(tests, setup, teardown);
}
