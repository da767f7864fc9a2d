// test_batch_random.c - the batch under random schedules (core/batch.c).
//
// Each scenario draws, from its seed, a batch (slots, step size, context, and
// a CPU kernel set this CPU runs or the one chosen for it) and a drafter (none,
// prompt lookup, the shipped model drafting for itself with or without a p-min
// or in a short context, or a random draft model of its vocabulary, whose
// drafts are refused), then requests of every kind: prompts that share their
// starts with one another (the prompt cache, and copies between slots), greedy
// and sampled with top-k, top-p, penalties and biases, logprobs and prompt
// logprobs, stop strings, JSON mode and a JSON Schema, max_tokens from 1 to the
// context's end; they arrive at random steps, and some are cancelled after a
// few tokens or removed a few steps after they join (often while their prompt
// is fed).
//
// Every request must give exactly the tokens, log-probabilities, text and stop
// reason it gives alone in a batch of one slot without drafts on the same
// kernel set (the sets differ from one another in the last bits of some sums;
// test_batch holds the slot alone to a session, test_trained_model the session
// to the model's PyTorch reference); one cancelled or removed, the start of
// them. Each step gives at most one event a slot, and every slot is free at the
// end. BITNET_RANDOM_SCENARIOS sets how many scenarios run (default 24), and
// BITNET_RANDOM_SEED the first seed, to replay a failure.
#include "test_util.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "backend.h"
#include "bitnet.h"
#include "devtools.h"
#include "engine_internal.h" // the model's context, a batch's default
#include "kernels.h"

#define MAX_REQ 10
#define MAX_GEN 200

static const char *const TEXTS[] = {
    ("It is a truth universally acknowledged, that a single man in possession of a good fortune, must be "
     "in want of a wife. It is a truth universally acknowledged, that a single man"),
    "Elizabeth said to her sister, and her sister said to Elizabeth, that",
    "Mr. Darcy walked towards the window, and Mrs. Bennet",
    "The",
};
#define N_TEXTS (sizeof TEXTS / sizeof TEXTS[0])
static const char *const STOPS[] = {"Elizabeth", ", that", "\n"};
static const char *const SCHEMA = "{\"type\": \"array\", \"items\": {\"enum\": [\"Elizabeth\", \"Jane\"]}}";

static bn_engine *g_engine, *g_random;
static char g_random_path[64];
static int32_t *g_ids[N_TEXTS];
static const char *g_sets[8]; // the CPU kernel sets this CPU runs
static int g_n_sets;
static size_t g_n_ids[N_TEXTS];

static int setup(void **state) {
    (void)state;
    char path[4096];
    bn_error err;
    bn_synth_config cfg;
    if (bn_engine_load(bn_shipped_path("models/bitnet-austen-6m.gguf", path, sizeof path), NULL, &g_engine, &err) ||
        bn_synth_preset("tiny", &cfg, &err))
        goto fail;
    cfg.vocab_path = path, cfg.seed = 3; // a random model of the same vocabulary, refused as a drafter
    bn_tmp_path(g_random_path, sizeof g_random_path, "random");
    if (bn_synth_model_write(&cfg, g_random_path, &err) || bn_engine_load(g_random_path, NULL, &g_random, &err))
        goto fail;
    for (size_t i = 0; i < N_TEXTS; i++)
        if (bn_engine_tokenize(g_engine, TEXTS[i], true, false, &g_ids[i], &g_n_ids[i], &err)) goto fail;
    for (size_t k = 0; bn_cpu_kernel_sets[k] && g_n_sets < 8; k++) {
        const bn_cpu_kernels *kern;
        if (!bn_cpu_kernels_select(bn_cpu_kernel_sets[k], &kern, &err)) g_sets[g_n_sets++] = bn_cpu_kernel_sets[k];
    }
    return 0;
fail:
    fprintf(stderr, "%s\n", err.msg);
    return -1;
}

static int teardown(void **state) {
    (void)state;
    for (size_t i = 0; i < N_TEXTS; i++) free(g_ids[i]);
    bn_engine_free(g_engine);
    bn_engine_free(g_random);
    if (g_random_path[0]) remove(g_random_path);
    return 0;
}

typedef struct outcome {
    int32_t ids[MAX_GEN];
    float logprob[MAX_GEN];
    int n;
    char text[8192];
    size_t len;
    bn_stop stop;
    bool done;
    float prompt_logprob[256]; // with prompt_logprobs, from the first event
    int n_prompt_logprob;
} outcome;

