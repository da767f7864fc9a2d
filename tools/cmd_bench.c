// cmd_bench.c - `bitnet-gpu bench`: the backend comparison. Runs the same
// greedy decode (default: 4 tokens of "2+2=") on the CPU and CUDA backends, where
// this build and machine can run them (not the slow reference backend, see
// below), and prints a table plus JSON: speed, and whether the backends compute
// the same thing.
// That is not "the same tokens": on a random full-depth model one int8 code that
// rounds the other way is amplified through the layers, and two correct backends
// part. So the backends are compared by the reference's margins (bench_compare.h):
// the reference (the first that runs: the CPU) decodes greedily, every other
// backend and every other CPU kernel set this machine runs is fed its tokens, and
// bench fails (exit 1, one `error:` line) only when one picks another token where
// the reference's top-1 leads its top-2 by a clear margin, or, on a calm model
// (make-model --calm), when its logits leave the calm class's bound.
// With -r N each backend runs N times on one session: the first run is cold
// (weights mapped in on first touch), the table reports the best warm prefill
// and the best ms/token, and every run must give the same tokens.
// For a backend that measures its read bandwidth (the CPU) it does so right after
// its runs and reports decode against the roofline: the bytes a decode step reads,
// as that backend holds the weights, over that bandwidth.
// BITNET_BENCH_CPU_SETS=0 leaves the CPU's other kernel sets out of the comparison.
// With --json, stdout is one JSON document and the table goes to stderr. With
// BITNET_REQUIRE_GPU=1 (scripts/gpu-check.sh), a CUDA backend that did not run
// fails the bench (bn_bench_gpu_required).
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "bench_compare.h"
#include "bench_concurrency.h"
#include "clock.h"
#include "cli.h"
#include "commands.h"
#include "default_model.h"
#include "engine_internal.h" // the engine's model, for the comparison on the backend interface
#include "run.h"

#define MAX_TOKENS 64

typedef struct {
    const char *backend;
    const char *cpu_kernels; // the CPU kernel set that ran; NULL for other backends
    bool ran;
    char note[320];
    double load_ms, backend_ms, first_token_ms; // model file; backend create; start to first token
    double prefill_ms, ms_per_token, tok_s;
    double prefill_warm_ms; // best prefill after the first run (-r > 1), else 0
    uint64_t peak_rss, backend_bytes;
    uint64_t decode_bytes;             // weights read per decode step
    double read_gbs, roofline_ms;      // measured after the runs; 0 where the backend cannot say
    int32_t tokens[MAX_TOKENS];
    int n_tokens;
} bench_row;

static int collect(void *user, int32_t id, const char *text, size_t len) {
    (void)text, (void)len;
    bench_row *row = user;
    if (id >= 0 && row->n_tokens < MAX_TOKENS) row->tokens[row->n_tokens++] = id;
    return 0;
}

static void run_backend(bn_engine *e, const bn_run_flags *f, int reps, const int32_t *prompt,
                        size_t n_prompt, bench_row *row) {
    bn_session_params sp = f->session;
    sp.backend = row->backend;
    bn_session *s = NULL;
    bn_error err;
    double t0 = bn_now_ms();
    if (bn_session_create(e, &sp, &s, &err)) {
        snprintf(row->note, sizeof row->note, "skipped: %.280s", err.msg);
        return;
    }
    bn_sampling greedy = bn_sampling_greedy();
    bn_timings t;
    if (bn_session_generate(s, prompt, n_prompt, f->n_predict, &greedy, collect, row, &t, &err)) {
        snprintf(row->note, sizeof row->note, "failed: %.280s", err.msg);
        goto done;
    }
    row->load_ms = bn_engine_load_ms(e);
    row->backend_ms = (bn_now_ms() - t0) - t.prefill_ms - t.decode_ms;
    row->first_token_ms = row->load_ms + row->backend_ms + t.prefill_ms;
    row->prefill_ms = t.prefill_ms;
    double best_decode = t.decode_ms;
    for (int rep = 1; rep < reps; rep++) {
        bench_row again = {.n_tokens = 0};
        bn_session_reset(s);
        if (bn_session_generate(s, prompt, n_prompt, f->n_predict, &greedy, collect, &again, &t, &err)) {
            snprintf(row->note, sizeof row->note, "failed in run %d: %.260s", rep + 1, err.msg);
            goto done;
        }
        if (again.n_tokens != row->n_tokens ||
            memcmp(again.tokens, row->tokens, sizeof(int32_t) * (size_t)row->n_tokens)) {
            snprintf(row->note, sizeof row->note, "failed: run %d gave other tokens than run 1",
                     rep + 1);
            goto done;
        }
        if (rep == 1 || t.prefill_ms < row->prefill_warm_ms) row->prefill_warm_ms = t.prefill_ms;
        if (t.decode_ms < best_decode) best_decode = t.decode_ms;
    }
    t.decode_ms = best_decode; // every run decodes the same number of tokens
    row->ran = true;
    row->ms_per_token = bn_ms_per_token(&t);
    row->tok_s = bn_per_second(bn_decode_steps(&t), t.decode_ms);
    row->backend_bytes = bn_session_backend_bytes(s);
    row->decode_bytes = bn_session_decode_bytes(s);
    row->read_gbs = bn_session_read_bandwidth_gbs(s);
    if (row->read_gbs > 0) row->roofline_ms = (double)row->decode_bytes / (row->read_gbs * 1e6);
    row->cpu_kernels = bn_session_cpu_kernels(s);
    snprintf(row->note, sizeof row->note, "%s", bn_session_backend_note(s));
done:
    row->peak_rss = bn_peak_rss_bytes();
    bn_session_free(s);
}

