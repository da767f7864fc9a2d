// bench_compare.h - how `bitnet-gpu bench` compares backends (and CPU kernel sets):
// by the reference's margins, not by whole greedy sequences.
//
// On a random full-depth model two correct backends need not pick the same greedy
// tokens: an int8 activation code that rounds the other way (a float sum in another
// order lands on the other side of a .5) is amplified through every layer, and the
// decodes part. So the comparison is:
//   1. the reference (the first backend that runs: the CPU) decodes greedily and
//      keeps every step's logits (bn_trace_run with force NULL);
//   2. each other backend or kernel set is fed the reference's tokens (teacher
//      forcing: one divergence does not cascade) and its logits kept the same way;
//   3. at each step (bn_cmp_traces), its argmax must be the reference's wherever
//      the reference's top-1 minus top-2 logit (its margin) is clear: above the
//      threshold of that pair's class (below). A different argmax there is a
//      departure, and fails bench; one at a smaller margin is reported with it.
//      The largest logit difference (which step, which token) is reported too.
// Three classes, by what the arithmetic promises:
//   exact     CPU kernel sets whose activations are bit-identical to the
//             reference's (kernels.h: scalar and AVX2; AVX-512 too, but not on a
//             family with a SiLU gate: its exp differs by an ulp): only the LM head's
//             f16 dot products are summed in other orders, so logits differ by
//             at most 3.4e-5 (measured) and a margin above BN_CMP_CLEAR_EXACT is
//             clear.
//   rounding  another backend (CUDA), or a kernel set that may round an int8
//             code the other way: logits may differ by what a flipped code grows
//             into through the layers, so only a margin above BN_CMP_CLEAR_ROUNDING
//             is clear. Measured on the random 2B-4T model with a CPU kernel set
//             whose quantizer inputs move by 1 to 8 ulps (the emulated rounding of
//             tests/test_bench_rule.c, there at 1 ulp):
//             the argmax moved only at margins <= 0.61, and no token within 2.5
//             of the top gained more than 1.33 on it.
//   calm      the rounding class on a calm model (make-model --calm: residual
//             branches damped, so a flipped code does not grow through the
//             layers; the file says so with BN_SYNTH_CALM_KEY): a margin above
//             BN_CMP_CLEAR_CALM is clear, and a logit difference anywhere above
//             BN_CMP_CALM_MAX_DIFF fails too. Measured on the calm 2B-4T (untied
//             head) with the emulated rounding at 1 and 8 ulps, 3 prompts x 64
//             steps: logits within 0.039, the argmax moved only at margins <=
//             0.008, and 85% of the steps have a margin above 0.1. Kernels broken
//             on purpose (tests/test_bench_rule.c) move its logits by 0.19 (row 0
//             of every matrix negated) and 0.31-0.56 (attention without the newest
//             key); one off by one in row 0 (0.037) hides in the rounding.
// README.md's `bench` paragraph has the measurements on every model.
#ifndef BN_BENCH_COMPARE_H
#define BN_BENCH_COMPARE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "backend.h"
#include "model.h"

// The margins above which a different argmax is a departure (see above).
#define BN_CMP_CLEAR_EXACT 1e-3f
#define BN_CMP_CLEAR_ROUNDING 1.5f
#define BN_CMP_CLEAR_CALM 0.1f
#define BN_CMP_CALM_MAX_DIFF 0.1f // 2.5x the 0.039 measured (above)

// Differing steps listed (the count goes on past it).
#define BN_CMP_MAX_LISTED 16

// A decode: step 0 is the prompt's last token's logits, step s > 0 the logits
// after feeding token s - 1 (greedy: the run's own argmax; forced: another trace's).
typedef struct bn_trace {
    int32_t n_vocab;
    int n_steps;
    int32_t *ids;   // [n_steps] the argmax of each step
    float *margin;  // [n_steps] its top-1 minus top-2 logit
    float *logits;  // [n_steps][n_vocab]
} bn_trace;

