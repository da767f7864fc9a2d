// bench_compare.c - bench's backend comparison by the reference's margins
// (bench_compare.h says the rule and why).
#include "bench_compare.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "devtools.h" // BN_SYNTH_CALM_KEY
#include "gguf.h"

// Argmax (the first of equal maxima, as bn_argmax) and the top-1 minus top-2 gap.
// NaN never wins; a row of NaNs gives id 0 and margin NaN.
static int32_t top2(const float *x, int32_t n, float *margin) {
    int32_t best = -1, second = -1;
    for (int32_t i = 0; i < n; i++) {
        if (isnan(x[i])) continue;
        if (best < 0 || x[i] > x[best]) {
            second = best;
            best = i;
        } else if (second < 0 || x[i] > x[second]) {
            second = i;
        }
    }
    *margin = best >= 0 && second >= 0 ? x[best] - x[second] : NAN;
    return best < 0 ? 0 : best;
}

void bn_trace_free(bn_trace *t) {
    free(t->ids);
    free(t->margin);
    free(t->logits);
    memset(t, 0, sizeof *t);
}

int bn_trace_run(const bn_backend_ops *ops, bn_backend *be, int32_t n_vocab, const int32_t *prompt,
                 int n_prompt, int n_steps, const bn_trace *force, bn_trace *out, bn_error *err) {
    memset(out, 0, sizeof *out);
    if (n_prompt < 1 || n_steps < 1 || (force && force->n_steps < n_steps))
        return bn_errorf(err, "compare: %d prompt tokens and %d steps (%d forced)", n_prompt, n_steps,
                         force ? force->n_steps : 0);
    out->n_vocab = n_vocab;
    out->ids = malloc(sizeof(int32_t) * (size_t)n_steps);
    out->margin = malloc(sizeof(float) * (size_t)n_steps);
    out->logits = malloc(sizeof(float) * (size_t)n_steps * (size_t)n_vocab);
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)n_prompt);
    if (!out->ids || !out->margin || !out->logits || !pos) {
        free(pos);
        bn_trace_free(out);
        return bn_errorf(err, "compare: out of memory for %d steps of %d logits", n_steps, n_vocab);
    }
    for (int i = 0; i < n_prompt; i++) pos[i] = i;
    int rc = 0;
    for (int s = 0; s < n_steps && rc == 0; s++) {
        float *row = out->logits + (size_t)s * (size_t)n_vocab;
        if (s == 0) {
            rc = ops->forward(be, prompt, pos, NULL, n_prompt, row, false, err);
        } else {
            const int32_t tok = force ? force->ids[s - 1] : out->ids[s - 1];
            const int32_t p = n_prompt + s - 1;
            rc = ops->forward(be, &tok, &p, NULL, 1, row, false, err);
        }
        if (rc == 0) out->ids[s] = top2(row, n_vocab, &out->margin[s]);
        out->n_steps = s + 1;
    }
    free(pos);
    if (rc) bn_trace_free(out);
    return rc ? -1 : 0;
}

void bn_cmp_traces(const bn_trace *ref, const bn_trace *other, float clear, float bound, bn_cmp *c) {
    memset(c, 0, sizeof *c);
    c->clear = clear;
    c->max_diff_bound = bound;
    c->n_steps = ref->n_steps < other->n_steps ? ref->n_steps : other->n_steps;
    c->max_diff_step = -1;
    c->max_diff_id = -1;
    c->min_margin = INFINITY;
    const int32_t V = ref->n_vocab;
    for (int s = 0; s < c->n_steps; s++) {
        const float *r = ref->logits + (size_t)s * (size_t)V, *o = other->logits + (size_t)s * (size_t)V;
        float diff = 0;
        int32_t diff_id = 0;
        for (int32_t i = 0; i < V; i++) {
            float d = fabsf(o[i] - r[i]);
            if (isnan(d)) d = INFINITY; // a NaN on one side only is as far off as it gets
            if (d > diff) diff = d, diff_id = i;
        }
        if (c->max_diff_step < 0 || diff > c->max_diff)
            c->max_diff = diff, c->max_diff_step = s, c->max_diff_id = diff_id;
        const float margin = ref->margin[s];
        if (margin < c->min_margin) c->min_margin = margin;
        const bool clear_here = margin > clear; // false for NaN
        c->n_clear += clear_here;
        if (other->ids[s] == ref->ids[s]) continue;
        bn_cmp_step st = {.step = s,
                          .ref_id = ref->ids[s],
                          .id = other->ids[s],
                          .margin = margin,
                          .ref_gap = r[ref->ids[s]] - r[other->ids[s]],
                          .diff = diff,
                          .departure = clear_here};
        c->n_differ++;
        if (c->n_listed < BN_CMP_MAX_LISTED) c->listed[c->n_listed++] = st;
        if (st.departure && c->n_departures++ == 0) c->first_departure = st;
    }
}