// The comparison (bench_compare.h): the reference's greedy trace, then every
// other backend and CPU kernel set fed its tokens.
#define MAX_COMPARED 4

typedef struct bench_cmp {
    char ref_label[48];
    int n_steps;
    double ms;
    bn_cmp_entry e[MAX_COMPARED];
    int n;
} bench_cmp;

// Whether the CPU's other kernel sets are compared too: not with
// BITNET_BENCH_CPU_SETS=0, as gpu-check.sh sets it, where the GPU's minutes are
// for the GPU (the scalar set alone takes tens of seconds at the 2B-4T shape) and
// the tests hold the sets to one another on any machine.
static bool compares_cpu_sets(void) {
    const char *v = getenv("BITNET_BENCH_CPU_SETS");
    return !v || strcmp(v, "0") != 0;
}

static void label_of(char *buf, size_t n, const char *backend, const char *kernels) {
    if (kernels) snprintf(buf, n, "%s/%s", backend, kernels);
    else snprintf(buf, n, "%s", backend);
}

// A backend for one trace: one sequence, room for the prompt and the steps.
static int open_backend(const bn_model *m, const bn_run_flags *f, const char *backend,
                        const char *kernels, int n_ctx, const bn_backend_ops **ops, bn_backend **be,
                        bn_error *err) {
    *ops = bn_backend_find(backend);
    if (!*ops) return bn_errorf(err, "backend '%s' is not compiled in", backend);
    if ((*ops)->probe && (*ops)->probe(err)) return -1;
    bn_backend_config cfg = {.n_ctx = n_ctx,
                             .n_seq = 1,
                             .lm_head_q8 = f->session.lm_head_q8,
                             .cpu = {.n_threads = f->session.n_threads, .kernels = kernels}};
    return (*ops)->create(m, &cfg, be, err);
}

// Compares one backend (kernels: a CPU set, else NULL) with the reference trace.
static void compare_one(const bn_model *m, const bn_run_flags *f, const bench_row *ref_row,
                        const bn_trace *ref, const char *backend, const char *kernels,
                        const int32_t *prompt, int n_prompt, bn_cmp_entry *e) {
    memset(e, 0, sizeof *e);
    label_of(e->label, sizeof e->label, backend, kernels);
    float clear, bound;
    e->class_name = bn_cmp_class(m, ref_row->backend, ref_row->cpu_kernels, backend, kernels, &clear, &bound);
    bn_error err = {{0}};
    const bn_backend_ops *ops;
    bn_backend *be = NULL;
    // A kernel set this CPU lacks fails create, which says so.
    if (open_backend(m, f, backend, kernels, n_prompt + ref->n_steps - 1, &ops, &be, &err) ||
        bn_cmp_backend(ops, be, ref, prompt, n_prompt, clear, bound, &e->cmp, &err)) {
        snprintf(e->note, sizeof e->note, "not compared: %.290s", err.msg);
        if (be) ops->destroy(be);
        return;
    }
    ops->destroy(be);
    e->ran = true;
}

