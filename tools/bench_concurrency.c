// bench_concurrency.c - `bitnet-gpu bench --concurrency 1,4,16,64`: aggregate
// decode throughput of a bn_batch against the number of streams it runs at once
// (what `serve --parallel N` does, without HTTP). For each count C and backend,
// C requests of the same prompt and -n tokens go into one batch and run to the
// end: greedy, or, when a sampling flag is given, sampling with those flags and
// llama.cpp's defaults for the rest (stream i with seed + i). The prefill steps
// (until every stream has its first token) are
// timed apart from the decode steps, and the aggregate rate is the decode
// tokens of all streams over the decode time. With --lookup or -md the streams
// draft (the batch's bn_batch_set_lookup, bn_batch_set_draft), and the table
// says how many tokens were drafted and taken. Throughput saturates where one
// step's cost stops being the weights' read and becomes the arithmetic: the
// report names the smallest C within 10% of the best rate.
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_concurrency.h"
#include "clock.h"
#include "run.h"

#define SATURATED 0.9 // within 10% of the best rate

typedef struct point {
    int streams;
    bool ran;
    char note[320];
    double prefill_ms, decode_ms, tok_s, ms_per_step;
    int decode_tokens, steps;
    bn_lookup_stats drafts;
} point;

int bn_parse_counts(const char *s, int *counts, int *n) {
    *n = 0;
    for (const char *p = s; *p;) {
        char *end;
        const long c = strtol(p, &end, 10);
        if (end == p || c < 1 || c > 1024 || *n == BN_MAX_COUNTS || (*end && *end != ',')) {
            fprintf(stderr, "error: --concurrency expects up to %d counts in 1..1024, like 1,4,16,64 (got '%s')\n",
                    BN_MAX_COUNTS, s);
            return 2;
        }
        counts[(*n)++] = (int)c;
        p = *end ? end + 1 : end;
    }
    if (*n) return 0;
    fprintf(stderr, "error: --concurrency needs at least one count\n");
    return 2;
}

// Whether the streams sample: a sampling flag given, and not one that leaves them greedy.
static bool sampled(const bn_run_flags *f) { return f->sampling_given && !bn_sampling_is_greedy(&f->sampling); }

// A float flag for the JSON, as it was typed (0.8, not 0.800000011920929).
static double typed(float x) { return round((double)x * 1e6) / 1e6; }

static void run_point(bn_engine *e, const bn_engine *draft, const bn_run_flags *f, const char *schema,
                      const char *backend, const int32_t *prompt, size_t n_prompt, point *pt) {
    bn_batch_params bp = {.session = f->session, .n_slots = pt->streams};
    bp.session.backend = backend;
    // A context just long enough keeps the KV cache of many streams small.
    if (!bp.session.n_ctx) bp.session.n_ctx = (int)n_prompt + f->n_predict + 1;
    bn_batch *b;
    bn_error err;
    if (bn_batch_create(e, &bp, &b, &err)) {
        snprintf(pt->note, sizeof pt->note, "skipped: %.280s", err.msg);
        return;
    }
    bn_session_params dp = bp.session;
    dp.n_ctx = 0; // the batch's, or the draft model's where shorter
    if ((f->lookup > 0 && bn_batch_set_lookup(b, f->lookup, &err)) ||
        (draft && bn_batch_set_draft(b, draft, &dp, f->draft, f->draft_p_min, &err)))
        goto fail;
    bn_request r = {.prompt = prompt, .n_prompt = n_prompt, .max_tokens = f->n_predict,
                    .sampling = sampled(f) ? f->sampling : bn_sampling_greedy(), .json_schema = schema};
    for (int i = 0; i < pt->streams; i++) {
        r.sampling.seed = f->sampling.seed + (uint64_t)i;
        if (bn_batch_add(b, &r, &err) < 0) goto fail;
    }
    int started = 0, done = 0;
    const double t0 = bn_now_ms();
    double t_first = t0;
    while (done < pt->streams) {
        const bn_batch_event *ev;
        int n;
        const bool decoding = started == pt->streams; // every stream past its prompt
        if (bn_batch_step(b, &ev, &n, &err)) goto fail;
        pt->steps += decoding;
        for (int i = 0; i < n; i++) {
            if (ev[i].n_gen == 1 && ++started == pt->streams) t_first = bn_now_ms();
            pt->decode_tokens += decoding;
            if (ev[i].done) bn_batch_remove(b, ev[i].slot), done++;
        }
    }
    pt->prefill_ms = t_first - t0;
    pt->decode_ms = bn_now_ms() - t_first;
    pt->tok_s = bn_per_second(pt->decode_tokens, pt->decode_ms);
    pt->ms_per_step = pt->steps ? pt->decode_ms / pt->steps : 0;
    pt->drafts = bn_batch_lookup_stats(b);
    if (bn_batch_draft_note(b)) { // the figures would be those of no draft model
        snprintf(err.msg, sizeof err.msg, "%s", bn_batch_draft_note(b));
        goto fail;
    }
    pt->ran = true;
    snprintf(pt->note, sizeof pt->note, "%s", bn_batch_backend_note(b));
    bn_batch_free(b);
    return;
fail:
    snprintf(pt->note, sizeof pt->note, "failed: %.280s", err.msg);
    bn_batch_free(b);
}

