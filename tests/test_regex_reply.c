// test_regex_reply.c - replies held to a regular expression, whole
// (core/regex_reply.h, bn_request.regex), on the shipped model's vocabulary:
//   - the mask keeps exactly the tokens a reference written here allows: for
//     choices, those whose bytes extend the reply so far to a prefix of a
//     choice; for [0-9]{1,3}, digits up to three; the end of generation where
//     the reply is whole; at every state of random walks;
//   - a batch's replies, greedy and sampled, with logprobs or not, are whole
//     matches and end by themselves (stop: BN_STOP_EOG) where nothing can
//     follow;
//   - a session's replies are the batch's, with prompt lookup on or off;
//   - anchors in the pattern change nothing; a bad pattern is refused with its
//     offset in the pattern as given; a regex beside JSON mode is refused.
#include "test_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "engine_internal.h"
#include "regex_reply.h"

static bn_engine *g_engine;
static int32_t g_vocab;

static int setup(void **state) {
    (void)state;
    if (!(g_engine = bn_shipped_engine())) return -1;
    g_vocab = bn_engine_info(g_engine).n_vocab;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    bn_engine_free(g_engine);
    return 0;
}

// ---- the mask against references written here ------------------------------------------

// Whether text (n bytes) may still become, or is (*whole), one of the choices.
static bool choice_prefix(const char *const *choices, size_t n_choices, const char *text, size_t n, bool *whole) {
    bool any = false;
    *whole = false;
    for (size_t i = 0; i < n_choices; i++) {
        const size_t len = strlen(choices[i]);
        if (n <= len && !memcmp(choices[i], text, n)) any = true, *whole |= n == len;
    }
    return any;
}

// The same for [0-9]{1,3}.
static bool digits_prefix(const char *text, size_t n, bool *whole) {
    for (size_t i = 0; i < n; i++)
        if (text[i] < '0' || text[i] > '9') return *whole = false;
    *whole = n >= 1 && n <= 3;
    return n <= 3;
}

typedef bool (*prefix_fn)(const void *ctx, const char *text, size_t n, bool *whole);
static bool choices_fn(const void *ctx, const char *text, size_t n, bool *whole) {
    const char *const *c = ctx;
    size_t k = 0;
    while (c[k]) k++;
    return choice_prefix(c, k, text, n, whole);
}
static bool digits_fn(const void *ctx, const char *text, size_t n, bool *whole) {
    (void)ctx;
    return digits_prefix(text, n, whole);
}

// Walks: from the empty reply, masks a row and holds each token's verdict to the
// reference's, then takes a kept token at random, until the reply is whole.
static void check_mask(const char *pattern, prefix_fn ref, const void *ctx, int walks) {
    float *row = malloc(sizeof(float) * (size_t)g_vocab);
    int32_t *kept = malloc(sizeof(int32_t) * (size_t)g_vocab);
    assert_true(row && kept);
    uint64_t rng = 12345;
    for (int w = 0; w < walks; w++) {
        bn_regex_reply r;
        bn_error err;
        if (bn_regex_reply_init(&r, pattern, g_vocab, &err)) fail_msg("%s: %s", pattern, err.msg);
        char text[256];
        size_t n = 0;
        for (int step = 0; step < 64; step++) {
            for (int32_t t = 0; t < g_vocab; t++) row[t] = 0;
            const int left = bn_regex_reply_mask(&r, g_engine, row);
            int n_kept = 0;
            for (int32_t t = 0; t < g_vocab; t++) {
                size_t len = 0;
                const char *bytes = bn_engine_token_bytes(g_engine, t, &len);
                bool whole = false, want;
                if (bn_engine_is_eog(g_engine, t)) {
                    ref(ctx, text, n, &whole);
                    want = whole;
                } else if (bn_tokenizer_is_special(g_engine->tok, t) || !len || n + len > sizeof text) {
                    want = false;
                } else {
                    memcpy(text + n, bytes, len);
                    want = ref(ctx, text, n + len, &whole);
                }
                if (want != (row[t] == 0))
                    fail_msg("%s after \"%.*s\": token %d (\"%.*s\") %s", pattern, (int)n, text, t, (int)len,
                             bytes ? bytes : "", want ? "masked" : "kept");
                if (want) kept[n_kept++] = t;
            }
            assert_int_equal(left, n_kept);
            assert_true(n_kept > 0);
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            const int32_t t = kept[(rng >> 33) % (uint64_t)n_kept];
            if (bn_engine_is_eog(g_engine, t)) break;
            size_t len;
            const char *bytes = bn_engine_token_bytes(g_engine, t, &len);
            memcpy(text + n, bytes, len);
            n += len;
            bool whole, more = false;
            ref(ctx, text, n, &whole);
            // The reply is whole when it matches and no byte can follow.
            for (int c = 0; c < 256 && !more; c++) {
                char x[257];
                bool w2;
                memcpy(x, text, n);
                x[n] = (char)c;
                more = ref(ctx, x, n + 1, &w2);
            }
            assert_int_equal(bn_regex_reply_feed(&r, g_engine, t), whole && !more);
            if (whole && !more) break;
        }
        bn_regex_reply_free(&r);
    }
    free(row);
    free(kept);
}