int bn_cmp_backend(const bn_backend_ops *ops, bn_backend *be, const bn_trace *ref, const int32_t *prompt,
                   int n_prompt, float clear, float bound, bn_cmp *out, bn_error *err) {
    bn_trace t;
    if (bn_trace_run(ops, be, ref->n_vocab, prompt, n_prompt, ref->n_steps, ref, &t, err)) return -1;
    bn_cmp_traces(ref, &t, clear, bound, out);
    bn_trace_free(&t);
    return 0;
}

void bn_cmp_class_rule(const char *class_name, float *clear, float *bound) {
    const bool exact = !strcmp(class_name, "exact"), calm = !strcmp(class_name, "calm");
    if (clear) *clear = exact ? BN_CMP_CLEAR_EXACT : calm ? BN_CMP_CLEAR_CALM : BN_CMP_CLEAR_ROUNDING;
    if (bound) *bound = calm ? BN_CMP_CALM_MAX_DIFF : 0.0f;
}

static bool avx512_silu(const char *kernels) { return !strcmp(kernels, "avx512") || !strcmp(kernels, "amx"); }

const char *bn_cmp_class(const bn_model *m, const char *ref_backend, const char *ref_kernels,
                         const char *backend, const char *kernels, float *clear, float *bound) {
    // Only the AVX-512 SiLU exp (the avx512 and amx sets') differs from the others'
    // (kernels.h); a family without SiLU never calls it.
    const bool cpu_pair = !strcmp(ref_backend, "cpu") && !strcmp(backend, "cpu") && ref_kernels && kernels;
    const bool exact = cpu_pair && (!m->hp.ffn_silu || avx512_silu(ref_kernels) == avx512_silu(kernels));
    bool calm = false; // stays false when the key is absent or not a bool
    if (!exact && m->gguf) (void)bn_gguf_get_bool(m->gguf, BN_SYNTH_CALM_KEY, &calm, NULL);
    const char *name = exact ? "exact" : calm ? "calm" : "rounding";
    bn_cmp_class_rule(name, clear, bound);
    return name;
}

float bn_cmp_diff_bound(const char *class_name) {
    float bound;
    bn_cmp_class_rule(class_name, NULL, &bound);
    return bound;
}

void bn_cmp_print(FILE *out, const char *ref_label, const bn_cmp_entry *e) {
    if (!e->ran) {
        fprintf(out, "compare %s: %s\n", e->label, e->note);
        return;
    }
    const bn_cmp *c = &e->cmp;
    fprintf(out, "compare %s vs %s (%s: clear margin > %g): %s; %d of %d steps clear; argmax "
                 "differs at %d, %d of them clear; max |logit diff| %.3g (step %d, token %d)",
            e->label, ref_label, e->class_name, (double)c->clear, bn_cmp_ok(c) ? "ok" : "FAILED",
            c->n_clear, c->n_steps, c->n_differ, c->n_departures, (double)c->max_diff,
            c->max_diff_step, c->max_diff_id);
    if (c->max_diff_bound > 0)
        fprintf(out, ", %s %g", bn_cmp_over_bound(c) ? "over its bound" : "within its bound",
                (double)c->max_diff_bound);
    fprintf(out, "\n");
    for (int i = 0; i < c->n_listed; i++) {
        const bn_cmp_step *s = &c->listed[i];
        fprintf(out, "  step %d: %s %d, %s %d; reference margin %.4g (its gap to %d: %.4g), max "
                     "|logit diff| %.3g: %s\n",
                s->step, ref_label, s->ref_id, e->label, s->id, (double)s->margin, s->id,
                (double)s->ref_gap, (double)s->diff,
                s->departure ? "a clear margin, FAILED" : "a near tie, allowed");
    }
    if (c->n_differ > c->n_listed) fprintf(out, "  ... and %d more steps\n", c->n_differ - c->n_listed);
}

