// test_session_random.c - a session over many calls under random settings
// (core/session.c).
//
// Each scenario draws, from its seed, a context size and a way to hold the
// conversation: calls that each feed the next turn after what the session
// holds, or calls that resend the whole conversation after
// bn_session_keep_prefix (as serve's and chat's prompt cache do). Before each
// turn the drafting changes at random (off, prompt lookup, or a draft session
// of the shipped model, whose p-min and context vary and whose own cache
// follows the conversation across calls), and so do the sampling (greedy or
// seeded, with penalties), the logprobs and a JSON Schema. Each turn's tokens,
// their log-probabilities and its stop reason must be those of a fresh session
// without drafts fed the whole conversation so far in one call (test_lookup
// and test_trained_model hold that one to its references).
// BITNET_RANDOM_SCENARIOS sets how many scenarios run (default 40), and
// BITNET_RANDOM_SEED the first seed, to replay a failure.
#include "test_util.h"

#include <inttypes.h>
#include <string.h>

#include "bitnet.h"
#include "engine_internal.h" // the model's context, a session's default

#define MAX_HIST 600
#define MAX_TURN_GEN 48

static const char *const TEXTS[] = {
    ("It is a truth universally acknowledged, that a single man in possession of a good fortune, must be "
     "in want of a wife."),
    " Elizabeth said to her sister, and her sister said to Elizabeth, that",
    " Mr. Darcy walked towards the window, and Mrs. Bennet",
    " The",
    " It is a truth universally acknowledged",
};
#define N_TEXTS (sizeof TEXTS / sizeof TEXTS[0])
static const char *const SCHEMA = "{\"type\": \"array\", \"items\": {\"enum\": [\"Elizabeth\", \"Jane\"]}}";

static bn_engine *g_engine;
static int32_t *g_ids[N_TEXTS];
static size_t g_n_ids[N_TEXTS];

static int setup(void **state) {
    (void)state;
    bn_error err = {{0}};
    if (!(g_engine = bn_shipped_engine())) goto fail;
    for (size_t i = 0; i < N_TEXTS; i++) // the first with its BOS, the others to follow it
        if (bn_engine_tokenize(g_engine, TEXTS[i], i == 0, false, &g_ids[i], &g_n_ids[i], &err)) goto fail;
    return 0;
fail:
    fprintf(stderr, "%s\n", err.msg);
    return -1;
}

static int teardown(void **state) {
    (void)state;
    for (size_t i = 0; i < N_TEXTS; i++) free(g_ids[i]);
    bn_engine_free(g_engine);
    return 0;
}

typedef struct turn_out {
    int32_t ids[MAX_TURN_GEN];
    float logprob[MAX_TURN_GEN];
    int n;
    const bn_session *s;
    bool logprobs;
    bn_timings t;
} turn_out;

static int on_token(void *user, int32_t id, const char *text, size_t len) {
    (void)text, (void)len;
    turn_out *o = user;
    if (id < 0) return 0;
    assert_true(o->n < MAX_TURN_GEN);
    const bn_token_logprob *top;
    if (o->logprobs) bn_session_token_logprobs(o->s, &o->logprob[o->n], &top);
    o->ids[o->n++] = id;
    return 0;
}

static int pick(uint64_t *rng, int n) { return (int)(bn_test_rand(rng) % (uint64_t)n); }

static bn_sampling draw_sampling(uint64_t *rng) {
    bn_sampling sp = bn_sampling_greedy();
    switch (pick(rng, 4)) {
    case 0: break;
    case 1: sp = bn_sampling_default(); break;
    case 2:
        sp = bn_sampling_default();
        sp.top_k = 0, sp.top_p = 0.9f;
        break;
    default:
        sp = bn_sampling_default();
        sp.repeat_penalty = 1.2f, sp.frequency_penalty = 0.3f;
        break;
    }
    sp.seed = bn_test_rand(rng);
    return sp;
}

// Settings of one turn, and what they did.
typedef struct turn {
    int lookup, draft; // max_draft for prompt lookup, or for the draft session (0: none)
    float p_min;
    bool logprobs, json;
    bn_sampling sampling;
    int n_predict;
} turn;

// A fresh session without drafts, fed hist[0..n) in one call.
static void reference(const int32_t *hist, int n, int n_ctx, const turn *t, turn_out *out) {
    const bn_session_params sp = {.backend = "cpu", .n_threads = 2, .n_ctx = n_ctx};
    bn_session *s;
    bn_error err;
    memset(out, 0, sizeof *out);
    if (bn_session_create(g_engine, &sp, &s, &err) || (t->logprobs && bn_session_set_logprobs(s, 0, &err)) ||
        (t->json && bn_session_set_json_schema(s, SCHEMA, &err)))
        fail_msg("%s", err.msg);
    out->s = s, out->logprobs = t->logprobs;
    if (bn_session_generate(s, hist, (size_t)n, t->n_predict, &t->sampling, on_token, out, &out->t, &err))
        fail_msg("reference: %s", err.msg);
    bn_session_free(s);
}

