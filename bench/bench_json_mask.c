// bench_json_mask.c - what the JSON mask (core/json_mask.c) costs a row of
// logits: bn_json_mask_row over a model's whole vocabulary, at places a JSON
// reply passes through (inside a string, after a colon or a comma, a tool
// call's start, tag and arguments), each the best of 9 runs, single-threaded.
//
//   bench_json_mask [--json] [MODEL]   (default: $BITNET_FIXTURES/tiny-a/tiny-a.gguf,
//                                       whose vocabulary is Llama-3's 128,256 tokens)
// The table goes to stdout (stderr with --json, where stdout is one JSON object).
// Compare the milliseconds with a decode step of the same model on the same
// machine: the mask runs once per step for each slot whose request is JSON.
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bitnet.h"
#include "json_mask.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

#define OBJECT "{\"type\": \"object\"}"
// What `serve` makes of two tools under tool_choice auto (tools/serve_tools.c).
#define TOOLS                                                                                                \
    "{\"anyOf\": [{\"type\": \"object\", \"properties\": {\"tool_calls\": {\"type\": \"array\", \"minItems\": 1, " \
    "\"items\": {\"anyOf\": [{\"type\": \"object\", \"properties\": {\"name\": {\"const\": \"get_weather\"}, "     \
    "\"arguments\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, \"unit\": "          \
    "{\"enum\": [\"c\", \"f\"]}}, \"required\": [\"city\"]}}, \"required\": [\"name\", \"arguments\"]}, "            \
    "{\"type\": \"object\", \"properties\": {\"name\": {\"const\": \"add\"}, \"arguments\": {\"type\": \"object\", " \
    "\"properties\": {\"a\": {\"type\": \"integer\"}, \"b\": {\"type\": \"integer\"}}, \"required\": [\"a\", "     \
    "\"b\"]}}, \"required\": [\"name\", \"arguments\"]}]}}}, \"required\": [\"tool_calls\"]}, {\"type\": "           \
    "\"object\", \"properties\": {\"response\": {\"type\": \"string\"}}, \"required\": [\"response\"]}]}"

static const struct {
    const char *schema, *text, *where;
} places[] = {
    {OBJECT, "{\"a\":\"hello wor", "json_object, in a string"},
    {OBJECT, "{\"a\":", "json_object, after a colon"},
    {OBJECT, "{\"a\":1,", "json_object, after a comma"},
    {TOOLS, "", "tools, the start"},
    {TOOLS, "{", "tools, after {"},
    {TOOLS, "{\"tool_calls\":[{\"name\":\"", "tools, the tag"},
    {TOOLS, "{\"tool_calls\":[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Par", "tools, in an argument"},
    {TOOLS, "{\"tool_calls\":[{\"name\":\"add\",\"arguments\":{\"a\":", "tools, an integer argument"},
};

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
    fprintf(table, "%-30s %9s %9s %10s\n", "where", "readings", "kept", "ms/row");
    if (json) printf("{\"vocab\": %d, \"rows\": [", v.n);
    for (size_t i = 0; i < sizeof places / sizeof *places; i++) {
        bn_json_schema *g;
        if (bn_json_schema_compile(places[i].schema, strlen(places[i].schema), &g, &err)) {
            fprintf(stderr, "error: %s\n", err.msg);
            return 1;
        }
        bn_json_state_init(s, g);
        if (!bn_json_state_feed(s, places[i].text, strlen(places[i].text))) return 1;
        double best = 1e30;
        int kept = 0;
        for (int run = 0; run < 9; run++) {
            for (int32_t t = 0; t < v.n; t++) row[t] = 0;
            const double t0 = now_ms();
            kept = bn_json_mask_row(&v, e, s, row);
            const double ms = now_ms() - t0;
            if (ms < best) best = ms;
        }
        fprintf(table, "%-30s %9d %9d %10.3f\n", places[i].where, s->n, kept, best);
        if (json) printf("%s{\"where\": \"%s\", \"kept\": %d, \"ms\": %.4f}", i ? ", " : "", places[i].where, kept, best);
        bn_json_schema_free(g);
    }
    if (json) printf("]}\n");
    free(row);
    free(s);
    bn_json_vocab_free(&v);
    bn_engine_free(e);
    return 0;
}