typedef struct scenario {
    bn_batch_params batch;
    const bn_engine *draft; // NULL: lookup when max_draft > 0
    int max_draft, draft_ctx;
    float p_min;
    int n_req;
    bn_request req[MAX_REQ];
    int32_t prompt[MAX_REQ][256];
    bn_logit_bias bias[2];
    int start[MAX_REQ];  // the step a request may join from
    int cancel[MAX_REQ]; // removed after this many events (0: runs to its end)
    int drop[MAX_REQ];   // removed this many steps after it joins, events or not (0: never)
} scenario;

static int pick(uint64_t *rng, int n) { return (int)(bn_test_rand(rng) % (uint64_t)n); }

static float uniform(uint64_t *rng) { return (float)(bn_test_rand(rng) >> 40) / (float)(1 << 24); }

// A prompt: the start of one text, sometimes followed by the start of another,
// so that requests share starts of every length.
static size_t draw_prompt(uint64_t *rng, int32_t *out, size_t cap) {
    size_t n = 0;
    for (int part = 0; part < 1 + (pick(rng, 3) == 0) && n < cap; part++) {
        const int t = pick(rng, (int)N_TEXTS);
        const size_t skip = part ? 1 : 0, have = g_n_ids[t] - skip; // a second part without its BOS
        size_t take = pick(rng, 2) ? have : 1 + (size_t)pick(rng, (int)have);
        if (take > cap - n) take = cap - n;
        memcpy(out + n, g_ids[t] + skip, take * sizeof *out);
        n += take;
    }
    return n;
}

static void draw_sampling(uint64_t *rng, scenario *s, bn_request *r) {
    r->sampling = bn_sampling_greedy();
    switch (pick(rng, 6)) {
    case 0: case 1: break; // greedy
    case 2:
        r->sampling = bn_sampling_default();
        r->sampling.temperature = 0.5f + uniform(rng);
        r->sampling.top_k = pick(rng, 2) ? 40 : 1 + pick(rng, 128);
        break;
    case 3: // the whole row
        r->sampling = bn_sampling_default();
        r->sampling.top_k = 0, r->sampling.top_p = 0.9f, r->sampling.min_p = 0.02f;
        break;
    case 4: // penalties
        r->sampling = bn_sampling_default();
        r->sampling.repeat_penalty = 1.2f, r->sampling.frequency_penalty = 0.4f, r->sampling.presence_penalty = 0.2f;
        break;
    default: // a ban and a raise
        r->sampling = bn_sampling_default();
        s->bias[0] = (bn_logit_bias){.token = 11, .bias = -INFINITY};
        s->bias[1] = (bn_logit_bias){.token = 13, .bias = 2.5f};
        r->sampling.logit_bias = s->bias, r->sampling.n_logit_bias = 2;
        break;
    }
    r->sampling.seed = bn_test_rand(rng);
}