// Returns 0, or -1 with err set when the reference itself cannot run.
static int compare_backends(const bn_engine *eng, const bn_run_flags *f, const bench_row *rows,
                            int n_rows, const bench_row *ref_row, const int32_t *prompt,
                            size_t n_prompt, bench_cmp *out, bn_error *err) {
    const bn_model *m = eng->model;
    memset(out, 0, sizeof *out);
    const double t0 = bn_now_ms();
    label_of(out->ref_label, sizeof out->ref_label, ref_row->backend, ref_row->cpu_kernels);
    out->n_steps = f->n_predict > 0 ? f->n_predict : 1;
    const int np = (int)n_prompt;
    const bn_backend_ops *ops;
    bn_backend *be = NULL;
    bn_trace ref;
    if (open_backend(m, f, ref_row->backend, ref_row->cpu_kernels, np + out->n_steps - 1, &ops, &be,
                     err) ||
        bn_trace_run(ops, be, (int32_t)m->hp.n_vocab, prompt, np, out->n_steps, NULL, &ref, err)) {
        if (be) ops->destroy(be);
        return -1;
    }
    ops->destroy(be);
    // The CPU's other kernel sets (those this CPU lacks are listed, not compared)...
    if (!strcmp(ref_row->backend, "cpu") && compares_cpu_sets())
        for (const char *const *set = bn_cpu_kernel_sets; *set; set++)
            if (strcmp(*set, ref_row->cpu_kernels))
                compare_one(m, f, ref_row, &ref, "cpu", *set, prompt, np, &out->e[out->n++]);
    // ...and every other backend that ran.
    for (int i = 0; i < n_rows && out->n < MAX_COMPARED; i++)
        if (rows[i].ran && &rows[i] != ref_row)
            compare_one(m, f, ref_row, &ref, rows[i].backend, rows[i].cpu_kernels, prompt, np,
                        &out->e[out->n++]);
    bn_trace_free(&ref);
    out->ms = bn_now_ms() - t0;
    return 0;
}

static void print_json(const bench_row *rows, int n, bool same, const bench_cmp *cmp, int reps,
                       const int32_t *prompt, size_t n_prompt) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "reps", reps);
    bn_add_ids_json(o, "prompt_ids", prompt, n_prompt);
    cJSON *arr = cJSON_AddArrayToObject(o, "backends");
    for (int i = 0; i < n; i++) {
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "backend", rows[i].backend);
        cJSON_AddBoolToObject(b, "ran", rows[i].ran);
        cJSON_AddStringToObject(b, "note", rows[i].note);
        if (rows[i].cpu_kernels) cJSON_AddStringToObject(b, "cpu_kernels", rows[i].cpu_kernels);
        if (rows[i].ran) {
            cJSON_AddNumberToObject(b, "load_ms", rows[i].load_ms);
            cJSON_AddNumberToObject(b, "backend_ms", rows[i].backend_ms);
            cJSON_AddNumberToObject(b, "first_token_ms", rows[i].first_token_ms);
            cJSON_AddNumberToObject(b, "prefill_ms", rows[i].prefill_ms);
            if (rows[i].prefill_warm_ms > 0)
                cJSON_AddNumberToObject(b, "prefill_warm_ms", rows[i].prefill_warm_ms);
            cJSON_AddNumberToObject(b, "ms_per_token", rows[i].ms_per_token);
            cJSON_AddNumberToObject(b, "tokens_per_s", rows[i].tok_s);
            cJSON_AddNumberToObject(b, "peak_rss_bytes", (double)rows[i].peak_rss);
            cJSON_AddNumberToObject(b, "backend_bytes", (double)rows[i].backend_bytes);
            cJSON_AddNumberToObject(b, "decode_bytes", (double)rows[i].decode_bytes);
            if (rows[i].roofline_ms > 0) {
                cJSON_AddNumberToObject(b, "read_gbs", rows[i].read_gbs);
                cJSON_AddNumberToObject(b, "roofline_ms_per_token", rows[i].roofline_ms);
                cJSON_AddNumberToObject(b, "roofline_pct", 100.0 * rows[i].roofline_ms / rows[i].ms_per_token);
            }
            bn_add_ids_json(b, "tokens", rows[i].tokens, (size_t)rows[i].n_tokens);
        }
        cJSON_AddItemToArray(arr, b);
    }
    cJSON_AddBoolToObject(o, "same_tokens", same);
    if (cmp) {
        cJSON *c = cJSON_AddObjectToObject(o, "comparison");
        cJSON_AddStringToObject(c, "reference", cmp->ref_label);
        cJSON_AddNumberToObject(c, "steps", cmp->n_steps);
        cJSON_AddNumberToObject(c, "ms", cmp->ms);
        bool ok = true;
        cJSON *list = cJSON_AddArrayToObject(c, "backends");
        for (int i = 0; i < cmp->n; i++) {
            ok = ok && (!cmp->e[i].ran || bn_cmp_ok(&cmp->e[i].cmp));
            cJSON_AddItemToArray(list, bn_cmp_json(&cmp->e[i]));
        }
        cJSON_AddBoolToObject(c, "ok", ok);
    }
    bn_print_json(o, true);
}