int bn_cmp_verdict(FILE *out, const char *ref_label, const bn_cmp_entry *e, int n) {
    int first = -1, n_failed = 0;
    for (int i = 0; i < n; i++)
        if (e[i].ran && !bn_cmp_ok(&e[i].cmp)) {
            if (first < 0) first = i;
            n_failed++;
        }
    if (first < 0) return 0;
    const bn_cmp *c = &e[first].cmp;
    const bn_cmp_step *s = &c->first_departure;
    if (c->n_departures)
        fprintf(out, "error: %s departs from the reference %s at step %d: token %d where the reference "
                     "has %d by a clear margin of %.4g (> %g); %d such step%s",
                e[first].label, ref_label, s->step, s->id, s->ref_id, (double)s->margin, (double)c->clear,
                c->n_departures, c->n_departures == 1 ? "" : "s");
    else
        fprintf(out, "error: %s differs from the reference %s by %.3g in the logits (step %d, token %d), "
                     "more than the %g a correct backend stays within on this %s model",
                e[first].label, ref_label, (double)c->max_diff, c->max_diff_step, c->max_diff_id,
                (double)c->max_diff_bound, e[first].class_name);
    if (n_failed > 1) fprintf(out, "; %d other backends or kernel sets depart too", n_failed - 1);
    fprintf(out, "\n");
    return 1;
}

// JSON has no infinity or NaN: those show as null.
static void add_number(cJSON *o, const char *key, double v) {
    if (isfinite(v)) cJSON_AddNumberToObject(o, key, v);
    else cJSON_AddNullToObject(o, key);
}

cJSON *bn_cmp_json(const bn_cmp_entry *e) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "backend", e->label);
    cJSON_AddBoolToObject(o, "ran", e->ran);
    if (!e->ran) {
        cJSON_AddStringToObject(o, "note", e->note);
        return o;
    }
    const bn_cmp *c = &e->cmp;
    cJSON_AddStringToObject(o, "class", e->class_name);
    cJSON_AddBoolToObject(o, "ok", bn_cmp_ok(c));
    cJSON_AddNumberToObject(o, "clear_margin", c->clear);
    cJSON_AddNumberToObject(o, "steps", c->n_steps);
    cJSON_AddNumberToObject(o, "clear_steps", c->n_clear);
    cJSON_AddNumberToObject(o, "differ_steps", c->n_differ);
    cJSON_AddNumberToObject(o, "departures", c->n_departures);
    add_number(o, "max_logit_diff", c->max_diff);
    if (c->max_diff_bound > 0) add_number(o, "max_logit_diff_bound", c->max_diff_bound);
    cJSON_AddNumberToObject(o, "max_diff_step", c->max_diff_step);
    cJSON_AddNumberToObject(o, "max_diff_token", c->max_diff_id);
    add_number(o, "min_reference_margin", c->min_margin);
    cJSON *arr = cJSON_AddArrayToObject(o, "differ");
    for (int i = 0; i < c->n_listed; i++) {
        const bn_cmp_step *s = &c->listed[i];
        cJSON *d = cJSON_CreateObject();
        cJSON_AddNumberToObject(d, "step", s->step);
        cJSON_AddNumberToObject(d, "reference_token", s->ref_id);
        cJSON_AddNumberToObject(d, "token", s->id);
        add_number(d, "reference_margin", s->margin);
        add_number(d, "reference_gap", s->ref_gap);
        add_number(d, "max_logit_diff", s->diff);
        cJSON_AddBoolToObject(d, "departure", s->departure);
        cJSON_AddItemToArray(arr, d);
    }
    return o;
}