static void draw(uint64_t seed, scenario *s) {
    uint64_t rng = seed * 0x9E3779B97F4A7C15ULL + 1;
    static const int steps[] = {0, 1, 2, 3, 8, 16, 33};
    static const int ctxs[] = {0, 0, 48, 96, 160};
    memset(s, 0, sizeof *s);
    s->batch = (bn_batch_params){.session = {.backend = "cpu", .n_threads = 2, .n_ctx = ctxs[pick(&rng, 5)]},
                                 .n_slots = 1 + pick(&rng, pick(&rng, 4) ? 6 : 12),
                                 .step_tokens = steps[pick(&rng, 7)]};
    const int n_ctx = s->batch.session.n_ctx ? s->batch.session.n_ctx : (int)g_engine->model->hp.n_ctx_train;
    // Each kernel set holds a sequence's tokens alone and batched bit for bit (not across sets).
    s->batch.session.cpu_kernels = pick(&rng, 2) ? NULL : g_sets[pick(&rng, g_n_sets)];
    switch (pick(&rng, 6)) {
    case 0: break; // no drafts
    case 1: s->max_draft = 1 + pick(&rng, 32); break; // lookup
    case 2: s->draft = g_engine, s->max_draft = 1 + pick(&rng, 16); break;
    case 3: s->draft = g_engine, s->max_draft = 2 + pick(&rng, 8), s->p_min = 0.3f; break;
    case 4: s->draft = g_engine, s->max_draft = 4, s->draft_ctx = 24 + pick(&rng, 40); break;
    default: s->draft = g_random, s->max_draft = 1 + pick(&rng, 8); break;
    }
    s->n_req = 2 + pick(&rng, MAX_REQ - 1);
    for (int i = 0; i < s->n_req; i++) {
        bn_request *r = &s->req[i];
        const size_t cap = (size_t)n_ctx - 1 < 256 ? (size_t)n_ctx - 1 : 256;
        r->prompt = s->prompt[i];
        r->n_prompt = draw_prompt(&rng, s->prompt[i], cap);
        r->max_tokens = pick(&rng, 8) == 0 ? 0 : 1 + pick(&rng, 60); // 0: until the context is full
        if (r->max_tokens == 0 && n_ctx - (int)r->n_prompt > MAX_GEN - 8) r->max_tokens = MAX_GEN - 8;
        draw_sampling(&rng, s, r);
        r->user = (void *)(intptr_t)i;
        r->no_prefix_cache = pick(&rng, 5) == 0;
        if (pick(&rng, 4) == 0) r->logprobs = true, r->top_logprobs = pick(&rng, 4);
        if (pick(&rng, 5) == 0) r->stop = STOPS + pick(&rng, 3), r->n_stop = 1;
        if (pick(&rng, 8) == 0) r->json_schema = SCHEMA;
        else if (pick(&rng, 12) == 0) r->json_object = true;
        if (r->logprobs && pick(&rng, 4) == 0) r->prompt_logprobs = true;
        s->start[i] = pick(&rng, 3) ? pick(&rng, 30) : 0;
        s->cancel[i] = pick(&rng, 7) == 0 ? 1 + pick(&rng, 10) : 0;
        s->drop[i] = pick(&rng, 10) == 0 ? 1 + pick(&rng, 6) : 0; // often before its first token
    }
    // arrivals in order of their steps, as run() admits them
    for (int i = 1; i < s->n_req; i++)
        for (int j = i; j > 0 && s->start[j - 1] > s->start[j]; j--) {
            int t = s->start[j];
            s->start[j] = s->start[j - 1], s->start[j - 1] = t;
        }
}

static void describe(uint64_t seed, const scenario *s) {
    fprintf(stderr, "  seed %" PRIu64 ": %s kernels, %d slots, steps of %d, context %d, %s (max %d%s), %d requests\n",
            seed, s->batch.session.cpu_kernels ? s->batch.session.cpu_kernels : "auto", s->batch.n_slots,
            s->batch.step_tokens, s->batch.session.n_ctx,
            !s->max_draft ? "no drafts" : !s->draft ? "lookup" : s->draft == g_random ? "random draft model"
                                                                                       : "drafted by itself",
            s->max_draft, s->p_min > 0 ? ", p-min 0.3" : s->draft_ctx ? ", short draft context" : "", s->n_req);
}

static bn_batch *open_batch(const bn_batch_params *p, const scenario *s) {
    bn_batch *b;
    bn_error err;
    const bn_session_params dp = {.backend = "cpu", .n_threads = 2, .n_ctx = s ? s->draft_ctx : 0};
    if (bn_batch_create(g_engine, p, &b, &err)) fail_msg("%s", err.msg);
    if (s && s->max_draft &&
        (s->draft ? bn_batch_set_draft(b, s->draft, &dp, s->max_draft, s->p_min, &err)
                  : bn_batch_set_lookup(b, s->max_draft, &err)))
        fail_msg("%s", err.msg);
    return b;
}

