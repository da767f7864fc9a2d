// test_lookup.c - prompt lookup decoding (core/lookup.c, bn_session_set_lookup).
//
// The drafts: which occurrence and which n-gram a draft comes from, a loop
// drafted through its own end, the caps, and how the draft length follows hits
// and misses.
//
// The generations: lookup feeds a draft with the pending token in one forward
// pass and samples from that pass's rows, so it must give exactly the tokens of
// one step at a time, and the same log-probabilities, on the model that ships
// with the project (models/), with every CPU kernel set this CPU has and the
// reference backend, for greedy and sampled decoding (penalties, banned
// tokens), with logprobs, with a JSON Schema, at the end of the context, at
// every n_predict up to a few tokens past a draft, and over two calls of one
// session. Each comparison is with the same session parameters and lookup off,
// a path that test_trained_model and test_parity hold to independent
// references; test_trained_model also holds lookup's own text to the trained
// model's PyTorch reference. The prompts repeat themselves, so drafts are both
// taken and refused (checked from the statistics).
//
// The batch (bn_batch_set_lookup): requests of every kind, admitted at
// different steps (drafts beside prompt chunks too), many slots
// sharing the 64 rows ahead, small steps, the context's end, max_tokens, a
// request cancelled while it holds rows ahead: each request's tokens, text,
// stop and logprobs equal those of the same batch without lookup, one event
// per slot and step.
#include "test_util.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "backend.h"
#include "bitnet.h"
#include "cpu_features.h"
#include "devtools.h"
#include "kernels.h"
#include "lookup.h"

#define MAX_GEN 160

#define AUSTEN "It is a truth universally acknowledged, that a single man"
// The first: the shipped model's own greedy continuation of AUSTEN, then AUSTEN
// again, so that lookup drafts from the first step on.
static const char *const PROMPTS[] = {
    (AUSTEN " can be so much more than to be in the world. I am sure I " AUSTEN),
    (AUSTEN " in possession of a good fortune, must be in want of a wife. " AUSTEN),
    "Elizabeth said to her sister, and her sister said to Elizabeth, that",
    "The",
};
#define N_PROMPTS (sizeof PROMPTS / sizeof PROMPTS[0])

// ---- drafts ------------------------------------------------------------------

static void expect_draft(const int32_t *hist, int n, int max_draft, const int32_t *want, int n_want) {
    int32_t draft[BN_LOOKUP_MAX];
    assert_int_equal(bn_lookup_draft(hist, n, max_draft, draft), n_want);
    for (int i = 0; i < n_want; i++) assert_int_equal(draft[i], want[i]);
}

static void test_draft_prefers_longest_ngram(void **state) {
    (void)state;
    // The 4-gram 1 2 3 4 came before 50 51; the 2-gram 3 4, more recently, before 60.
    const int32_t hist[] = {1, 2, 3, 4, 50, 51, 9, 3, 4, 60, 61, 7, 1, 2, 3, 4};
    expect_draft(hist, 16, 3, (const int32_t[]){50, 51, 9}, 3);
    // Without the 4-gram's first token, the 3-gram 2 3 4 still leads to 50.
    const int32_t hist3[] = {2, 3, 4, 50, 51, 9, 3, 4, 60, 61, 7, 2, 3, 4};
    expect_draft(hist3, 14, 2, (const int32_t[]){50, 51}, 2);
    // Only the 2-gram: its most recent occurrence.
    const int32_t hist2[] = {3, 4, 50, 8, 3, 4, 60, 61, 7, 3, 4};
    expect_draft(hist2, 11, 2, (const int32_t[]){60, 61}, 2);
}

static void test_draft_most_recent_and_loops(void **state) {
    (void)state;
    // 5 6 last came before 80; the continuation reaches the end of the history
    // (80 5 6) and goes on with the draft itself.
    const int32_t hist[] = {5, 6, 70, 5, 6, 80, 5, 6};
    expect_draft(hist, 8, 7, (const int32_t[]){80, 5, 6, 80, 5, 6, 80}, 7);
    // A token repeated: the 2-gram x x drafts x for as long as asked.
    const int32_t same[] = {1, 9, 9, 9};
    expect_draft(same, 4, 5, (const int32_t[]){9, 9, 9, 9, 9}, 5);
}

static void test_draft_none(void **state) {
    (void)state;
    int32_t draft[BN_LOOKUP_MAX];
    const int32_t fresh[] = {1, 2, 3, 4, 5, 6};
    assert_int_equal(bn_lookup_draft(fresh, 6, 8, draft), 0);
    // One token seen before is not enough: the shortest n-gram is 2.
    const int32_t one[] = {1, 2, 3, 1};
    assert_int_equal(bn_lookup_draft(one, 4, 8, draft), 0);
    // Too short a history, or nothing asked for.
    assert_int_equal(bn_lookup_draft(one, 1, 8, draft), 0);
    assert_int_equal(bn_lookup_draft(one, 0, 8, draft), 0);
    const int32_t rep[] = {1, 2, 1, 2};
    assert_int_equal(bn_lookup_draft(rep, 4, 0, draft), 0);
    // The cap: BN_LOOKUP_MAX at most, whatever is asked.
    assert_int_equal(bn_lookup_draft(rep, 4, 1000, draft), BN_LOOKUP_MAX);
    for (int i = 0; i < BN_LOOKUP_MAX; i++) assert_int_equal(draft[i], 1 + i % 2);
}

static void test_next_len(void **state) {
    (void)state;
    assert_int_equal(bn_lookup_next_len(4, 8, 4, 4), 8);  // all taken: doubled
    assert_int_equal(bn_lookup_next_len(8, 8, 8, 8), 8);  // up to the cap
    assert_int_equal(bn_lookup_next_len(3, 8, 3, 3), 6);
    assert_int_equal(bn_lookup_next_len(8, 8, 8, 2), 3);  // cut at the 3rd: 3 next
    assert_int_equal(bn_lookup_next_len(8, 8, 8, 0), 1);  // none taken: 1
    assert_int_equal(bn_lookup_next_len(1, 1, 1, 1), 1);
    assert_int_equal(bn_lookup_next_len(2, 8, 1, 1), 4);  // a draft shortened by the text's end, all taken
}

// ---- generations ---------------------------------------------------------------

