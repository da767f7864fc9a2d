// bench_json_mask.c - what the JSON mask (core/json_mask.c) costs a row of
// logits: bn_json_mask_row over a model's whole vocabulary, single-threaded.
// - At places a JSON reply passes through (inside a string, after a colon or a
//   comma, a tool call's start, tag and arguments): the row worked out (the
//   mask cache emptied first) and the row from the cache, each the best of 9.
// - Over whole replies, token by token as the tokenizer splits them, as a
//   decode step meets them: the mean per token with the cache (empty at the
//   reply's start), and with the cache emptied before every row.
//
//   bench_json_mask [--json] [MODEL]   (default: $BITNET_FIXTURES/tiny-a/tiny-a.gguf,
//                                       whose vocabulary is Llama-3's 128,256 tokens)
// The tables go to stdout (stderr with --json, where stdout is one JSON object).
// Compare the milliseconds with a decode step of the same model on the same
// machine: the mask runs once per step for each slot whose request is JSON.
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "clock.h"
#include "json_mask.h"

#define OBJECT "{\"type\": \"object\"}"
// What `serve` makes of two tools under tool_choice auto (core/chat_tools.c).
#define TOOLS                                                                                                \
    "{\"anyOf\": [{\"type\": \"object\", \"properties\": {\"tool_calls\": {\"type\": \"array\", \"minItems\": 1, " \
    "\"items\": {\"anyOf\": [{\"type\": \"object\", \"properties\": {\"name\": {\"const\": \"get_weather\"}, "     \
    "\"arguments\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, \"unit\": "          \
    "{\"enum\": [\"c\", \"f\"]}}, \"required\": [\"city\"]}}, \"required\": [\"name\", \"arguments\"]}, "            \
    "{\"type\": \"object\", \"properties\": {\"name\": {\"const\": \"add\"}, \"arguments\": {\"type\": \"object\", " \
    "\"properties\": {\"a\": {\"type\": \"integer\"}, \"b\": {\"type\": \"integer\"}}, \"required\": [\"a\", "     \
    "\"b\"]}}, \"required\": [\"name\", \"arguments\"]}]}}}, \"required\": [\"tool_calls\"]}, {\"type\": "           \
    "\"object\", \"properties\": {\"response\": {\"type\": \"string\"}}, \"required\": [\"response\"]}]}"

typedef struct place {
    const char *schema, *text, *where;
} place;

// A description held to 500 characters, and a date.
#define SIZED "{\"type\": \"object\", \"properties\": {\"d\": {\"type\": \"string\", \"maxLength\": 500}, " \
              "\"on\": {\"type\": \"string\", \"format\": \"date\"}}}"

// Pydantic's score: float = Field(ge=0, le=1) and price: confloat(gt=0).
#define SCORE "{\"type\": \"object\", \"properties\": {\"score\": {\"type\": \"number\", \"minimum\": 0, " \
              "\"maximum\": 1}, \"price\": {\"type\": \"number\", \"exclusiveMinimum\": 0}}}"

static const place places[] = {
    {OBJECT, "{\"a\":\"hello wor", "json_object, in a string"},
    {OBJECT, "{\"a\":", "json_object, after a colon"},
    {OBJECT, "{\"a\":1,", "json_object, after a comma"},
    {TOOLS, "", "tools, the start"},
    {TOOLS, "{", "tools, after {"},
    {TOOLS, "{\"tool_calls\":[{\"name\":\"", "tools, the tag"},
    {TOOLS, "{\"tool_calls\":[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Par", "tools, in an argument"},
    {TOOLS, "{\"tool_calls\":[{\"name\":\"add\",\"arguments\":{\"a\":", "tools, an integer argument"},
    {SIZED, "{\"d\":\"Once upon a time", "maxLength 500, 16 in"},
    {SIZED, "{\"d\":\"Once upon a time, there lived in a certain village a little country girl, the prettiest creature who"
            " was ever seen. Her mother was excessively fond of her; and her grandmother doted on her still more."
            " This good woman had a little red riding hood made for her. It suited the girl so extremely well tha"
            "t everybody called her Little Red Riding Hood. One day her mother, having made some cakes, said to h"
            "er, Go, my dear, and see how your grandmother is doing, for I hear she has been very",
     "maxLength 500, 16 from the end"},
    {SIZED, "{\"on\":\"2024-0", "a date's month"},
    {SCORE, "{\"score\":", "a number in 0..1, its start"},
    {SCORE, "{\"score\":0.87", "a number in 0..1, 2 digits in"},
    {SCORE, "{\"score\":1,\"price\":12.", "a number > 0, after its '.'"},
};

static const place replies[] = {
    {OBJECT, "{\"name\": \"Ada Lovelace\", \"born\": 1815, \"fields\": [\"mathematics\", \"computing\"], "
             "\"notes\": \"She wrote the first published algorithm meant for a machine.\"}", "json_object, a record"},
    {TOOLS, "{\"tool_calls\":[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\",\"unit\":\"c\"}},"
            "{\"name\":\"add\",\"arguments\":{\"a\":12,\"b\":30}}]}", "tools, two calls"},
    {TOOLS, "{\"response\":\"I cannot check the weather without a city. Which city do you mean?\"}",
     "tools, a text reply"},
};