// Runs n requests on b: request i joins at step start[i] or the first free slot
// after (in order), and is removed after cancel[i] events when that is set.
static void run(bn_batch *b, const bn_request *req, const int *start, const int *cancel, const int *drop, int n,
                outcome *out) {
    bn_error err;
    int done = 0, next = 0, slot[MAX_REQ], joined[MAX_REQ];
    memset(out, 0, sizeof *out * (size_t)n);
    for (int i = 0; i < n; i++) slot[i] = -1;
    for (int step = 0; done < n; step++) {
        if (step > 20000) fail_msg("%d of %d requests done after 20000 steps", done, n);
        while (next < n && start[next] <= step && bn_batch_n_free(b) > 0) {
            if ((slot[next] = bn_batch_add(b, &req[next], &err)) < 0) fail_msg("add: %s", err.msg);
            joined[next++] = step;
        }
        for (int i = 0; drop && i < next; i++)
            if (drop[i] && step == joined[i] + drop[i] && slot[i] >= 0) { // still there: not done nor cancelled
                bn_batch_remove(b, slot[i]);
                slot[i] = -1, done++;
            }
        const bn_batch_event *ev;
        int n_ev;
        if (bn_batch_step(b, &ev, &n_ev, &err)) fail_msg("step: %s", err.msg);
        assert_true(n_ev <= bn_batch_n_slots(b));
        for (int e = 0; e < n_ev; e++) {
            for (int f = 0; f < e; f++) assert_int_not_equal(ev[f].slot, ev[e].slot);
            outcome *o = &out[(intptr_t)ev[e].user];
            assert_false(o->done);
            assert_true(o->n < MAX_GEN && o->len + ev[e].len < sizeof o->text);
            if (ev[e].prompt_logprob && !o->n_prompt_logprob) {
                o->n_prompt_logprob = ev[e].n_prompt;
                memcpy(o->prompt_logprob, ev[e].prompt_logprob, sizeof(float) * (size_t)ev[e].n_prompt);
            }
            o->logprob[o->n] = ev[e].logprob;
            o->ids[o->n++] = ev[e].token;
            memcpy(o->text + o->len, ev[e].text, ev[e].len);
            o->len += ev[e].len;
            const int i = (int)(intptr_t)ev[e].user;
            if (ev[e].done || (cancel && cancel[i] && o->n == cancel[i])) {
                o->stop = ev[e].stop;
                o->done = ev[e].done;
                bn_batch_remove(b, ev[e].slot);
                slot[i] = -1, done++;
            }
        }
    }
    assert_int_equal(bn_batch_n_free(b), bn_batch_n_slots(b));
    assert_int_equal(bn_batch_n_active(b), 0);
}

// got equals want, or its start where got was cancelled before its end.
static void expect(const outcome *got, const outcome *want, bool cancelled, uint64_t seed, int i) {
    const int n = cancelled ? got->n : want->n;
    if (got->n != n || n > want->n || memcmp(got->ids, want->ids, sizeof got->ids[0] * (size_t)n) ||
        memcmp(got->logprob, want->logprob, sizeof got->logprob[0] * (size_t)n))
        fail_msg("seed %" PRIu64 ", request %d: %d tokens%s, %d alone, or other ids or logprobs", seed, i, got->n,
                 cancelled ? " before its cancel" : "", want->n);
    if (got->n_prompt_logprob != (n ? want->n_prompt_logprob : got->n_prompt_logprob) ||
        memcmp(got->prompt_logprob, want->prompt_logprob, sizeof(float) * (size_t)got->n_prompt_logprob))
        fail_msg("seed %" PRIu64 ", request %d: other prompt logprobs", seed, i);
    if (cancelled ? got->len > want->len || memcmp(got->text, want->text, got->len)
                  : got->len != want->len || memcmp(got->text, want->text, got->len) || got->stop != want->stop)
        fail_msg("seed %" PRIu64 ", request %d: \"%.*s\" (stop %d) in the scenario, \"%.*s\" (stop %d) alone", seed,
                 i, (int)got->len, got->text, got->stop, (int)want->len, want->text, want->stop);
}

static void test_random_schedules(void **state) {
    (void)state;
    uint64_t seed0;
    const int n = bn_random_scenarios(24, &seed0);
    static scenario s;
    static outcome alone[MAX_REQ], got[MAX_REQ];
    int cancels = 0, tokens = 0;
    for (uint64_t seed = seed0; seed < seed0 + (uint64_t)n; seed++) {
        draw(seed, &s);
        describe(seed, &s);
        bn_batch_params one = s.batch;
        one.n_slots = 1, one.step_tokens = 0;
        bn_batch *b = open_batch(&one, NULL);
        for (int i = 0; i < s.n_req; i++) {
            bn_request r = s.req[i];
            r.user = (void *)(intptr_t)0;
            r.no_prefix_cache = true;
            const int zero = 0;
            run(b, &r, &zero, NULL, NULL, 1, &alone[i]);
            assert_true(alone[i].done);
        }
        bn_batch_free(b);
        b = open_batch(&s.batch, &s);
        run(b, s.req, s.start, s.cancel, s.drop, s.n_req, got);
        const bn_lookup_stats st = bn_batch_lookup_stats(b);
        assert_true(st.accepted <= st.drafted);
        bn_batch_free(b);
        for (int i = 0; i < s.n_req; i++) {
            const bool cancelled = !got[i].done;
            expect(&got[i], &alone[i], cancelled, seed, i);
            cancels += cancelled, tokens += got[i].n;
        }
    }
    fprintf(stderr, "  %d scenarios, %d tokens, %d requests cancelled: each as alone\n", n, tokens, cancels);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_random_schedules)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