static bn_engine *g_engine;
static char g_random_path[64]; // open_random_draft's model
static bn_engine *g_random;

static int setup(void **state) {
    (void)state;
    return (g_engine = bn_shipped_engine()) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    bn_engine_free(g_engine);
    bn_engine_free(g_random);
    if (g_random_path[0]) remove(g_random_path);
    return 0;
}

typedef struct run {
    int32_t ids[MAX_GEN];
    float logprob[MAX_GEN];
    bn_token_logprob top[MAX_GEN][5];
    int n_top[MAX_GEN];
    int n;
    const bn_session *s;
    bool logprobs;
    bn_timings t;
    bn_lookup_stats stats;
} run;

static int on_token(void *user, int32_t id, const char *text, size_t len) {
    (void)text, (void)len;
    run *r = user;
    if (id < 0) return 0;
    assert_true(r->n < MAX_GEN);
    if (r->logprobs) {
        const bn_token_logprob *top;
        r->n_top[r->n] = bn_session_token_logprobs(r->s, &r->logprob[r->n], &top);
        assert_in_range(r->n_top[r->n], 0, 5);
        memcpy(r->top[r->n], top, sizeof *top * (size_t)r->n_top[r->n]);
    }
    r->ids[r->n++] = id;
    return 0;
}

typedef struct config {
    const char *name;
    bn_sampling sampling;
    int n_ctx;          // 0: the model's
    int logprobs;       // -1: off
    const char *schema; // NULL: none
} config;

// A draft model (bn_session_set_draft) instead of prompt lookup.
typedef struct drafter {
    bn_engine *engine;
    float p_min;
    int n_ctx; // 0: the main session's
} drafter;

// One session per run: prompt p, n_predict tokens, max_draft tokens a pass (0:
// off) drafted by lookup, or by d's model where d is not NULL.
static void generate_with(const char *backend, const char *kernels, const config *c, const char *prompt,
                          int n_predict, int max_draft, const drafter *d, run *out) {
    bn_session_params sp = {.backend = backend, .n_threads = 2, .n_ctx = c->n_ctx, .cpu_kernels = kernels};
    bn_session_params dp = {.backend = backend, .n_threads = 2, .n_ctx = d && d->n_ctx ? d->n_ctx : c->n_ctx,
                            .cpu_kernels = kernels};
    bn_session *s = NULL, *ds = NULL;
    bn_error err;
    int32_t *ids = NULL;
    size_t n = 0;
    memset(out, 0, sizeof *out);
    if (bn_session_create(g_engine, &sp, &s, &err) ||
        (d ? bn_session_create(d->engine, &dp, &ds, &err) || bn_session_set_draft(s, ds, max_draft, d->p_min, &err)
           : bn_session_set_lookup(s, max_draft, &err)) ||
        (c->logprobs >= 0 && bn_session_set_logprobs(s, c->logprobs, &err)) ||
        (c->schema && bn_session_set_json_schema(s, c->schema, &err)) ||
        bn_engine_tokenize(g_engine, prompt, true, false, &ids, &n, &err))
        fail_msg("%s/%s %s: %s", backend, kernels ? kernels : "-", c->name, err.msg);
    out->s = s;
    out->logprobs = c->logprobs >= 0;
    if (bn_session_generate(s, ids, n, n_predict, &c->sampling, on_token, out, &out->t, &err))
        fail_msg("%s: %s", c->name, err.msg);
    out->stats = bn_session_lookup_stats(s);
    free(ids);
    bn_session_free(s);
    bn_session_free(ds);
}

static void generate(const char *backend, const char *kernels, const config *c, const char *prompt, int n_predict,
                     int max_draft, run *out) {
    generate_with(backend, kernels, c, prompt, n_predict, max_draft, NULL, out);
}

static void expect_same(const run *a, const run *b, const char *what) {
    if (a->n != b->n || a->t.n_gen != b->t.n_gen || a->t.stop != b->t.stop)
        fail_msg("%s: %d tokens (n_gen %d, stop %s) with lookup, %d (n_gen %d, stop %s) without", what, b->n,
                 b->t.n_gen, bn_stop_name(b->t.stop), a->n, a->t.n_gen, bn_stop_name(a->t.stop));
    for (int i = 0; i < a->n; i++) {
        if (a->ids[i] != b->ids[i])
            fail_msg("%s: token %d is %d with lookup, %d without", what, i, b->ids[i], a->ids[i]);
        if (!a->logprobs) continue;
        // bit for bit: the same row, read by the same code
        if (memcmp(&a->logprob[i], &b->logprob[i], sizeof a->logprob[i]) || a->n_top[i] != b->n_top[i] ||
            memcmp(a->top[i], b->top[i], sizeof a->top[i][0] * (size_t)a->n_top[i]))
            fail_msg("%s: token %d's logprobs differ with lookup", what, i);
    }
    assert_true(b->stats.accepted <= b->stats.drafted);
    assert_true(b->stats.passes <= (uint64_t)b->t.n_gen);
}

static bn_sampling sampled(float temp, uint64_t seed) {
    bn_sampling s = bn_sampling_default();
    s.temperature = temp;
    s.seed = seed;
    return s;
}

// Each config and each of the first n_prompts prompts without a draft, then
// with each count of drafts (by lookup, or by dm's model).
static void check_drafts(const char *backend, const char *kernels, const config *configs, size_t n_configs,
                         size_t n_prompts, int n_predict, const int *drafts, const drafter *dm,
                         bn_lookup_stats *total) {
    run plain, with;
    char what[256];
    for (size_t c = 0; c < n_configs; c++)
        for (size_t p = 0; p < n_prompts; p++) {
            generate(backend, kernels, &configs[c], PROMPTS[p], n_predict, 0, &plain);
            for (const int *d = drafts; *d; d++) {
                generate_with(backend, kernels, &configs[c], PROMPTS[p], n_predict, *d, dm, &with);
                snprintf(what, sizeof what, "%s/%s %s, prompt %zu, %s %d", backend, kernels ? kernels : "-",
                         configs[c].name, p, dm ? "draft model" : "lookup", *d);
                expect_same(&plain, &with, what);
                total->drafted += with.stats.drafted;
                total->accepted += with.stats.accepted;
                total->passes += with.stats.passes;
            }
        }
}