static void test_mask_choices(void **state) {
    (void)state;
    static const char *const choices[] = {"yes", "no", "not sure", "Mr. Darcy (2)", "n", NULL};
    char *pattern;
    bn_error err;
    if (bn_regex_of_choices(choices, 5, &pattern, &err)) fail_msg("%s", err.msg);
    assert_string_equal(pattern, "yes|no|not sure|Mr\\. Darcy \\(2\\)|n");
    check_mask(pattern, choices_fn, choices, 40);
    free(pattern);
}

static void test_mask_digits(void **state) {
    (void)state;
    check_mask("[0-9]{1,3}", digits_fn, NULL, 20);
    check_mask("^\\d{1,3}$", digits_fn, NULL, 5); // its anchors change nothing
}

// Each top-level alternative is matched whole, with its own anchors or without.
static void test_mask_anchored_alternatives(void **state) {
    (void)state;
    static const char *const choices[] = {"yes", "no", "ab", NULL};
    check_mask("^yes$|^no$|ab", choices_fn, choices, 10);
    check_mask("yes$|no|^ab", choices_fn, choices, 10);
}

static void test_bad_patterns(void **state) {
    (void)state;
    bn_regex_reply r;
    bn_error err;
    static const struct { const char *pattern, *says; } bad[] = {
        {"ab(?=c)", "at offset 2"}, {"^ab(?=c)", "at offset 3"}, {"a\\", "end of the pattern"},
        {"a)|(b", "unmatched ) at offset 1"}, {")", "unmatched ) at offset 0"},
        {"(a", "missing ) for the group at offset 0"},
        {"[]", "no string matches"}, {"a^b", "^"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (bn_regex_reply_init(&r, bad[i].pattern, g_vocab, &err) == 0) fail_msg("'%s' compiled", bad[i].pattern);
        if (!strstr(err.msg, bad[i].says) || strncmp(err.msg, "regex: ", 7))
            fail_msg("'%s': %s (wanted '%s')", bad[i].pattern, err.msg, bad[i].says);
        assert_int_equal(bn_regex_check(bad[i].pattern, &err), -1);
    }
    // An escaped "$" at the end stays a character.
    assert_int_equal(bn_regex_reply_init(&r, "a\\$", g_vocab, &err), 0);
    assert_true(bn_regex_step(r.rx, bn_regex_step(r.rx, 0, 'a'), '$') != BN_REGEX_DEAD);
    bn_regex_reply_free(&r);
    // Choices: none, or one with a control character no reply holds.
    char *p;
    static const char *const ctl[] = {"a", "b\x01"}, *const tab[] = {"a\tb"};
    assert_int_equal(bn_regex_of_choices(ctl, 0, &p, &err), -1);
    assert_int_equal(bn_regex_of_choices(ctl, 2, &p, &err), -1);
    if (!strstr(err.msg, "choice 1 has the control character U+0001")) fail_msg("%s", err.msg);
    assert_null(p);
    assert_int_equal(bn_regex_of_choices(tab, 1, &p, &err), 0);
    assert_int_equal(bn_regex_check(p, &err), 0);
    free(p);
}

// ---- through a batch --------------------------------------------------------------------------

typedef struct reply {
    char text[512];
    size_t len;
    bn_stop stop;
    int n_gen;
    bool logprobs_finite;
} reply;

// Each request alone in a batch of 3, stepped to its end.
static void run(const bn_request *reqs, int n, reply *out) {
    bn_batch_params bp = {.session = {.backend = "cpu", .n_threads = 2, .n_ctx = 256}, .n_slots = 3};
    bn_batch *b;
    bn_error err;
    if (bn_batch_create(g_engine, &bp, &b, &err)) fail_msg("%s", err.msg);
    memset(out, 0, sizeof *out * (size_t)n);
    int added = 0, done = 0;
    while (done < n) {
        while (added < n && bn_batch_n_free(b)) {
            bn_request r = reqs[added];
            r.user = &out[added];
            if (bn_batch_add(b, &r, &err) < 0) fail_msg("%s", err.msg);
            added++;
        }
        const bn_batch_event *ev;
        int n_ev;
        if (bn_batch_step(b, &ev, &n_ev, &err)) fail_msg("%s", err.msg);
        for (int i = 0; i < n_ev; i++) {
            reply *o = ev[i].user;
            assert_true(o->len + ev[i].len < sizeof o->text);
            memcpy(o->text + o->len, ev[i].text, ev[i].len);
            o->len += ev[i].len;
            if (ev[i].n_top) o->logprobs_finite = isfinite(ev[i].logprob);
            if (ev[i].done) {
                o->stop = ev[i].stop;
                o->n_gen = ev[i].n_gen;
                bn_batch_remove(b, ev[i].slot), done++;
            }
        }
    }
    bn_batch_free(b);
}

static void test_batch_replies(void **state) {
    (void)state;
    int32_t *prompt;
    size_t n_prompt;
    bn_error err;
    if (bn_engine_tokenize(g_engine, "\"Will you dance?\" she asked. He said", true, false, &prompt, &n_prompt, &err))
        fail_msg("%s", err.msg);
    static const char *const choices[] = {" yes", " no", " perhaps, madam", NULL};
    char *pick;
    if (bn_regex_of_choices(choices, 3, &pick, &err)) fail_msg("%s", err.msg);
    enum { N = 12 };
    bn_request reqs[N];
    for (int i = 0; i < N; i++) {
        reqs[i] = (bn_request){.prompt = prompt, .n_prompt = n_prompt, .max_tokens = 40,
                               .sampling = i % 3 ? bn_sampling_default() : bn_sampling_greedy(),
                               .regex = i < N / 2 ? pick : " [0-9]{1,3} (pounds|guineas)\\.",
                               .logprobs = i % 2, .top_logprobs = 2};
        reqs[i].sampling.seed = (uint64_t)i;
        reqs[i].sampling.temperature = i % 3 ? 1.5f : 0;
    }
    reply out[N];
    run(reqs, N, out);
    for (int i = 0; i < N; i++) {
        bool whole = false;
        if (i < N / 2) {
            choice_prefix(choices, 3, out[i].text, out[i].len, &whole);
        } else {
            const char *t = out[i].text;
            size_t d = 0;
            while (d < 3 && t[1 + d] >= '0' && t[1 + d] <= '9') d++;
            whole = out[i].len > 1 && t[0] == ' ' && d >= 1 &&
                    (!strcmp(t + 1 + d, " pounds.") || !strcmp(t + 1 + d, " guineas."));
            out[i].text[out[i].len] = 0;
        }
        if (!whole || out[i].stop != BN_STOP_EOG)
            fail_msg("request %d: \"%.*s\", stop %s", i, (int)out[i].len, out[i].text, bn_stop_name(out[i].stop));
        if (i % 2) assert_true(out[i].logprobs_finite);
        fprintf(stderr, "  %s, %s: \"%.*s\" (%d tokens)\n", i < N / 2 ? "choice" : "regex",
                i % 3 ? "sampled" : "greedy", (int)out[i].len, out[i].text, out[i].n_gen);
    }
    // Refused: beside JSON mode, or a pattern the automaton cannot follow.
    bn_batch_params bp = {.session = {.backend = "cpu", .n_threads = 1, .n_ctx = 64}, .n_slots = 1};
    bn_batch *b;
    if (bn_batch_create(g_engine, &bp, &b, &err)) fail_msg("%s", err.msg);
    bn_request r = reqs[0];
    r.json_object = true;
    assert_int_equal(bn_batch_add(b, &r, &err), -1);
    if (!strstr(err.msg, "one of a regex")) fail_msg("%s", err.msg);
    r.json_object = false;
    r.regex = "(a";
    assert_int_equal(bn_batch_add(b, &r, &err), -1);
    if (!strstr(err.msg, "regex: ")) fail_msg("%s", err.msg);
    assert_int_equal(bn_batch_n_free(b), 1);
    bn_batch_free(b);
    free(pick);
    free(prompt);
}

// A session holds its replies the same way (bn_session_set_regex): the batch's
// tokens for the same request, with prompt lookup on or off; a regex lifts a
// JSON Schema and a schema a regex; NULL lifts it.
static int collect(void *user, int32_t id, const char *text, size_t len) {
    (void)text, (void)len;
    int32_t *ids = user;
    if (id >= 0) ids[1 + ids[0]++] = id;
    return 0;
}

// One session's reply to prompt under pattern (the session's regex set), as text.
static void session_reply(bn_session *s, const int32_t *prompt, size_t n_prompt, const bn_sampling *smp,
                          char *text, size_t *len, bn_timings *t) {
    int32_t ids[96] = {0};
    bn_error err;
    bn_session_reset(s);
    if (bn_session_generate(s, prompt, n_prompt, 90, smp, collect, ids, t, &err)) fail_msg("%s", err.msg);
    char *out;
    if (bn_engine_detokenize(g_engine, ids + 1, (size_t)ids[0], &out, len, &err)) fail_msg("%s", err.msg);
    assert_true(*len < 512);
    memcpy(text, out, *len);
    free(out);
}

static void test_session(void **state) {
    (void)state;
    // A prompt that prompt lookup drafts from, and one it does not.
    static const struct { const char *prompt, *pattern; } cases[] = {
        {"It was a truth that", " (a|an|the) [a-z]+( [a-z]+){0,3}, [0-9]{1,2} years? old\\."},
        {"the man and the man and the man and the man and the man and",
         "( (the|man|and)){1,16}\\."},
    };
    const bn_session_params sp = {.backend = "cpu", .n_threads = 2, .n_ctx = 256};
    uint64_t drafted = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int32_t *prompt;
        size_t n_prompt;
        bn_error err;
        if (bn_engine_tokenize(g_engine, cases[c].prompt, true, false, &prompt, &n_prompt, &err))
            fail_msg("%s", err.msg);
        for (int k = 0; k < 3; k++) {
            bn_sampling smp = k ? bn_sampling_default() : bn_sampling_greedy();
            smp.seed = (uint64_t)k;
            bn_request r = {.prompt = prompt, .n_prompt = n_prompt, .max_tokens = 90, .sampling = smp,
                            .regex = cases[c].pattern};
            reply want;
            run(&r, 1, &want);
            for (int lookup = 0; lookup <= 8; lookup += 8) {
                bn_session *s;
                if (bn_session_create(g_engine, &sp, &s, &err) || bn_session_set_lookup(s, lookup, &err) ||
                    bn_session_set_json_schema(s, "{\"type\": \"object\"}", &err) ||
                    bn_session_set_regex(s, cases[c].pattern, &err)) // lifts the schema
                    fail_msg("%s", err.msg);
                // Twice on one session: each reply starts from the pattern's start again.
                for (int again = 0; again < 2; again++) {
                    char text[512];
                    size_t len;
                    bn_timings t;
                    session_reply(s, prompt, n_prompt, &smp, text, &len, &t);
                    if (len != want.len || memcmp(text, want.text, len) || t.stop != BN_STOP_EOG)
                        fail_msg("session (lookup %d, call %d): \"%.*s\" (%s), batch: \"%.*s\"", lookup, again,
                                 (int)len, text, bn_stop_name(t.stop), (int)want.len, want.text);
                    drafted += bn_session_lookup_stats(s).drafted;
                }
                assert_int_equal(bn_session_set_regex(s, NULL, &err), 0); // lifted
                char text[512];
                size_t len;
                bn_timings t;
                session_reply(s, prompt, n_prompt, &smp, text, &len, &t);
                assert_int_equal(t.stop, BN_STOP_LENGTH);
                bn_session_free(s);
            }
        }
        free(prompt);
    }
    fprintf(stderr, "  prompt lookup drafted %llu tokens\n", (unsigned long long)drafted);
    assert_true(drafted > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask_choices),
        cmocka_unit_test(test_mask_digits),
        cmocka_unit_test(test_mask_anchored_alternatives),
        cmocka_unit_test(test_bad_patterns),
        cmocka_unit_test(test_batch_replies),
        cmocka_unit_test(test_session),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