// The smallest count within SATURATED of the best rate; 0 when none ran.
static int saturation(const point *pts, int n) {
    double best = 0;
    for (int i = 0; i < n; i++)
        if (pts[i].ran && pts[i].tok_s > best) best = pts[i].tok_s;
    for (int i = 0; i < n; i++)
        if (pts[i].ran && pts[i].tok_s >= SATURATED * best) return pts[i].streams;
    return 0;
}

int bn_bench_concurrency(bn_engine *e, const bn_engine *draft, const bn_run_flags *f, const char *schema,
                         const int *counts, int n_counts, const int32_t *prompt, size_t n_prompt) {
    const char *backends[] = {"cpu", "cuda"}; // not the slow reference (see cmd_bench.c)
    FILE *out = f->json ? stderr : stdout; // --json: stdout is the JSON document alone
    cJSON *doc = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(doc, "concurrency");
    cJSON_AddBoolToObject(doc, "sampled", sampled(f));
    if (sampled(f)) {
        cJSON *s = cJSON_AddObjectToObject(doc, "sampling");
        cJSON_AddNumberToObject(s, "temperature", typed(f->sampling.temperature));
        cJSON_AddNumberToObject(s, "top_k", f->sampling.top_k);
        cJSON_AddNumberToObject(s, "top_p", typed(f->sampling.top_p));
        cJSON_AddNumberToObject(s, "min_p", typed(f->sampling.min_p));
        cJSON_AddNumberToObject(s, "repeat_penalty", typed(f->sampling.repeat_penalty));
        cJSON_AddNumberToObject(s, "frequency_penalty", typed(f->sampling.frequency_penalty));
        cJSON_AddNumberToObject(s, "presence_penalty", typed(f->sampling.presence_penalty));
        cJSON_AddNumberToObject(s, "repeat_last_n", f->sampling.repeat_last_n);
        cJSON_AddNumberToObject(s, "logit_biases", (double)f->sampling.n_logit_bias);
        cJSON_AddNumberToObject(s, "seed_base", (double)f->sampling.seed); // stream i: seed_base + i
    } else {
        cJSON_AddNullToObject(doc, "sampling");
    }
    bool any = false, gpu_missing = false;
    if (sampled(f))
        fprintf(out, "bench --concurrency: %s, prompt \"%s\" (%zu tokens), %d tokens per stream, sampled (temperature "
                     "%g, top-k %d, top-p %g, min-p %g, repeat penalty %g, frequency penalty %g, presence penalty "
                     "%g over %d tokens, %zu logit biases)\n",
                f->model, f->prompt, n_prompt, f->n_predict, f->sampling.temperature, f->sampling.top_k,
                f->sampling.top_p, f->sampling.min_p, f->sampling.repeat_penalty, f->sampling.frequency_penalty,
                f->sampling.presence_penalty, f->sampling.repeat_last_n, f->sampling.n_logit_bias);
    else
        fprintf(out, "bench --concurrency: %s, prompt \"%s\" (%zu tokens), %d greedy tokens per stream\n",
                f->model, f->prompt, n_prompt, f->n_predict);
    cJSON_AddBoolToObject(doc, "json_schema", schema != NULL);
    const bool drafts = draft || f->lookup > 0;
    if (draft) {
        cJSON *d = cJSON_AddObjectToObject(doc, "draft_model");
        cJSON_AddStringToObject(d, "path", f->model_draft);
        cJSON_AddNumberToObject(d, "draft_max", f->draft);
        cJSON_AddNumberToObject(d, "p_min", typed(f->draft_p_min));
        fprintf(out, "draft model %s: up to %d tokens a pass, p-min %g\n", f->model_draft, f->draft,
                (double)f->draft_p_min);
    } else if (f->lookup > 0) {
        cJSON_AddNumberToObject(doc, "lookup", f->lookup);
        fprintf(out, "prompt lookup: up to %d tokens a pass\n", f->lookup);
    }
    if (schema)
        fprintf(out, "every reply held to the --json-schema (a stream ends when its value is whole; each step "
                     "masks every stream's row)%s\n",
                sampled(f) ? "" : "; greedy streams write the same text, so all but one row a step come from the "
                                  "mask cache: a best case (--temp gives streams of their own)");
    fprintf(out, "%-8s %8s %12s %12s %13s %12s%s\n", "backend", "streams", "prefill ms", "decode ms",
            "ms/step", "tok/s (all)", drafts ? "   drafted    taken" : "");
    for (size_t k = 0; k < sizeof backends / sizeof backends[0]; k++) {
        point pts[BN_MAX_COUNTS] = {{0}};
        for (int i = 0; i < n_counts; i++) {
            pts[i].streams = counts[i];
            run_point(e, draft, f, schema, backends[k], prompt, n_prompt, &pts[i]);
            if (!pts[i].ran) {
                fprintf(out, "%-8s %8d %s\n", backends[k], counts[i], pts[i].note);
                if (!strcmp(backends[k], "cuda") && bn_bench_gpu_required()) {
                    fprintf(stderr, "error: BITNET_REQUIRE_GPU=1 and cuda did not run %d streams: %s\n", counts[i],
                            pts[i].note);
                    gpu_missing = true;
                }
                if (i == 0) break; // the backend cannot run here
                continue;
            }
            any = true;
            fprintf(out, "%-8s %8d %12.1f %12.1f %13.2f %12.1f", backends[k], counts[i], pts[i].prefill_ms,
                    pts[i].decode_ms, pts[i].ms_per_step, pts[i].tok_s);
            if (drafts) fprintf(out, " %9" PRIu64 " %8" PRIu64, pts[i].drafts.drafted, pts[i].drafts.accepted);
            fputc('\n', out);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "backend", backends[k]);
            cJSON_AddNumberToObject(o, "streams", counts[i]);
            cJSON_AddNumberToObject(o, "prefill_ms", pts[i].prefill_ms);
            cJSON_AddNumberToObject(o, "decode_ms", pts[i].decode_ms);
            cJSON_AddNumberToObject(o, "decode_tokens", pts[i].decode_tokens);
            cJSON_AddNumberToObject(o, "ms_per_step", pts[i].ms_per_step);
            cJSON_AddNumberToObject(o, "tokens_per_s", pts[i].tok_s);
            if (drafts) {
                cJSON_AddNumberToObject(o, "drafted", (double)pts[i].drafts.drafted);
                cJSON_AddNumberToObject(o, "taken", (double)pts[i].drafts.accepted);
                cJSON_AddNumberToObject(o, "passes", (double)pts[i].drafts.passes);
            }
            cJSON_AddItemToArray(arr, o);
        }
        const int sat = saturation(pts, n_counts);
        if (sat) {
            fprintf(out, "%s: aggregate decode saturates at %d streams (the first within 10%% of the best)\n",
                    backends[k], sat);
            cJSON_AddNumberToObject(cJSON_AddObjectToObject(doc, backends[k]), "saturates_at", sat);
        }
    }
    if (f->json) bn_print_json(doc, true);
    else cJSON_Delete(doc);
    if (!any) fprintf(stderr, "error: no backend could run\n");
    return any && !gpu_missing ? 0 : 1;
}