static void check_configs(const char *backend, const char *kernels, const config *configs, size_t n_configs,
                          int n_predict, const int *drafts, bn_lookup_stats *total) {
    check_drafts(backend, kernels, configs, n_configs, N_PROMPTS, n_predict, drafts, NULL, total);
}

static const int DRAFTS[] = {1, 8, 32, 0};

// The sampler's paths: greedy, sampled, sampled without truncation, and with
// penalties and logit biases (a ban among them), into c[0..N_SAMPLER_PATHS).
#define N_SAMPLER_PATHS 4
static void sampler_paths(config *c) {
    static bn_logit_bias ban[] = {{.token = 11, .bias = -INFINITY}, {.token = 13, .bias = 2.5f}};
    c[0] = (config){.name = "greedy", .sampling = bn_sampling_greedy(), .logprobs = -1};
    c[1] = (config){.name = "temp 0.8", .sampling = sampled(0.8f, 3), .logprobs = -1};
    c[2] = (config){.name = "temp 1.2, no truncation", .sampling = sampled(1.2f, 5), .logprobs = -1};
    c[3] = (config){.name = "penalties and biases", .sampling = sampled(0.7f, 7), .logprobs = -1};
    c[2].sampling.top_k = 0, c[2].sampling.top_p = 1, c[2].sampling.min_p = 0;
    c[3].sampling.repeat_penalty = 1.3f, c[3].sampling.frequency_penalty = 0.5f;
    c[3].sampling.presence_penalty = 0.3f;
    c[3].sampling.logit_bias = ban, c[3].sampling.n_logit_bias = 2;
}

// Every sampler path, on every CPU kernel set this CPU has and the reference backend.
static void test_same_tokens(void **state) {
    (void)state;
    config configs[N_SAMPLER_PATHS + 2];
    sampler_paths(configs);
    configs[N_SAMPLER_PATHS] =
        (config){.name = "greedy with logprobs", .sampling = bn_sampling_greedy(), .logprobs = 5};
    configs[N_SAMPLER_PATHS + 1] =
        (config){.name = "sampled with logprobs", .sampling = sampled(0.9f, 11), .logprobs = 3};
    bn_lookup_stats total = {0};
    for (size_t k = 0; bn_cpu_kernel_sets[k]; k++) {
        const bn_cpu_kernels *kern;
        bn_error err;
        if (bn_cpu_kernels_select(bn_cpu_kernel_sets[k], &kern, &err)) {
            fprintf(stderr, "  %s: not run here: %s\n", bn_cpu_kernel_sets[k], err.msg);
            continue;
        }
        bn_lookup_stats one = {0};
        check_configs("cpu", bn_cpu_kernel_sets[k], configs, sizeof configs / sizeof configs[0], 64, DRAFTS, &one);
        fprintf(stderr, "  cpu/%s: the same tokens; %" PRIu64 " drafted in %" PRIu64 " passes, %" PRIu64 " taken\n",
                bn_cpu_kernel_sets[k],
                one.drafted, one.passes, one.accepted);
        total.drafted += one.drafted, total.accepted += one.accepted, total.passes += one.passes;
    }
    check_configs("reference", NULL, configs, 2, 48, (const int[]){8, 0}, &total);
    // Both ways through lookup_step: drafts taken, and drafts refused.
    assert_true(total.accepted > 0);
    assert_true(total.drafted > total.accepted);
}

// A reply held to a JSON Schema: the mask reads the state the taken tokens left.
static void test_same_tokens_json_schema(void **state) {
    (void)state;
    const config c[] = {{.name = "json schema", .sampling = bn_sampling_greedy(), .logprobs = -1,
                         .schema = "{\"type\": \"object\", \"properties\": {\"name\": {\"type\": \"string\"}, "
                                   "\"names\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}}}}"},
                        {.name = "json schema, sampled", .sampling = sampled(1.0f, 2), .logprobs = 2,
                         .schema = "{\"type\": \"array\", \"items\": {\"enum\": [\"Elizabeth\", \"Jane\"]}}"}};
    bn_lookup_stats total = {0};
    check_configs("cpu", NULL, c, 2, 80, DRAFTS, &total);
}

// The context's end: drafts stop short of it, and the generation stops where it
// stops without lookup (BN_STOP_CONTEXT).
static void test_context_end(void **state) {
    (void)state;
    int32_t *ids;
    size_t n;
    bn_error err;
    assert_int_equal(bn_engine_tokenize(g_engine, PROMPTS[0], true, false, &ids, &n, &err), 0);
    free(ids);
    run plain, with;
    for (int room = 1; room <= 12; room++) {
        const config c = {.name = "context end", .sampling = bn_sampling_greedy(), .logprobs = -1,
                          .n_ctx = (int)n + room};
        generate("cpu", NULL, &c, PROMPTS[0], 100, 0, &plain);
        generate("cpu", NULL, &c, PROMPTS[0], 100, 8, &with);
        assert_int_equal(plain.t.stop, BN_STOP_CONTEXT);
        expect_same(&plain, &with, "context end");
    }
}

// n_predict at every count around a draft's end: a pass never drafts more
// tokens than are left after the one it samples (the step making token i + 2
// drafts n - i - 2 at most, so a call drafts (n - 2)(n - 1) / 2 at most; the
// prompt drafts from the first step).
static void test_n_predict(void **state) {
    (void)state;
    const config c = {.name = "n_predict", .sampling = bn_sampling_greedy(), .logprobs = -1};
    run plain, with;
    uint64_t drafted = 0;
    for (int n = 1; n <= 40; n++) {
        generate("cpu", NULL, &c, PROMPTS[0], n, 8, &with);
        generate("cpu", NULL, &c, PROMPTS[0], n, 0, &plain);
        assert_int_equal(with.t.n_gen, n);
        expect_same(&plain, &with, "n_predict");
        assert_true(with.stats.drafted <= (uint64_t)(n > 2 ? (n - 2) * (n - 1) / 2 : 0));
        drafted += with.stats.drafted;
    }
    assert_true(drafted > 0);
}