static void print_table(FILE *out, const bn_run_flags *f, const bench_row *rows, int n_rows,
                        const bench_cmp *cmp, bool same, int reps, size_t n_prompt) {
    fprintf(out, "bench: %s, prompt \"%s\" (%zu tokens), %d greedy tokens", f->model, f->prompt,
            n_prompt, f->n_predict);
    if (reps > 1) fprintf(out, ", best of %d runs (prefill: first run, cold / best warm run)", reps);
    fprintf(out, "\n%-8s %8s %10s %12s %15s %12s %9s %12s  %s\n", "backend", "load ms", "backend ms",
            "1st token ms", "prefill ms", "ms/token", "tok/s", "peak RSS MB", "tokens");
    for (int i = 0; i < n_rows; i++) {
        const bench_row *r = &rows[i];
        if (!r->ran) {
            fprintf(out, "%-8s %s\n", r->backend, r->note);
            continue;
        }
        char prefill[32];
        if (reps > 1) snprintf(prefill, sizeof prefill, "%.1f / %.1f", r->prefill_ms, r->prefill_warm_ms);
        else snprintf(prefill, sizeof prefill, "%.2f", r->prefill_ms);
        fprintf(out, "%-8s %8.1f %10.1f %12.1f %15s %12.3f %9.1f %12.1f  [", r->backend, r->load_ms,
                r->backend_ms, r->first_token_ms, prefill, r->ms_per_token, r->tok_s, r->peak_rss / 1048576.0);
        for (int k = 0; k < r->n_tokens; k++) fprintf(out, k ? " %d" : "%d", r->tokens[k]);
        fprintf(out, "]\n");
    }
    const bench_row *cpu = &rows[0];
    if (cpu->ran && cpu->cpu_kernels) fprintf(out, "cpu kernels: %s\n", cpu->cpu_kernels);
    for (int i = 0; i < n_rows; i++) {
        const bench_row *r = &rows[i];
        if (r->roofline_ms > 0 && r->ms_per_token > 0)
            fprintf(out, "%s roofline: %.0f MB of weights per token / %.1f GB/s read bandwidth "
                    "(measured now) = %.2f ms/token; decode ran at %.0f%% of it\n",
                    r->backend, r->decode_bytes / 1e6, r->read_gbs, r->roofline_ms,
                    100.0 * r->roofline_ms / r->ms_per_token);
    }
    if (!cmp) return;
    fprintf(out, "compare: %d greedy steps of %s; every other backend%s fed its tokens (%.1f s)\n", cmp->n_steps,
            cmp->ref_label, compares_cpu_sets() ? " and CPU kernel set" : " (BITNET_BENCH_CPU_SETS=0: no other CPU set)",
            cmp->ms / 1000);
    for (int i = 0; i < cmp->n; i++) bn_cmp_print(out, cmp->ref_label, &cmp->e[i]);
    if (!same)
        fprintf(out, "note: the backends' greedy tokens differ; the comparison above says whether "
                     "anywhere the reference's margin is clear\n");
}

#define BENCH_FLAGS                                                                                       \
    (BN_FLAGS_PROMPT | BN_FLAGS_PREDICT | BN_FLAGS_JSON | BN_FLAGS_REPS | BN_FLAGS_CONCURRENCY |              \
     BN_FLAGS_SAMPLING | BN_FLAGS_JSON_SCHEMA | BN_FLAGS_LOOKUP | BN_FLAGS_DRAFT)
#define BENCH_SYNOPSIS                                                                                    \
    "[-m MODEL] [-t N] [-p PROMPT] [-n N] [-r REPS] [--concurrency 1,4,16,64 [--temp T ...] [-j SCHEMA] "   \
    "[--lookup N | -md FILE [--draft-max N]]] [--json]"

