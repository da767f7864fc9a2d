// fuzz_serve_api.c - libFuzzer target for the server's endpoints (tools/serve_api.c):
// the JSON bodies anyone who can reach the port sends.
//
// Build and run (clang), from the repository root:
//   CC=clang cmake -S . -B build-fuzz -DBITNET_FUZZ=ON -DBITNET_CUDA=OFF
//   cmake --build build-fuzz --target fuzz_serve_api
//   ./build-fuzz/fuzz_serve_api -max_len=4096 fuzz/corpus-serve
// tests/test_fuzz_replay.c replays fuzz/corpus-serve/ through this function in
// every build.
//
// A server as `bitnet-gpu serve` runs one, on the shipped model (found under
// BITNET_SOURCE_DIR or the source tree it was built from), on the CPU, with two
// slots of 64 tokens. Input byte 0 picks the route (chat, completions, tokenize,
// detokenize, models, health, an unknown path, a wrong method, metrics,
// tokenizer_info); the rest is the
// body. Besides "no crash, no leak" it checks the handler's promise: every
// answer is a JSON reply with a status (an error is an OpenAI error object), the
// metrics text, or
// a generation job, which is cancelled and released at once.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "../tools/serve_api.h"
#include "../tools/serve_sched.h"

#ifndef BN_SOURCE_DIR
#define BN_SOURCE_DIR "."
#endif

static const bn_api *serve_fuzz_api(void) {
    static bn_api api;
    if (api.engine) return &api;
    const char *root = getenv("BITNET_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/models/bitnet-austen-6m.gguf", root && *root ? root : BN_SOURCE_DIR);
    bn_error err;
    bn_engine *e;
    bn_batch *b;
    bn_sched *s;
    const bn_batch_params p = {.session = {.backend = "cpu", .n_threads = 1, .n_ctx = 64}, .n_slots = 2};
    if (bn_engine_load(path, NULL, &e, &err) || bn_batch_create(e, &p, &b, &err) || bn_sched_start(b, &s, &err)) {
        fprintf(stderr, "fuzz_serve_api: %s (set BITNET_SOURCE_DIR to the repository)\n", err.msg);
        abort();
    }
    api = (bn_api){.engine = e, .sched = s, .model_id = "fuzz", .n_ctx = 64, .created = 0,
                   .sampling = bn_sampling_default(), .max_tokens = -1};
    return &api;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const struct {
        const char *method, *path;
    } routes[] = {{"POST", "/v1/chat/completions"}, {"POST", "/v1/completions"}, {"POST", "/tokenize"},
                  {"POST", "/detokenize"},          {"GET", "/v1/models"},       {"GET", "/health"},
                  {"POST", "/v1/nothing"},          {"GET", "/v1/completions"},  {"GET", "/metrics"},
                  {"GET", "/tokenizer_info"}};
    if (size == 0) return 0;
    const bn_api *api = serve_fuzz_api();
    const int route = data[0] % (sizeof routes / sizeof routes[0]);
    char *body = malloc(size); // NUL after the body, as the HTTP layer hands it over
    memcpy(body, data + 1, size - 1);
    body[size - 1] = 0;
    bn_api_reply r;
    bn_api_handle(api, routes[route].method, routes[route].path, body, size - 1, &r);
    free(body);
    if (r.job) { // a generation: the client goes away at once
        if (r.body || r.status) abort();
        bn_job_cancel(r.job);
        bn_job_release(r.job);
        return 0;
    }
    if (r.content_type) { // /metrics: Prometheus's text
        if (r.status != 200 || !r.body || strncmp(r.body, "# HELP ", 7)) abort();
        free(r.body);
        return 0;
    }
    cJSON *o = r.body ? cJSON_Parse(r.body) : NULL;
    if (!o || r.status < 200 || r.status > 599) abort();
    if (r.status >= 400 && !cJSON_IsObject(cJSON_GetObjectItem(o, "error"))) abort();
    cJSON_Delete(o);
    free(r.body);
    return 0;
}