// Two generate calls on one session (a chat's turns): the second starts with
// the first's pending token and a new prompt, and no row of the first's passes.
static void test_two_calls(void **state) {
    (void)state;
    int32_t got[2][2 * MAX_GEN];
    int n_got[2] = {0, 0};
    const bn_sampling greedy = bn_sampling_greedy();
    for (int lookup = 0; lookup < 2; lookup++) {
        bn_session_params sp = {.backend = "cpu", .n_threads = 2};
        bn_session *s;
        bn_error err;
        assert_int_equal(bn_session_create(g_engine, &sp, &s, &err), 0);
        assert_int_equal(bn_session_set_lookup(s, lookup ? 6 : 0, &err), 0);
        for (int call = 0; call < 2; call++) {
            int32_t *ids;
            size_t n;
            assert_int_equal(bn_engine_tokenize(g_engine, PROMPTS[call], call == 0, false, &ids, &n, &err), 0);
            run r = {.n = 0};
            assert_int_equal(bn_session_generate(s, ids, n, 60, &greedy, on_token, &r, NULL, &err), 0);
            memcpy(got[lookup] + n_got[lookup], r.ids, sizeof r.ids[0] * (size_t)r.n);
            n_got[lookup] += r.n;
            free(ids);
        }
        bn_session_free(s);
    }
    assert_int_equal(n_got[0], n_got[1]);
    assert_memory_equal(got[0], got[1], sizeof got[0][0] * (size_t)n_got[0]);
}

static void test_refuses_out_of_range(void **state) {
    (void)state;
    bn_session_params sp = {.backend = "cpu", .n_threads = 1};
    bn_session *s;
    bn_error err;
    assert_int_equal(bn_session_create(g_engine, &sp, &s, &err), 0);
    assert_int_equal(bn_session_set_lookup(s, -1, &err), -1);
    assert_non_null(strstr(err.msg, "0..32"));
    assert_int_equal(bn_session_set_lookup(s, BN_LOOKUP_MAX + 1, &err), -1);
    assert_int_equal(bn_session_set_lookup(s, BN_LOOKUP_MAX, &err), 0);
    assert_int_equal(bn_session_set_lookup(s, 0, &err), 0);
    bn_session_free(s);
}

// ---- a draft model (bn_session_set_draft) ----------------------------------------

// A random model with the shipped model's vocabulary (make-model --vocab): its
// drafts are mostly refused. The shipped model drafting for itself: its greedy
// drafts are all taken (the same arithmetic, a step's row bit for bit a pass's).
static void open_random_draft(void) {
    if (g_random) return;
    char shipped[4096];
    bn_synth_config cfg;
    bn_error err;
    assert_int_equal(bn_synth_preset("tiny", &cfg, &err), 0);
    cfg.vocab_path = bn_shipped_path("models/bitnet-austen-6m.gguf", shipped, sizeof shipped);
    cfg.seed = 3;
    bn_tmp_path(g_random_path, sizeof g_random_path, "draft");
    if (bn_synth_model_write(&cfg, g_random_path, &err) || bn_engine_load(g_random_path, NULL, &g_random, &err))
        fail_msg("%s", err.msg);
}

// The first two prompts (which repeat themselves) with drafter d.
static void check_drafter(const char *kernels, const config *configs, size_t n_configs, const int *counts,
                          const char *name, const drafter *d, bool mostly_refused) {
    bn_lookup_stats st = {0};
    check_drafts("cpu", kernels, configs, n_configs, 2, 40, counts, d, &st);
    fprintf(stderr, "  cpu/%s, drafted by %s: the same tokens; %" PRIu64 " drafted in %" PRIu64 " passes, %" PRIu64
                    " taken\n",
            kernels ? kernels : "auto", name, st.drafted, st.passes, st.accepted);
    assert_true(st.drafted > 0);
    assert_true(mostly_refused ? st.accepted < st.drafted / 2 : st.accepted > 0);
}

static void test_draft_model_same_tokens(void **state) {
    (void)state;
    open_random_draft();
    config configs[] = {
        {.name = "greedy", .sampling = bn_sampling_greedy(), .logprobs = -1},
        {.name = "temp 0.8", .sampling = sampled(0.8f, 3), .logprobs = -1},
        {.name = "penalties, with logprobs", .sampling = sampled(0.7f, 7), .logprobs = 3},
        {.name = "json schema", .sampling = bn_sampling_greedy(), .logprobs = -1,
         .schema = "{\"type\": \"array\", \"items\": {\"enum\": [\"Elizabeth\", \"Jane\"]}}"},
    };
    configs[2].sampling.repeat_penalty = 1.3f, configs[2].sampling.presence_penalty = 0.3f;
    const drafter self = {.engine = g_engine}, self_p = {.engine = g_engine, .p_min = 0.3f},
                 other = {.engine = g_random}, short_ctx = {.engine = g_engine, .n_ctx = 64};
    const struct {
        const char *name;
        const drafter *d;
    } drafters[] = {{"itself", &self}, {"itself, p_min 0.3", &self_p}, {"a random model", &other},
                    {"itself, in a 64-token context", &short_ctx}};
    // Every drafter and config on the kernel set auto picks (the longest and
    // shortest drafts for the model drafting for itself); on each set (whose
    // pass rows test_same_tokens holds to its steps), sampled, with the model
    // drafting for itself.
    for (size_t d = 0; d < sizeof drafters / sizeof drafters[0]; d++)
        check_drafter(NULL, configs, sizeof configs / sizeof configs[0],
                      d == 0 ? (const int[]){1, 32, 0} : (const int[]){8, 0}, drafters[d].name, drafters[d].d,
                      drafters[d].d == &other);
    for (size_t k = 0; bn_cpu_kernel_sets[k]; k++) {
        const bn_cpu_kernels *kern;
        bn_error err;
        if (bn_cpu_kernels_select(bn_cpu_kernel_sets[k], &kern, &err) == 0)
            check_drafter(bn_cpu_kernel_sets[k], configs + 1, 1, (const int[]){8, 0}, "itself", &self, false);
    }
}