// Runs prompt[0..n_prompt) then n_steps - 1 single tokens through be (created with
// n_ctx >= n_prompt + n_steps - 1, n_seq 1, empty): greedy when force is NULL, else
// feeding force->ids (n_steps <= force->n_steps). Returns 0, or -1 with err set
// (out is then freed).
int bn_trace_run(const bn_backend_ops *ops, bn_backend *be, int32_t n_vocab, const int32_t *prompt,
                 int n_prompt, int n_steps, const bn_trace *force, bn_trace *out, bn_error *err);
void bn_trace_free(bn_trace *t);

// One step where the two argmaxes differ.
typedef struct bn_cmp_step {
    int step;
    int32_t ref_id, id; // the reference's argmax, the other's
    float margin;       // the reference's top-1 minus top-2 logit
    float ref_gap;      // the reference's logit of ref_id minus its logit of id (>= margin)
    float diff;         // max |logit difference| at this step
    bool departure;     // margin > clear: a failure
} bn_cmp_step;

typedef struct bn_cmp {
    float clear;               // the class's threshold
    int n_steps;
    int n_clear;               // steps whose reference margin is clear (the steps checked)
    int n_differ;              // steps whose argmax differs
    int n_departures;          // ... at a clear margin
    bn_cmp_step listed[BN_CMP_MAX_LISTED]; // the first n_listed differing steps
    int n_listed;
    bn_cmp_step first_departure; // valid when n_departures > 0
    float max_diff;            // max |logit difference| over all steps and tokens
    int max_diff_step;
    int32_t max_diff_id;
    float min_margin;          // the reference's smallest margin
    float max_diff_bound;      // 0: none; else a larger (or NaN) max_diff fails too (calm)
} bn_cmp;

// Compares other (forced on ref's tokens) with ref step by step, under a class's
// clear margin and logit bound (bn_cmp_class_rule).
void bn_cmp_traces(const bn_trace *ref, const bn_trace *other, float clear, float bound, bn_cmp *out);

// Teacher-forces be on ref's tokens and compares: bn_trace_run + bn_cmp_traces.
int bn_cmp_backend(const bn_backend_ops *ops, bn_backend *be, const bn_trace *ref, const int32_t *prompt,
                   int n_prompt, float clear, float bound, bn_cmp *out, bn_error *err);

static inline bool bn_cmp_over_bound(const bn_cmp *c) {
    return c->max_diff_bound > 0 && !(c->max_diff <= c->max_diff_bound);
}
static inline bool bn_cmp_ok(const bn_cmp *c) { return c->n_departures == 0 && !bn_cmp_over_bound(c); }

// What a class holds a backend to: its clear margin, and the bound on max |logit
// difference| (bn_cmp.max_diff_bound: 0, none, but for calm).
void bn_cmp_class_rule(const char *class_name, float *clear, float *bound);
// The class of comparing backend (kernels: its CPU kernel set, NULL for another
// backend) with the reference on model m: "exact", "rounding" or "calm" (above),
// and its rule in *clear and *bound (may be NULL).
const char *bn_cmp_class(const bn_model *m, const char *ref_backend, const char *ref_kernels,
                         const char *backend, const char *kernels, float *clear, float *bound);
float bn_cmp_diff_bound(const char *class_name); // bn_cmp_class_rule's bound

// One backend or kernel set compared with the reference. label is what the table
// and the error line call it: "cuda", "cpu/scalar" ...
typedef struct bn_cmp_entry {
    char label[48];
    const char *class_name; // "exact", "rounding", "calm"
    bool ran;               // false: note says why it was not compared
    char note[320];
    bn_cmp cmp;
} bn_cmp_entry;

// The table's lines for e: one per comparison, one per listed differing step.
void bn_cmp_print(FILE *out, const char *ref_label, const bn_cmp_entry *e);
// bench's verdict over n comparisons: 0 when no entry departs at a clear margin
// (or exceeds its logit bound); else exactly one `error:` line on out, naming the
// first failing entry (its step, both tokens, the margin; or its largest logit
// difference) and counting any others, and 1.
int bn_cmp_verdict(FILE *out, const char *ref_label, const bn_cmp_entry *e, int n);
// An entry as a JSON object (label, class, threshold, counts, listed steps).
cJSON *bn_cmp_json(const bn_cmp_entry *e);

#endif
