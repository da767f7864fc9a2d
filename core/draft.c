// draft.c - a draft model's drafts and their back-off (draft.h).
#include "draft.h"

#include <stdlib.h>
#include <string.h>

#include "argmax.h"

// Whether the probability of a row's likeliest token (its softmax over the
// row) is at least p_min: whether the softmax's denominator, the sum of
// e^(logit - best), is at most 1 / p_min. From a row, the sum stops as soon as
// it is over (bn_top_exp_sum), so a row under p_min, where a draft stops,
// usually costs a few terms.
static bool sure_enough(double exp_sum, float p_min) { return exp_sum <= 1.0 / p_min; }

static bool row_sure_enough(const float *row, int32_t n, float p_min) {
    return sure_enough(bn_top_exp_sum(row, n, row[bn_argmax(row, n)], 1.0 / p_min), p_min);
}

static void missed(bn_draft_backoff *b) {
    b->idle = b->misses < 4 ? 1 << b->misses : BN_DRAFT_IDLE_MAX;
    b->misses++;
}

void bn_draft_judge(bn_draft_backoff *b, bool gave_token) {
    if (gave_token) b->misses = 0;
    else missed(b);
}

int bn_draft_call_init(bn_draft_call *c, int cap, int max_runs, bool several_seqs, bn_error *err) {
    if (max_runs > BN_DRAFT_CALL_RUNS) max_runs = BN_DRAFT_CALL_RUNS;
    if (cap < max_runs) cap = max_runs; // a call of one token a sequence
    *c = (bn_draft_call){.cap = cap, .max_runs = max_runs};
    c->tok = malloc((size_t)cap * sizeof *c->tok);
    c->pos = malloc((size_t)cap * sizeof *c->pos);
    c->seq = several_seqs ? malloc((size_t)cap * sizeof *c->seq) : NULL;
    c->run_job = malloc((size_t)max_runs * sizeof *c->run_job);
    c->argmax = malloc((size_t)max_runs * sizeof *c->argmax);
    c->top = malloc((size_t)max_runs * BN_TOP_MAX * sizeof *c->top);
    c->exp_sums = malloc((size_t)max_runs * sizeof *c->exp_sums);
    if (c->tok && c->pos && (c->seq || !several_seqs) && c->run_job && c->argmax && c->top && c->exp_sums) return 0;
    bn_draft_call_free(c);
    return bn_errorf(err, "out of memory for the draft model's calls");
}

void bn_draft_call_free(bn_draft_call *c) {
    free(c->tok);
    free(c->pos);
    free(c->seq);
    free(c->run_job);
    free(c->argmax);
    free(c->top);
    free(c->exp_sums);
    *c = (bn_draft_call){0};
}

// Sequence d keeps the start of its tokens that text shares, up to most of them.
static int keep_shared(bn_draft_seq *d, const int32_t *text, int most) {
    int k = 0;
    if (most > d->n_past) most = d->n_past;
    while (k < most && d->hist[k] == text[k]) k++;
    d->n_hist = d->n_past = k;
    return k;
}

// Readies job j's sequence for its draft, past its back-off and its sampler's
// copy: it keeps the start it shares with the text, short of the text's last
// token (fed again for its row), and takes the rest of the text to feed. A
// feed_only job keeps what it shares of all of the text and takes the rest.
static int begin_job(bn_draft_job *j, bn_error *err) {
    j->got = 0;
    j->tried = j->drafting = false;
    j->picker = NULL;
    if (j->feed_only) {
        bn_draft_seq *d = j->seq;
        if (j->n > d->n_ctx) return 0;
        const int k = keep_shared(d, j->text, j->n);
        memcpy(d->hist + k, j->text + k, (size_t)(j->n - k) * sizeof *j->text);
        d->n_hist = j->n;
        j->drafting = k < j->n;
        return 0;
    }
    if (j->backoff->idle > 0) {
        j->backoff->idle--;
        return 0;
    }
    j->tried = true;
    const bool sampled = !bn_sampler_is_greedy(j->smp);
    if (sampled && !*j->copy && bn_sampler_clone(j->smp, j->copy, err)) return -1;
    if (sampled) bn_sampler_set_rng(*j->copy, bn_sampler_rng(j->smp));
    j->picker = sampled ? *j->copy : NULL;
    bn_draft_seq *d = j->seq;
    const int k = keep_shared(d, j->text, j->n - 1);
    if (j->max > d->n_ctx - j->n + 1) j->max = d->n_ctx - j->n + 1; // the last drafted token is not fed
    if (j->max <= 0) return 0;
    memcpy(d->hist + k, j->text + k, (size_t)(j->n - k) * sizeof *j->text);
    d->n_hist = j->n;
    j->drafting = true;
    return 0;
}