// The model drafting for itself without p_min: every draft is taken, greedy or
// sampled (the draft samples with a copy of the sampler, its random state
// included, so it draws what the main model will), and a pass drafts as many
// as are left to make, so the passes are few.
static void test_draft_model_itself_all_taken(void **state) {
    (void)state;
    config configs[N_SAMPLER_PATHS];
    sampler_paths(configs);
    const drafter self = {.engine = g_engine};
    run plain, with;
    int whole = 0; // generations of all 64 tokens
    for (size_t c = 0; c < sizeof configs / sizeof configs[0]; c++)
        for (size_t p = 0; p < N_PROMPTS; p++) {
            generate("cpu", NULL, &configs[c], PROMPTS[p], 64, 0, &plain);
            generate_with("cpu", NULL, &configs[c], PROMPTS[p], 64, 16, &self, &with);
            expect_same(&plain, &with, configs[c].name);
            if (plain.t.stop != BN_STOP_LENGTH) continue; // an end of turn cuts a draft short
            whole++;
            assert_int_equal(with.stats.accepted, with.stats.drafted);
            // 63 tokens after the prefill's, each from a pass's first row or a draft's
            assert_int_equal(with.stats.drafted + with.stats.passes, 63);
            assert_int_equal(with.stats.passes, 4); // 17 tokens a pass, the last one's draft cut to the 11 left
        }
    assert_true(whole >= 8);
}

// A chat's turns: the draft session follows the history through a second
// prompt, its cache cut back to what it shares with it.
static void test_draft_model_two_calls(void **state) {
    (void)state;
    open_random_draft();
    int32_t got[3][2 * MAX_GEN];
    int n_got[3] = {0, 0, 0};
    uint64_t drafted[3] = {0, 0, 0};
    bn_engine *drafts[3] = {NULL, g_engine, g_random};
    for (int v = 0; v < 3; v++) {
        bn_session_params sp = {.backend = "cpu", .n_threads = 2};
        bn_session *s, *ds = NULL;
        bn_error err;
        assert_int_equal(bn_session_create(g_engine, &sp, &s, &err), 0);
        if (drafts[v]) {
            assert_int_equal(bn_session_create(drafts[v], &sp, &ds, &err), 0);
            assert_int_equal(bn_session_set_draft(s, ds, 6, 0.f, &err), 0);
        }
        for (int call = 0; call < 2; call++) {
            int32_t *ids;
            size_t n;
            assert_int_equal(bn_engine_tokenize(g_engine, PROMPTS[call], call == 0, false, &ids, &n, &err), 0);
            run r = {.n = 0};
            const bn_sampling smp = sampled(0.9f, 5 + (uint64_t)call);
            assert_int_equal(bn_session_generate(s, ids, n, 60, &smp, on_token, &r, NULL, &err), 0);
            memcpy(got[v] + n_got[v], r.ids, sizeof r.ids[0] * (size_t)r.n);
            n_got[v] += r.n;
            drafted[v] += bn_session_lookup_stats(s).drafted;
            free(ids);
        }
        bn_session_free(s);
        bn_session_free(ds);
    }
    for (int v = 1; v < 3; v++) {
        assert_true(drafted[v] > 0);
        assert_int_equal(n_got[0], n_got[v]);
        assert_memory_equal(got[0], got[v], sizeof got[0][0] * (size_t)n_got[0]);
    }
}

static void test_draft_model_refused(void **state) {
    (void)state;
    open_random_draft();
    bn_synth_config cfg;
    bn_error err;
    char path[64];
    bn_engine *builtin = NULL;
    assert_int_equal(bn_synth_preset("tiny", &cfg, &err), 0); // the built-in vocabulary
    bn_tmp_path(path, sizeof path, "draft_vocab");
    if (bn_synth_model_write(&cfg, path, &err) || bn_engine_load(path, NULL, &builtin, &err)) fail_msg("%s", err.msg);
    remove(path);
    bn_session_params sp = {.backend = "cpu", .n_threads = 1};
    bn_session *s, *other, *wrong;
    assert_int_equal(bn_session_create(g_engine, &sp, &s, &err), 0);
    assert_int_equal(bn_session_create(g_random, &sp, &other, &err), 0);
    assert_int_equal(bn_session_create(builtin, &sp, &wrong, &err), 0);
    assert_int_equal(bn_session_set_draft(s, wrong, 8, 0.5f, &err), -1);
    assert_non_null(strstr(err.msg, "vocabularies differ"));
    assert_int_equal(bn_session_set_draft(s, s, 8, 0.5f, &err), -1);
    assert_int_equal(bn_session_set_draft(s, other, BN_LOOKUP_MAX + 1, 0.5f, &err), -1);
    assert_int_equal(bn_session_set_draft(s, other, -1, 0.5f, &err), -1);
    assert_int_equal(bn_session_set_draft(s, other, 8, 1.5f, &err), -1);
    assert_int_equal(bn_session_set_draft(s, other, 8, NAN, &err), -1);
    assert_int_equal(bn_session_set_draft(s, other, 8, 0.5f, &err), 0);
    assert_int_equal(bn_session_set_draft(s, NULL, 8, 0.5f, &err), 0); // off
    bn_session_free(wrong);
    bn_session_free(other);
    bn_session_free(s);
    bn_engine_free(builtin);
}

// ---- the batch -------------------------------------------------------------------

typedef struct outcome {
    int32_t ids[MAX_GEN];
    float logprob[MAX_GEN];
    int n;
    char text[4096];
    size_t len;
    bn_stop stop;
    int n_gen;
} outcome;

// Runs requests on batch b until all are done, request i admitted not before
// step start[i]; request `cancel` (-1: none) is removed after its 10th token.
static void run_on(bn_batch *b, const bn_request *req, const int *start, int n, int cancel, outcome *out) {
    bn_error err;
    memset(out, 0, sizeof *out * (size_t)n);
    int done = 0, next = 0;
    for (int step = 0; done < n && step < 5000; step++) {
        while (next < n && start[next] <= step && bn_batch_n_free(b) > 0)
            if (bn_batch_add(b, &req[next++], &err) < 0) fail_msg("add: %s", err.msg);
        const bn_batch_event *ev;
        int n_ev;
        if (bn_batch_step(b, &ev, &n_ev, &err)) fail_msg("step: %s", err.msg);
        assert_true(n_ev <= bn_batch_n_slots(b));
        for (int e = 0; e < n_ev; e++) {
            for (int f = 0; f < e; f++) assert_int_not_equal(ev[f].slot, ev[e].slot); // one event a slot
            const int i = (int)(intptr_t)ev[e].user;
            outcome *o = &out[i];
            assert_true(o->n < MAX_GEN && o->len + ev[e].len < sizeof o->text);
            o->logprob[o->n] = ev[e].logprob;
            o->ids[o->n++] = ev[e].token;
            memcpy(o->text + o->len, ev[e].text, ev[e].len);
            o->len += ev[e].len;
            o->n_gen = ev[e].n_gen;
            if (ev[e].done || (i == cancel && o->n == 10)) {
                o->stop = ev[e].stop;
                bn_batch_remove(b, ev[e].slot);
                done++;
            }
        }
    }
    assert_int_equal(done, n);
}