static bn_json_schema *compile_or_die(const char *text) {
    bn_json_schema *g;
    bn_error err;
    if (bn_json_schema_compile(text, strlen(text), &g, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        exit(1);
    }
    return g;
}

// The best of 9 rows at s, in ms; cold: the cache emptied before each.
static double best_row(bn_json_vocab *v, const bn_engine *e, const bn_json_state *s, float *row, bool cold,
                       int *kept) {
    double best = 1e30;
    for (int run = 0; run < 9; run++) {
        for (int32_t t = 0; t < v->n; t++) row[t] = 0;
        if (cold) bn_json_mask_forget(v);
        const double t0 = bn_now_ms();
        *kept = bn_json_mask_row(v, e, s, row);
        const double ms = bn_now_ms() - t0;
        if (ms < best) best = ms;
    }
    return best;
}

// The mean ms a row over reply r's tokens (schema g); cold: the cache emptied
// before each row; else as left by what came before.
static double reply_ms(bn_json_vocab *v, const bn_engine *e, const bn_json_schema *g, const char *where,
                       const int32_t *ids, size_t n, bn_json_state *s, float *row, bool cold) {
    bn_json_state_init(s, g);
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        for (int32_t t = 0; t < v->n; t++) row[t] = 0;
        if (cold) bn_json_mask_forget(v);
        const double t0 = bn_now_ms();
        bn_json_mask_row(v, e, s, row);
        total += bn_now_ms() - t0;
        if (row[ids[i]] != 0) {
            fprintf(stderr, "error: %s: the mask refuses token %zu of the reply\n", where, i);
            exit(1);
        }
        bn_json_state_feed_token(s, e, ids[i]);
    }
    return total / (double)n;
}

int main(int argc, char **argv) {
    bool json = false;
    const char *model = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = true;
        } else if (argv[i][0] == '-' || model) {
            fprintf(stderr, "usage: %s [--json] [MODEL]\n", argv[0]);
            return 2;
        } else {
            model = argv[i];
        }
    }
    char def[4096];
    if (!model) {
        const char *dir = getenv("BITNET_FIXTURES");
        snprintf(def, sizeof def, "%s/tiny-a/tiny-a.gguf", dir && *dir ? dir : "../shared/fixtures");
        model = def;
    }
    bn_engine *e;
    bn_error err;
    bn_json_vocab v;
    if (bn_engine_load(model, NULL, &e, &err) || bn_json_vocab_init(&v, e, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    float *row = malloc(sizeof(float) * (size_t)v.n);
    bn_json_state *s = malloc(sizeof *s);
    if (!row || !s) return 1;
    FILE *table = json ? stderr : stdout;
    fprintf(table, "JSON mask over %d tokens (%s), best of 9 runs\n", v.n, model);
    fprintf(table, "%-30s %9s %9s %13s %13s\n", "where", "readings", "kept", "worked out ms", "cached ms");
    if (json) printf("{\"vocab\": %d, \"rows\": [", v.n);
    for (size_t i = 0; i < sizeof places / sizeof *places; i++) {
        bn_json_schema *g = compile_or_die(places[i].schema);
        bn_json_state_init(s, g);
        if (!bn_json_state_feed(s, places[i].text, strlen(places[i].text))) {
            fprintf(stderr, "bench_json_mask: the schema refuses the text of \"%s\"\n", places[i].where);
            return 1;
        }
        int kept;
        const double cold = best_row(&v, e, s, row, true, &kept);
        const double cached = best_row(&v, e, s, row, false, &kept);
        fprintf(table, "%-30s %9d %9d %13.3f %13.4f\n", places[i].where, s->n, kept, cold, cached);
        if (json)
            printf("%s{\"where\": \"%s\", \"kept\": %d, \"ms\": %.4f, \"cached_ms\": %.5f}", i ? ", " : "",
                   places[i].where, kept, cold, cached);
        bn_json_schema_free(g);
    }
    fprintf(table, "\nwhole replies, mean ms a row: no cache; the cache empty at the start (misses);\n"
                   "the cache as the same reply to the same compiled schema left it (a slot after another)\n"
                   "%-30s %7s %10s %10s %7s %10s\n", "reply", "tokens", "none ms", "empty ms", "misses", "warm ms");
    if (json) printf("], \"replies\": [");
    for (size_t i = 0; i < sizeof replies / sizeof *replies; i++) {
        int32_t *ids;
        size_t n;
        if (bn_engine_tokenize(e, replies[i].text, false, false, &ids, &n, &err)) {
            fprintf(stderr, "error: %s\n", err.msg);
            return 1;
        }
        const char *where = replies[i].where;
        bn_json_schema *g = compile_or_die(replies[i].schema);
        const double none = reply_ms(&v, e, g, where, ids, n, s, row, true);
        bn_json_mask_forget(&v);
        const uint64_t misses = v.misses;
        const double empty = reply_ms(&v, e, g, where, ids, n, s, row, false);
        const unsigned long long missed = (unsigned long long)(v.misses - misses);
        const double warm = reply_ms(&v, e, g, where, ids, n, s, row, false);
        fprintf(table, "%-30s %7zu %10.3f %10.3f %7llu %10.3f\n", where, n, none, empty, missed, warm);
        if (json)
            printf("%s{\"reply\": \"%s\", \"tokens\": %zu, \"ms\": %.4f, \"empty_cache_ms\": %.4f, "
                   "\"misses\": %llu, \"warm_cache_ms\": %.4f}",
                   i ? ", " : "", where, n, none, empty, missed, warm);
        bn_json_schema_free(g);
        free(ids);
    }
    if (json) printf("]}\n");
    free(row);
    free(s);
    bn_json_vocab_free(&v);
    bn_engine_free(e);
    return 0;
}