// What the draft model's calls give back (as the batch's step_output).
enum { OUT_ROWS, OUT_ARGMAX, OUT_TOP };

static int call_output(const bn_opened *o, const bn_draft_job *jobs, int n_jobs, float p_min) {
    bool argmax = p_min <= 0 && o->ops->forward_argmax, top = o->ops->forward_top != NULL;
    for (int i = 0; i < n_jobs; i++) {
        const bn_sampler *p = jobs[i].drafting ? jobs[i].picker : NULL;
        argmax = argmax && !p;
        top = top && (!p || bn_sampler_takes_top(p)); // the likeliest token is the first entry
    }
    return argmax ? OUT_ARGMAX : top ? OUT_TOP : OUT_ROWS;
}

// Job j's next token from run r of the call's output (-1: it stops).
static int32_t pick(const bn_draft_call *c, int out, int r, const bn_draft_job *j, float p_min, float *row,
                    int32_t n_vocab) {
    const bn_draft_seq *d = j->seq;
    if (out == OUT_ARGMAX) return c->argmax[r];
    if (out == OUT_TOP) {
        if (p_min > 0 && !sure_enough(c->exp_sums[r], p_min)) return -1;
        bn_top *best = c->top + (size_t)r * BN_TOP_MAX;
        return j->picker ? bn_sampler_sample_top(j->picker, best, d->hist, (size_t)d->n_hist) : best[0].id;
    }
    if (p_min > 0 && !row_sure_enough(row, n_vocab, p_min)) return -1;
    return j->picker ? bn_sampler_sample(j->picker, row, d->hist, (size_t)d->n_hist) : bn_argmax(row, n_vocab);
}

// One call over the drafting jobs from *next on, as many whole runs as fit
// its room: each feeds what its sequence lacks and drafts its next token.
// Returns the runs (0: no job from *next on drafts), or -1 and err.
static int call_once(const bn_opened *o, int32_t n_vocab, bn_draft_call *c, bn_draft_job *jobs, int n_jobs,
                     int *next, int out, float p_min, float *rows, bn_error *err) {
    int n = 0, runs = 0;
    for (; *next < n_jobs && runs < c->max_runs; ++*next) {
        const bn_draft_job *j = &jobs[*next];
        if (!j->drafting) continue;
        const bn_draft_seq *d = j->seq;
        const int m = d->n_hist - d->n_past;
        if (n + m > c->cap) break; // no run is longer than cap: an empty call holds it
        for (int i = 0; i < m; i++) {
            c->tok[n + i] = d->hist[d->n_past + i];
            c->pos[n + i] = d->n_past + i;
            if (c->seq) c->seq[n + i] = d->slot;
        }
        c->run_job[runs++] = *next;
        n += m;
    }
    if (runs == 0) return 0;
    double *sums = p_min > 0 ? c->exp_sums : NULL;
    if (out == OUT_ARGMAX ? o->ops->forward_argmax(o->be, c->tok, c->pos, c->seq, n, c->argmax, err)
        : out == OUT_TOP  ? o->ops->forward_top(o->be, c->tok, c->pos, c->seq, n, c->top, sums, err)
                          : o->ops->forward(o->be, c->tok, c->pos, c->seq, n, rows, false, err))
        return -1;
    for (int r = 0; r < runs; r++) {
        bn_draft_job *j = &jobs[c->run_job[r]];
        bn_draft_seq *d = j->seq;
        d->n_past = d->n_hist;
        if (j->feed_only) {
            j->drafting = false;
            continue;
        }
        const int32_t id = pick(c, out, r, j, p_min, rows + (size_t)r * n_vocab, n_vocab);
        if (id >= 0) j->out[j->got++] = d->hist[d->n_hist++] = id;
        j->drafting = id >= 0 && j->got < j->max;
    }
    return runs;
}

int bn_draft_steps(const bn_opened *o, int32_t n_vocab, bn_draft_call *c, bn_draft_job *jobs, int n_jobs,
                   float p_min, float *rows, bn_error *err) {
    for (int i = 0; i < n_jobs; i++)
        if (begin_job(&jobs[i], err)) return -1;
    const int out = call_output(o, jobs, n_jobs, p_min);
    for (bool more = true; more;) { // a round of calls: a token for every job still drafting
        more = false;
        for (int next = 0, r; (r = call_once(o, n_vocab, c, jobs, n_jobs, &next, out, p_min, rows, err)) != 0;
             more = true)
            if (r < 0) return -1;
    }
    for (int i = 0; i < n_jobs; i++)
        if (jobs[i].tried && jobs[i].got == 0) missed(jobs[i].backoff);
    return 0;
}