// A batch drafting max_draft tokens a pass by lookup, or by d's model.
static bn_batch *open_batch_with(int n_slots, int step_tokens, int n_ctx, int max_draft, const drafter *d) {
    bn_batch_params p = {.session = {.backend = "cpu", .n_threads = 2, .n_ctx = n_ctx}, .n_slots = n_slots,
                         .step_tokens = step_tokens};
    bn_batch *b;
    bn_error err;
    const bn_session_params dp = {.backend = "cpu", .n_threads = 2, .n_ctx = d ? d->n_ctx : 0};
    if (bn_batch_create(g_engine, &p, &b, &err) ||
        (d ? bn_batch_set_draft(b, d->engine, &dp, max_draft, d->p_min, &err)
           : bn_batch_set_lookup(b, max_draft, &err)))
        fail_msg("%s", err.msg);
    return b;
}

static bn_batch *open_batch(int n_slots, int step_tokens, int n_ctx, int max_draft) {
    return open_batch_with(n_slots, step_tokens, n_ctx, max_draft, NULL);
}

// run_on a batch of its own; returns its lookup statistics.
static bn_lookup_stats run_batch(int n_slots, int step_tokens, int n_ctx, int max_draft, const drafter *d,
                                 const bn_request *req, const int *start, int n, int cancel, outcome *out) {
    bn_batch *b = open_batch_with(n_slots, step_tokens, n_ctx, max_draft, d);
    run_on(b, req, start, n, cancel, out);
    const bn_lookup_stats st = bn_batch_lookup_stats(b);
    bn_batch_free(b);
    return st;
}

static void expect_same_outcomes(const outcome *a, const outcome *b, int n, const char *what) {
    for (int i = 0; i < n; i++) {
        if (a[i].n != b[i].n || memcmp(a[i].ids, b[i].ids, sizeof a[i].ids[0] * (size_t)a[i].n))
            fail_msg("%s, request %d: %d tokens with lookup, %d without, or other ids", what, i, b[i].n, a[i].n);
        if (memcmp(a[i].logprob, b[i].logprob, sizeof a[i].logprob[0] * (size_t)a[i].n))
            fail_msg("%s, request %d: logprobs differ with lookup", what, i);
        if (a[i].len != b[i].len || memcmp(a[i].text, b[i].text, a[i].len))
            fail_msg("%s, request %d: text \"%.*s\" with lookup, \"%.*s\" without", what, i, (int)b[i].len,
                     b[i].text, (int)a[i].len, a[i].text);
        assert_int_equal(a[i].stop, b[i].stop);
        assert_int_equal(a[i].n_gen, b[i].n_gen);
    }
}

typedef struct requests {
    bn_request req[16];
    int start[16];
    int n;
    int32_t *ids[N_PROMPTS];
    size_t n_ids[N_PROMPTS];
} requests;

static const char *const STOPS[] = {"Elizabeth, that"};

// Request i: prompt i % N_PROMPTS; every kind of request in turn.
static void make_requests(requests *r, int n, int max_tokens, const int *start) {
    bn_error err;
    for (size_t p = 0; p < N_PROMPTS; p++)
        if (bn_engine_tokenize(g_engine, PROMPTS[p], true, false, &r->ids[p], &r->n_ids[p], &err))
            fail_msg("%s", err.msg);
    r->n = n;
    for (int i = 0; i < n; i++) {
        bn_request *q = &r->req[i];
        *q = (bn_request){.prompt = r->ids[i % N_PROMPTS], .n_prompt = r->n_ids[i % N_PROMPTS],
                          .max_tokens = max_tokens, .sampling = bn_sampling_greedy(), .user = (void *)(intptr_t)i};
        switch (i % 6) {
        case 1: q->sampling = sampled(0.8f, 100 + (uint64_t)i); break;
        case 2: q->logprobs = true, q->top_logprobs = 3; break;
        case 3: q->sampling = sampled(1.0f, 7), q->logprobs = true, q->top_logprobs = 0; break;
        case 4: q->json_schema = "{\"type\": \"array\", \"items\": {\"enum\": [\"Elizabeth\", \"Jane\"]}}"; break;
        case 5: q->stop = STOPS, q->n_stop = 1; break;
        default: break;
        }
        r->start[i] = start ? start[i] : 0;
    }
}

static void free_requests(requests *r) {
    for (size_t p = 0; p < N_PROMPTS; p++) free(r->ids[p]);
}

// The requests without drafts, then drafted by lookup (d NULL) or by d's model.
static void check_batch_with(const char *what, int n_slots, int step_tokens, int n_ctx, int max_draft,
                             const drafter *d, requests *r, int cancel, bn_lookup_stats *total) {
    static outcome plain[16], with[16];
    run_batch(n_slots, step_tokens, n_ctx, 0, NULL, r->req, r->start, r->n, cancel, plain);
    const bn_lookup_stats st =
        run_batch(n_slots, step_tokens, n_ctx, max_draft, d, r->req, r->start, r->n, cancel, with);
    expect_same_outcomes(plain, with, r->n, what);
    fprintf(stderr, "  batch, %s: the same tokens; %" PRIu64 " drafted in %" PRIu64 " passes, %" PRIu64 " taken\n",
            what, st.drafted, st.passes, st.accepted);
    assert_true(st.accepted <= st.drafted);
    total->drafted += st.drafted, total->accepted += st.accepted, total->passes += st.passes;
}

static void check_batch(const char *what, int n_slots, int step_tokens, int n_ctx, int max_draft, requests *r,
                        int cancel, bn_lookup_stats *total) {
    check_batch_with(what, n_slots, step_tokens, n_ctx, max_draft, NULL, r, cancel, total);
}