static void scenario(uint64_t seed, int *turns_run, int *drafted) {
    uint64_t rng = seed * 0x9E3779B97F4A7C15ULL + 7;
    static const int ctxs[] = {0, 64, 96, 128};
    const int n_ctx = ctxs[pick(&rng, 4)], ctx = n_ctx ? n_ctx : (int)g_engine->model->hp.n_ctx_train;
    const bool resend = pick(&rng, 2);
    const int draft_ctx = pick(&rng, 3) ? n_ctx : 40 + pick(&rng, 60);
    const bn_session_params sp = {.backend = "cpu", .n_threads = 2, .n_ctx = n_ctx},
                            dp = {.backend = "cpu", .n_threads = 2, .n_ctx = draft_ctx};
    bn_session *s, *ds;
    bn_error err;
    if (bn_session_create(g_engine, &sp, &s, &err) || bn_session_create(g_engine, &dp, &ds, &err))
        fail_msg("%s", err.msg);
    static int32_t hist[MAX_HIST];
    int n_hist = 0;
    const int n_turns = 2 + pick(&rng, 7);
    fprintf(stderr, "  seed %" PRIu64 ": context %d, %s, draft context %d, %d turns:", seed, n_ctx,
            resend ? "resent with keep_prefix" : "fed turn by turn", draft_ctx, n_turns);
    for (int k = 0; k < n_turns; k++) {
        // The turn's text: the start of a text (the first turn the first text, with its BOS).
        const int tx = k == 0 ? 0 : 1 + pick(&rng, (int)N_TEXTS - 1);
        const int n_user = k == 0 ? (int)g_n_ids[0] : 1 + pick(&rng, (int)g_n_ids[tx]);
        if (n_hist + n_user + 1 >= ctx || n_hist + n_user + MAX_TURN_GEN > MAX_HIST) break;
        memcpy(hist + n_hist, g_ids[tx], sizeof(int32_t) * (size_t)n_user);
        const int turn_start = n_hist; // what this turn's call takes, when fed turn by turn
        n_hist += n_user;
        turn t = {.sampling = draw_sampling(&rng), .n_predict = 1 + pick(&rng, 40), .logprobs = pick(&rng, 3) == 0,
                  .json = pick(&rng, 8) == 0};
        switch (pick(&rng, 4)) {
        case 0: break;
        case 1: t.lookup = 1 + pick(&rng, 16); break;
        default:
            t.draft = 1 + pick(&rng, 16);
            t.p_min = (float[]){0, 0.05f, 0.3f}[pick(&rng, 3)];
            break;
        }
        const int drafting = t.draft ? bn_session_set_draft(s, ds, t.draft, t.p_min, &err)
                                     : bn_session_set_lookup(s, t.lookup, &err);
        if (drafting || bn_session_set_logprobs(s, t.logprobs ? 0 : -1, &err) ||
            bn_session_set_json_schema(s, t.json ? SCHEMA : NULL, &err))
            fail_msg("%s", err.msg);
        fprintf(stderr, " [%s%s]", t.draft ? "draft" : t.lookup ? "lookup" : "plain", t.json ? ", json" : "");
        turn_out got = {.s = s, .logprobs = t.logprobs}, want;
        // Fed turn by turn: the session still holds the last turn's last sampled token
        // unfed, and feeds it before these.
        const int from = resend ? bn_session_keep_prefix(s, hist, (size_t)n_hist) : turn_start;
        if (bn_session_generate(s, hist + from, (size_t)(n_hist - from), t.n_predict, &t.sampling, on_token, &got,
                                &got.t, &err))
            fail_msg("seed %" PRIu64 ", turn %d: %s", seed, k, err.msg);
        *drafted += (int)bn_session_lookup_stats(s).drafted; // this call's
        reference(hist, n_hist, n_ctx, &t, &want);
        if (got.n != want.n || memcmp(got.ids, want.ids, sizeof got.ids[0] * (size_t)got.n) ||
            got.t.stop != want.t.stop || got.t.n_gen != want.t.n_gen ||
            memcmp(got.logprob, want.logprob, sizeof got.logprob[0] * (size_t)got.n))
            fail_msg("seed %" PRIu64 ", turn %d: %d tokens (stop %d), %d (stop %d) fed in one call, or other ids or "
                     "logprobs",
                     seed, k, got.n, got.t.stop, want.n, want.t.stop);
        memcpy(hist + n_hist, got.ids, sizeof(int32_t) * (size_t)got.n);
        n_hist += got.n;
        ++*turns_run;
        if (got.t.stop == BN_STOP_CONTEXT) break;
        if (got.t.n_gen > got.n) { // it ended on an end-of-generation token, which on_token never saw
            if (!t.logprobs) break; // its id is known only with logprobs on
            hist[n_hist++] = bn_session_token_id(s);
        }
    }
    fprintf(stderr, "\n");
    bn_session_free(s);
    bn_session_free(ds);
}

static void test_random_conversations(void **state) {
    (void)state;
    uint64_t seed0;
    const int n = bn_random_scenarios(40, &seed0);
    int turns = 0, drafted = 0;
    for (uint64_t seed = seed0; seed < seed0 + (uint64_t)n; seed++) scenario(seed, &turns, &drafted);
    fprintf(stderr, "  %d scenarios, %d turns, %d tokens drafted: each turn as fed in one call\n", n, turns,
            drafted);
    assert_true(turns > n && drafted > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_random_conversations)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