int bn_cmd_bench(int argc, char **argv) {
    bn_run_flags f;
    bool help;
    int rc = bn_parse_run_flags("bench", BENCH_FLAGS, BENCH_SYNOPSIS, argc, argv, &f, &help);
    if (rc || help) return rc;
    const int reps = f.reps;
    if (!f.model && !(f.model = bn_default_model("bench"))) return 2;
    int counts[BN_MAX_COUNTS], n_counts = 0;
    if (f.concurrency && bn_parse_counts(f.concurrency, counts, &n_counts)) return 2;
    // The comparison is of greedy traces; sampling flags are for the streams.
    const bool drafts = f.lookup > 0 || f.model_draft;
    if ((f.sampling_given || f.json_schema || drafts) && !f.concurrency) {
        fprintf(stderr, "error: bench takes %s only with --concurrency\n",
                f.sampling_given ? "sampling flags (--temp, --top-k, ...)"
                : f.json_schema  ? "--json-schema"
                                 : "--lookup and --model-draft");
        return 2;
    }
    char *schema = f.json_schema ? bn_json_schema_arg(f.json_schema) : NULL;
    if (f.json_schema && !schema) return 2;
    if (!f.prompt) f.prompt = "2+2=";
    if (f.n_predict < 0) f.n_predict = f.concurrency ? 16 : 4;
    if (f.n_predict > MAX_TOKENS) f.n_predict = MAX_TOKENS;

    bn_engine *e = NULL, *draft = NULL;
    bn_error err;
    const char *failed = bn_engine_load(f.model, f.tokenizer, &e, &err) || bn_run_prepare_engine(&f, e, &err) ? ""
                       : f.model_draft && bn_engine_load(f.model_draft, f.tokenizer, &draft, &err) ? "--model-draft: "
                                                                                                   : NULL;
    if (failed) {
        fprintf(stderr, "error: %s%s\n", failed, err.msg);
        bn_engine_free(e);
        free(schema);
        return 1;
    }
    int32_t *prompt = NULL;
    size_t n_prompt = 0;
    if (bn_engine_tokenize(e, f.prompt, bn_engine_add_bos(e), false, &prompt, &n_prompt, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        bn_engine_free(draft);
        bn_engine_free(e);
        free(schema);
        return 1;
    }

    if (f.concurrency) {
        rc = bn_bench_concurrency(e, draft, &f, schema, counts, n_counts, prompt, n_prompt);
        free(schema);
        free(prompt);
        bn_engine_free(draft);
        bn_engine_free(e);
        return rc;
    }

    // Not the reference backend (cpu/forward_ref.c): one scalar thread, one token at a
    // time, far too slow for the full-size models bench is for; test_reference holds
    // it to the CPU backend's scalar set bit for bit, which bench compares here.
    bench_row rows[] = {{.backend = "cpu"}, {.backend = "cuda"}};
    int n_rows = (int)(sizeof rows / sizeof rows[0]);
    for (int i = 0; i < n_rows; i++) run_backend(e, &f, reps, prompt, n_prompt, &rows[i]);

    // The greedy tokens of every backend that ran, against the first one's (reported
    // only: see the comparison).
    bool same = true;
    const bench_row *ref = NULL;
    for (int i = 0; i < n_rows; i++) {
        if (!rows[i].ran) continue;
        if (!ref) ref = &rows[i];
        else same = same && rows[i].n_tokens == ref->n_tokens &&
                    !memcmp(rows[i].tokens, ref->tokens, sizeof(int32_t) * (size_t)ref->n_tokens);
    }
    bench_cmp cmp;
    bool compared = false;
    if (ref) {
        if (compare_backends(e, &f, rows, n_rows, ref, prompt, n_prompt, &cmp, &err)) rc = 1;
        else compared = true;
    }

    // --json: stdout is the JSON document alone, the table goes to stderr.
    print_table(f.json ? stderr : stdout, &f, rows, n_rows, compared ? &cmp : NULL, same, reps, n_prompt);
    if (f.json) print_json(rows, n_rows, same, compared ? &cmp : NULL, reps, prompt, n_prompt);
    if (!ref) fprintf(stderr, "error: no backend could run\n");
    else if (!compared) fprintf(stderr, "error: compare: the reference %s: %s\n", ref->backend, err.msg);
    else rc = bn_cmp_verdict(stderr, cmp.ref_label, cmp.e, cmp.n);
    for (int i = 0; i < n_rows; i++)
        if (!strcmp(rows[i].backend, "cuda") && !rows[i].ran && bn_bench_gpu_required()) {
            fprintf(stderr, "error: BITNET_REQUIRE_GPU=1 and cuda did not run: %s\n", rows[i].note);
            rc = 1;
        }
    free(prompt);
    bn_engine_free(e);
    return ref && compared ? rc : 1;
}