static void test_batch_same_tokens(void **state) {
    (void)state;
    requests r;
    bn_lookup_stats total = {0};
    static const int staggered[12] = {0, 0, 3, 3, 9, 20, 21, 40, 41, 42, 60, 90};
    make_requests(&r, 12, 96, staggered);
    check_batch("4 slots, staggered", 4, 512, 0, 8, &r, -1, &total);
    check_batch("12 slots, 32 drafted, rows shared", 12, 512, 0, 32, &r, -1, &total);
    check_batch("3 slots, 8-token steps", 3, 8, 0, 8, &r, -1, &total);
    check_batch("4 slots, a cancel", 4, 512, 0, 8, &r, 4, &total);
    free_requests(&r);
    make_requests(&r, 6, 0, NULL); // until the context is full
    check_batch("context end", 6, 512, 56, 8, &r, -1, &total);
    free_requests(&r);
    bn_lookup_stats short_ones = {0};
    for (int max_tokens = 1; max_tokens <= 12; max_tokens++) { // a pass takes no more than are left
        make_requests(&r, 3, max_tokens, NULL);
        bn_lookup_stats one = {0};
        check_batch("max_tokens", 3, 512, 0, 4, &r, -1, &one);
        assert_true(one.drafted <= 3 * (uint64_t)(max_tokens > 2 ? (max_tokens - 2) * (max_tokens - 1) / 2 : 0));
        short_ones.drafted += one.drafted, short_ones.accepted += one.accepted;
        free_requests(&r);
    }
    assert_true(short_ones.accepted > 0);
    assert_true(total.accepted > 0);
    assert_true(total.drafted > total.accepted);
}

// A draft model in the batch (bn_batch_set_draft): every kind of request, the
// model drafting for itself (taken, but where a JSON request's mask refuses), a
// random model of its vocabulary (refused), a p-min, small steps, a cancel, a
// short draft context.
static void test_batch_draft_model(void **state) {
    (void)state;
    open_random_draft();
    requests r;
    static const int staggered[12] = {0, 0, 3, 3, 9, 20, 21, 40, 41, 42, 60, 90};
    make_requests(&r, 12, 64, staggered);
    const drafter self = {.engine = g_engine}, self_p = {.engine = g_engine, .p_min = 0.3f},
                 other = {.engine = g_random}, short_ctx = {.engine = g_engine, .n_ctx = 40};
    bn_lookup_stats mine = {0}, others = {0};
    check_batch_with("drafted by itself, 4 slots", 4, 512, 0, 8, &self, &r, -1, &mine);
    check_batch_with("drafted by itself, p_min 0.3, 3 slots, 8-token steps", 3, 8, 0, 8, &self_p, &r, 4, &mine);
    check_batch_with("drafted by itself in a 40-token context, 2 slots", 2, 512, 0, 4, &short_ctx, &r, -1, &mine);
    check_batch_with("drafted by a random model, 4 slots", 4, 512, 0, 8, &other, &r, -1, &others);
    free_requests(&r);
    assert_true(mine.accepted > mine.drafted / 2);
    assert_true(others.drafted > 0 && others.accepted < others.drafted / 2);
    // Sampling requests only (no JSON, no stop string, no end of turn in 40 tokens here): the
    // model drafting for itself has every draft taken, its copy of each sampler drawing what it draws.
    make_requests(&r, 6, 40, staggered);
    static bn_logit_bias bias[] = {{.token = 11, .bias = -INFINITY}, {.token = 13, .bias = 2.5f}};
    for (int i = 0; i < r.n; i++) {
        r.req[i].sampling = sampled(0.6f + 0.1f * (float)i, 20 + (uint64_t)i);
        r.req[i].json_schema = NULL, r.req[i].stop = NULL, r.req[i].n_stop = 0, r.req[i].logprobs = false;
    }
    r.req[1].sampling.top_k = 0, r.req[1].sampling.top_p = 1, r.req[1].sampling.min_p = 0;
    r.req[2].sampling.repeat_penalty = 1.3f, r.req[2].sampling.frequency_penalty = 0.5f;
    r.req[3].sampling.logit_bias = bias, r.req[3].sampling.n_logit_bias = 2;
    bn_lookup_stats sampling = {0};
    check_batch_with("sampling, drafted by itself, 3 slots", 3, 512, 0, 8, &self, &r, -1, &sampling);
    free_requests(&r);
    assert_true(sampling.drafted > 0);
    assert_int_equal(sampling.accepted, sampling.drafted);
    bn_batch *b = open_batch(2, 512, 0, 0);
    bn_error err;
    const bn_session_params dp = {.backend = "cpu", .n_threads = 1};
    assert_int_equal(bn_batch_set_draft(b, g_engine, &dp, BN_LOOKUP_MAX + 1, 0.5f, &err), -1);
    assert_int_equal(bn_batch_set_draft(b, g_engine, &dp, 8, -0.5f, &err), -1);
    assert_int_equal(bn_batch_set_draft(b, g_engine, &dp, 8, 0.5f, &err), 0);
    assert_int_equal(bn_batch_set_lookup(b, 4, &err), 0); // replaces it
    assert_int_equal(bn_batch_set_draft(b, g_engine, &dp, 8, 0.5f, &err), 0);
    bn_batch_free(b);
}

// Drafts go on while another request's prompt is fed in chunks: requests A
// and B come in together, in steps of 16 tokens; A's prompt is fed first, then
// A generates, drafted by the model itself, while B's prompt (A's four times
// over) is fed. In the steps before B's first token A still verifies drafts,
// of 7 tokens at most (half the call's room past its pending token, where it
// would draft 15), so that B's prompt gets 8 tokens a step or more; both get
// the tokens they get without drafts.
static void test_batch_drafts_beside_prompt_chunks(void **state) {
    (void)state;
    requests r;
    make_requests(&r, 2, 48, NULL);
    r.req[1] = r.req[0];
    r.req[1].user = (void *)(intptr_t)1;
    const size_t n_a = r.n_ids[0];
    int32_t *four = malloc(4 * n_a * sizeof *four);
    assert_non_null(four);
    for (int i = 0; i < 4; i++) memcpy(four + i * n_a, r.ids[0], n_a * sizeof *four);
    r.req[1].prompt = four, r.req[1].n_prompt = 4 * n_a;
    r.req[1].no_prefix_cache = true; // all of it fed
    outcome out[2][2];
    uint64_t beside = 0, most = 0; // passes in the steps that fed B's prompt, and their longest draft
    int feeding = 0;               // those steps
    const drafter self = {.engine = g_engine};
    for (int drafts = 0; drafts < 2; drafts++) {
        bn_batch *b = open_batch_with(2, 16, 0, drafts ? 16 : 0, drafts ? &self : NULL);
        bn_error err;
        memset(out[drafts], 0, sizeof out[drafts]);
        assert_int_equal(bn_batch_add(b, &r.req[0], &err), 0);
        assert_int_equal(bn_batch_add(b, &r.req[1], &err), 1);
        int done = 0;
        bool b_started = false;
        for (int step = 0; done < 2 && step < 500; step++) {
            const bn_lookup_stats before = bn_batch_lookup_stats(b);
            const bn_batch_event *ev;
            int n_ev;
            assert_int_equal(bn_batch_step(b, &ev, &n_ev, &err), 0);
            const bool feeding_b = !b_started;
            for (int e = 0; e < n_ev; e++) {
                outcome *o = &out[drafts][(intptr_t)ev[e].user];
                o->ids[o->n++] = ev[e].token;
                b_started |= (intptr_t)ev[e].user == 1;
                if (ev[e].done) bn_batch_remove(b, ev[e].slot), done++;
            }
            if (!drafts || !feeding_b || b_started) continue;
            const bn_lookup_stats now = bn_batch_lookup_stats(b);
            feeding++;
            beside += now.passes - before.passes;
            most = now.drafted - before.drafted > most ? now.drafted - before.drafted : most;
        }
        assert_int_equal(done, 2);
        bn_batch_free(b);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(out[0][i].n, out[1][i].n);
        assert_memory_equal(out[0][i].ids, out[1][i].ids, sizeof out[0][i].ids[0] * (size_t)out[0][i].n);
    }
    fprintf(stderr,
            "  %" PRIu64 " verifying passes of up to %" PRIu64 " drafted tokens in the %d steps before the second "
            "prompt (%zu tokens) was fed\n",
            beside, most, feeding, r.req[1].n_prompt);
    assert_true(beside > 0);
    assert_true(most > 0 && most <= 7);
    free(four);
    free_requests(&r);
}

// The rows ahead go back, those of requests that end and of one removed while
// it holds some: the same requests, run three times on one batch (between the
// first and the second, a request removed right after a drafting pass), draft
// and take as many tokens each time.
static void test_batch_rows_go_back(void **state) {
    (void)state;
    requests r;
    make_requests(&r, 6, 120, NULL);
    for (int i = 0; i < r.n; i++) r.req[i].no_prefix_cache = true; // every round feeds the same steps
    bn_batch *b = open_batch(2, 512, 0, 32);                        // 2 x 32 drafted: all 64 rows
    static outcome out[6];
    bn_lookup_stats first = {0}, before = {0};
    bn_error err;
    for (int round = 0; round < 3; round++) {
        if (round == 1) { // a request removed while it holds rows ahead
            const int slot = bn_batch_add(b, &r.req[0], &err);
            assert_true(slot >= 0);
            const uint64_t passes = bn_batch_lookup_stats(b).passes;
            for (int step = 0; step < 200 && bn_batch_lookup_stats(b).passes == passes; step++) {
                const bn_batch_event *ev;
                int n_ev;
                assert_int_equal(bn_batch_step(b, &ev, &n_ev, &err), 0);
                assert_true(n_ev == 0 || !ev[0].done); // not done before it drafts
            }
            assert_true(bn_batch_lookup_stats(b).passes > passes);
            bn_batch_remove(b, slot);
            before = bn_batch_lookup_stats(b);
        }
        run_on(b, r.req, r.start, r.n, -1, out);
        const bn_lookup_stats now = bn_batch_lookup_stats(b);
        const bn_lookup_stats delta = {now.drafted - before.drafted, now.accepted - before.accepted,
                                       now.passes - before.passes};
        before = now;
        if (round == 0) {
            first = delta;
            assert_true(first.accepted > 0);
            continue;
        }
        assert_true(delta.drafted == first.drafted && delta.accepted == first.accepted);
        assert_true(delta.passes == first.passes);
    }
    bn_batch_free(b);
    free_requests(&r);
}

static void test_batch_refuses_out_of_range(void **state) {
    (void)state;
    bn_batch_params p = {.session = {.backend = "cpu", .n_threads = 1}, .n_slots = 2};
    bn_batch *b;
    bn_error err;
    assert_int_equal(bn_batch_create(g_engine, &p, &b, &err), 0);
    assert_int_equal(bn_batch_set_lookup(b, 33, &err), -1);
    assert_non_null(strstr(err.msg, "0..32"));
    assert_int_equal(bn_batch_set_lookup(b, -1, &err), -1);
    assert_int_equal(bn_batch_set_lookup(b, 0, &err), 0);
    bn_batch_free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_draft_prefers_longest_ngram),
        cmocka_unit_test(test_draft_most_recent_and_loops),
        cmocka_unit_test(test_draft_none),
        cmocka_unit_test(test_next_len),
        cmocka_unit_test(test_same_tokens),
        cmocka_unit_test(test_same_tokens_json_schema),
        cmocka_unit_test(test_context_end),
        cmocka_unit_test(test_n_predict),
        cmocka_unit_test(test_two_calls),
        cmocka_unit_test(test_refuses_out_of_range),
        cmocka_unit_test(test_draft_model_same_tokens),
        cmocka_unit_test(test_draft_model_itself_all_taken),
        cmocka_unit_test(test_draft_model_two_calls),
        cmocka_unit_test(test_draft_model_refused),
        cmocka_unit_test(test_batch_same_tokens),
        cmocka_unit_test(test_batch_draft_model),
        cmocka_unit_test(test_batch_drafts_beside_prompt_chunks),
        cmocka_unit_test(test_batch_rows_go_back),
        cmocka_unit_test(test_batch_refuses_out_of_range),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
