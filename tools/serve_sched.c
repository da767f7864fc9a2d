// serve_sched.c - the scheduler thread (serve_sched.h).
//
// Between two steps, with the mutex held, it frees the slots of cancelled jobs,
// moves queued jobs into free slots, and sleeps when nothing is active. The step
// itself runs without the mutex, so handlers can queue, cancel and read while
// the forward pass runs; only this thread touches the batch.
#include "serve_sched.h"

#include "clock.h"
#include "error.h"
#include "json_mask.h" // bn_batch_json_counts

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// One choice of a job: its slot, and what it produced that bn_job_wait has not taken.
typedef struct choice {
    int slot;          // -1 while waiting for one, or ended
    bool begun;        // its first token came (and its prompt's echo went out)
    bn_job_output out;
} choice;

struct bn_job {
    bn_sched *s;
    bn_job_params p;
    pthread_cond_t cond; // new output, or a choice's end
    int refs;            // the submitter's, and the scheduler's until every choice ends
    int n_admitted;      // choices that have left the queue (into a slot, or ended)
    int n_ended;
    bool cancelled;      // the client left, or a choice failed
    bn_job_state st;
    double arrived_ms;   // bn_now_ms at submission
    bool got_first;      // a first token came (stats)
    choice *choice;      // [p.n_choices]
    bn_buf *echoed;      // [p.n_prompts] with echo and logprobs: each prompt's bn_job_logprob
                         // entries, scored by its first choice, copied for the others
    bn_job *next;        // the queue
};

// What runs in a slot of the batch.
typedef struct slot_use {
    bn_job *job; // NULL: free
    int choice;
} slot_use;

struct bn_sched {
    bn_batch *b;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake; // the scheduler's: a job came, was cancelled, or stop
    bn_job *head, *tail; // jobs with choices waiting for a slot
    int n_queued;
    slot_use *slot; // [n_slots]
    bool shares_prompts; // bn_batch_shares_prompts
    bool stopping;
    double deadline_ms; // stopping: running jobs end by then (bn_now_ms)
    bn_sched_stats stats;
    bool draft_warned; // the draft model's failure was logged (bn_batch_draft_note)
};

void bn_job_params_free(bn_job_params *p) {
    for (int i = 0; i < p->n_prompts; i++) {
        free(p->prompts[i].ids);
        free(p->prompts[i].echo);
        free(p->prompts[i].prefixed);
    }
    free(p->prompts);
    for (size_t i = 0; i < p->n_stop; i++) free(p->stop[i]);
    free(p->stop);
    free(p->json_schema);
    free(p->regex);
    free(p->logit_bias);
    *p = (bn_job_params){0};
}

static void free_job(bn_job *j) {
    for (int i = 0; i < j->p.n_prompts && j->echoed; i++) free(j->echoed[i].data);
    free(j->echoed);
    for (int c = 0; c < j->p.n_choices && j->choice; c++) {
        free(j->choice[c].out.text.data);
        free(j->choice[c].out.logprobs.data);
    }
    free(j->choice);
    bn_job_params_free(&j->p);
    pthread_cond_destroy(&j->cond);
    free(j);
}

// Drops one reference; the mutex is held.
static void unref(bn_job *j) {
    if (--j->refs == 0) free_job(j);
}

// Choice c's prompt.
static const bn_job_prompt *prompt_of(const bn_job *j, int c) { return &j->p.prompts[c / j->p.n]; }

// Counts ending choice k in the stats (the mutex is held).
static void count_end(bn_sched *s, const bn_job *j, int k, int status) {
    const bn_choice_state *c = &j->st.choice[k];
    bn_sched_stats *t = &s->stats;
    t->ended[status == 503 ? BN_ENDED_CANCELLED
             : status      ? BN_ENDED_ERROR
             : c->stop == BN_STOP_EOG || c->stop == BN_STOP_STRING ? BN_ENDED_STOP
                                                                   : BN_ENDED_LENGTH]++;
    t->prompt_tokens += j->choice[k].begun ? (uint64_t)prompt_of(j, k)->n : 0;
    t->cached_tokens += (uint64_t)c->n_cached;
    t->generated_tokens += (uint64_t)c->n_gen;
    t->request_seconds += (bn_now_ms() - j->arrived_ms) / 1e3;
}

// Ends choice c of job j (the mutex is held): status 0 is success, else the
// error, which fails the request and cancels its other choices.
static void finish(bn_sched *s, bn_job *j, int c, bn_stop stop, int status, const char *msg) {
    bn_choice_state *cs = &j->st.choice[c];
    cs->stop = stop;
    cs->done = true;
    count_end(s, j, c, status);
    const int slot = j->choice[c].slot;
    if (slot >= 0) {
        bn_batch_remove(s->b, slot);
        s->slot[slot].job = NULL;
        j->choice[c].slot = -1;
    }
    if (status && !j->st.error[0]) {
        j->st.status = status;
        snprintf(j->st.error, sizeof j->st.error, "%.500s", msg);
        j->cancelled = true;
    }
    j->st.done = ++j->n_ended == j->p.n_choices;
    pthread_cond_signal(&j->cond);
    if (j->st.done) unref(j);
}

// Slots in use (the mutex is held). Counted from s->slot, not asked of the
// batch, which only the scheduler thread may touch.
static int n_busy(const bn_sched *s) {
    int n = 0;
    for (int k = 0; k < bn_batch_n_slots(s->b); k++) n += s->slot[k].job != NULL;
    return n;
}

static const char *why_ended(const bn_job *j) {
    return j->cancelled ? "the request was cancelled" : "the server is shutting down";
}

// The choice job j admits a-th: each prompt's first choice, then the others in
// order, so that every prompt is being fed while the later choices wait.
static int admitted_choice(const bn_job *j, int a) {
    const int n = j->p.n, later = a - j->p.n_prompts;
    return later < 0 ? a * n : later / (n - 1) * n + 1 + later % (n - 1);
}

// Whether job j's next choice waits: it is not its prompt's first, that first
// has not begun generating, and a choice that starts after that copies the
// prompt's K/V from it rather than computing them again
// (bn_batch_shares_prompts), or with echo and logprobs takes the entries the
// first scored instead of scoring the prompt again (with cache_prompt false too).
static bool waits_for_first(const bn_sched *s, const bn_job *j) {
    const int c = admitted_choice(j, j->n_admitted), first = c - c % j->p.n;
    const bool shares = (s->shares_prompts && !j->p.no_prefix_cache) || (j->p.echo && j->p.logprobs);
    return shares && c != first && !j->choice[first].begun && !j->st.choice[first].done;
}

// Between steps: cancelled and (when stopping) late choices leave, queued ones
// enter, choice by choice in the order their jobs came (a job whose choices
// wait for its first lets the jobs behind it pass).
static void between_steps(bn_sched *s) {
    const int n_slots = bn_batch_n_slots(s->b);
    const bool late = s->stopping && bn_now_ms() >= s->deadline_ms;
    for (int k = 0; k < n_slots; k++) {
        bn_job *j = s->slot[k].job;
        if (j && (j->cancelled || late)) finish(s, j, s->slot[k].choice, BN_STOP_CALLER, 503, why_ended(j));
    }
    bn_job **link = &s->head, *prev = NULL;
    while (*link) {
        bn_job *j = *link;
        const bool ending = s->stopping || j->cancelled;
        if (!ending && n_busy(s) == n_slots) break;
        if (!ending && waits_for_first(s, j)) {
            prev = j, link = &j->next;
            continue;
        }
        const int c = admitted_choice(j, j->n_admitted++);
        if (j->n_admitted == j->p.n_choices) { // its last choice leaves the queue
            if (s->tail == j) s->tail = prev;
            *link = j->next;
            s->n_queued--;
        }
        if (ending) {
            finish(s, j, c, BN_STOP_CALLER, 503, why_ended(j));
            continue;
        }
        const bn_job_prompt *prompt = prompt_of(j, c);
        bn_request r = {.prompt = prompt->ids, .n_prompt = prompt->n,
                        .max_tokens = j->p.score_only ? 1 : j->p.max_tokens,
                        .sampling = j->p.sampling, .stop = (const char *const *)j->p.stop,
                        .n_stop = j->p.n_stop, .no_prefix_cache = j->p.no_prefix_cache,
                        .logprobs = j->p.logprobs, .top_logprobs = j->p.top_logprobs,
                        .prompt_logprobs = j->p.echo && j->p.logprobs && !j->echoed[c / j->p.n].len,
                        .json_object = j->p.json_object, .json_schema = j->p.json_schema,
                        .regex = j->p.regex};
        r.sampling.seed += (uint64_t)(c % j->p.n); // choice 0 of a prompt is what n = 1 would give
        bn_error err;
        const int slot = bn_batch_add(s->b, &r, &err);
        if (slot < 0) {
            finish(s, j, c, BN_STOP_CALLER, slot == -2 ? 500 : 400, err.msg); // -2: the backend failed
            continue;
        }
        j->choice[c].slot = slot;
        s->slot[slot] = (slot_use){j, c};
    }
}

// The echo of choice c's prompt at the start of its output: the prompt's text,
// and with logprobs each prompt token's, from the choice's first event where
// the choice scored its prompt (ev->prompt_logprob; the first to do so keeps
// them for the prompt's other choices, which start once it has begun and then
// score nothing), else as kept. Out of memory: the echo is lost, not the counts.
static void echo_prompt(bn_job *j, int c, const bn_batch_event *ev, bn_job_output *out) {
    const bn_job_prompt *p = prompt_of(j, c);
    if (p->echo) bn_buf_append(&out->text, p->echo, strlen(p->echo));
    if (!j->p.logprobs) return;
    bn_buf *kept = &j->echoed[c / j->p.n];
    if (!ev->prompt_logprob) {
        if (kept->len) bn_buf_append(&out->logprobs, kept->data, kept->len);
        return;
    }
    bool keep = !kept->len;
    for (size_t i = 0; i < p->n; i++) {
        bn_job_logprob lp = {.id = p->ids[i], .first = i == 0, .unseen = i == 0 && p->added_bos,
                             .prefixed = p->prefixed && p->prefixed[i]};
        if (i) {
            lp.logprob = ev->prompt_logprob[i];
            lp.n_top = ev->n_top;
            memcpy(lp.top, ev->prompt_top + i * (size_t)ev->n_top, (size_t)ev->n_top * sizeof *lp.top);
        }
        bn_buf_append(&out->logprobs, &lp, sizeof lp);
        if (keep && bn_buf_append(kept, &lp, sizeof lp)) keep = false, kept->len = 0; // none rather than part
    }
}

static void after_step(bn_sched *s, const bn_batch_event *ev, int n) {
    for (int i = 0; i < n; i++) {
        bn_job *j = s->slot[ev[i].slot].job;
        const int c = s->slot[ev[i].slot].choice;
        bn_job_output *out = &j->choice[c].out;
        if (!j->choice[c].begun && j->p.echo) echo_prompt(j, c, &ev[i], out);
        j->choice[c].begun = true;
        if (!j->p.score_only) bn_buf_append(&out->text, ev[i].text, ev[i].len); // out of memory: the text is lost, not the counts
        // An end-of-generation token has an entry with echo, where lm-evaluation-harness
        // takes the last entry for the generated token and drops it.
        if (j->p.logprobs && !j->p.score_only && ev[i].token >= 0 && (!ev[i].eog || j->p.echo)) {
            bn_job_logprob lp = {.id = ev[i].token, .logprob = ev[i].logprob, .n_top = ev[i].n_top,
                                 .unseen = ev[i].eog};
            memcpy(lp.top, ev[i].top, (size_t)ev[i].n_top * sizeof *lp.top);
            bn_buf_append(&out->logprobs, &lp, sizeof lp);
        }
        j->st.choice[c].n_gen = j->p.score_only ? 0 : ev[i].n_gen;
        j->st.choice[c].n_cached = ev[i].n_cached;
        if (!j->got_first) {
            j->got_first = true;
            s->stats.first_tokens++;
            s->stats.first_token_seconds += (bn_now_ms() - j->arrived_ms) / 1e3;
        }
        if (ev[i].done) finish(s, j, c, j->p.score_only ? BN_STOP_LENGTH : ev[i].stop, 0, NULL);
        else pthread_cond_signal(&j->cond);
    }
}

static void *sched_main(void *arg) {
    bn_sched *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        between_steps(s);
        if (n_busy(s) == 0) {
            if (s->stopping) break;
            pthread_cond_wait(&s->wake, &s->mu);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        const bn_batch_event *ev;
        int n;
        bn_error err;
        const double t0 = bn_now_ms();
        const int rc = bn_batch_step(s->b, &ev, &n, &err);
        const double t1 = bn_now_ms();
        pthread_mutex_lock(&s->mu);
        s->stats.steps++;
        s->stats.step_seconds += (t1 - t0) / 1e3;
        bn_batch_json_counts(s->b, &s->stats.json_rows_cached, &s->stats.json_rows_worked);
        s->stats.lookup = bn_batch_lookup_stats(s->b);
        if (bn_batch_draft_note(s->b) && !s->draft_warned) { // the requests went on without drafts
            fprintf(stderr, "serve: warning: %s\n", bn_batch_draft_note(s->b));
            s->draft_warned = true;
        }
        if (rc == 0) {
            after_step(s, ev, n);
            continue;
        }
        fprintf(stderr, "serve: error: %s\n", err.msg); // a backend failure ends every job
        for (int k = 0; k < bn_batch_n_slots(s->b); k++)
            if (s->slot[k].job) finish(s, s->slot[k].job, s->slot[k].choice, BN_STOP_CALLER, 500, err.msg);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int bn_sched_start(bn_batch *b, bn_sched **out, bn_error *err) {
    *out = NULL;
    bn_sched *s = calloc(1, sizeof *s);
    if (!s || !(s->slot = calloc((size_t)bn_batch_n_slots(b), sizeof *s->slot))) {
        free(s);
        return bn_errorf(err, "out of memory");
    }
    s->b = b;
    s->shares_prompts = bn_batch_shares_prompts(b);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->wake, NULL);
    if (pthread_create(&s->thread, NULL, sched_main, s)) {
        free(s->slot);
        free(s);
        return bn_errorf(err, "cannot start the scheduler thread");
    }
    *out = s;
    return 0;
}

void bn_sched_stop(bn_sched *s, int grace_ms) {
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    s->deadline_ms = bn_now_ms() + grace_ms;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
}

void bn_sched_free(bn_sched *s) {
    if (!s) return;
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->wake);
    free(s->slot);
    free(s);
}

bn_job *bn_sched_submit(bn_sched *s, bn_job_params *p) {
    if (p->n < 1) p->n = 1;
    p->n_choices = p->n_prompts * p->n;
    bn_job *j = p->n_prompts >= 1 && p->n_choices <= BN_JOB_MAX_CHOICES ? calloc(1, sizeof *j) : NULL;
    if (j && !(j->choice = calloc((size_t)p->n_choices, sizeof *j->choice))) free(j), j = NULL;
    if (j && p->echo && p->logprobs && !(j->echoed = calloc((size_t)p->n_prompts, sizeof *j->echoed)))
        free(j->choice), free(j), j = NULL;
    if (j) {
        j->p = *p;
        j->s = s;
        for (int c = 0; c < p->n_choices; c++) j->choice[c].slot = -1;
        j->st.n_choices = p->n_choices;
        for (int i = 0; i < p->n_prompts; i++) j->st.n_prompt += (int)p->prompts[i].n;
        j->refs = 2;
        j->arrived_ms = bn_now_ms();
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&j->cond, &ca);
        pthread_condattr_destroy(&ca);
    }
    if (!j) bn_job_params_free(p);
    *p = (bn_job_params){0};
    pthread_mutex_lock(&s->mu);
    if (!j || s->stopping) {
        pthread_mutex_unlock(&s->mu);
        if (j) free_job(j);
        return NULL;
    }
    if (s->tail) s->tail->next = j;
    else s->head = j;
    s->tail = j;
    s->n_queued++;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mu);
    return j;
}

// Moves what src holds to the end of dst.
static int take(bn_buf *dst, bn_buf *src) {
    if (!src->len) return 0;
    if (bn_buf_append(dst, src->data, src->len)) return -1;
    src->len = 0;
    return 0;
}

static bool has_output(const bn_job *j) {
    for (int c = 0; c < j->p.n_choices; c++)
        if (j->choice[c].out.text.len || j->choice[c].out.logprobs.len) return true;
    return false;
}

int bn_job_wait(bn_job *j, int timeout_ms, bn_job_output *out, bn_job_state *st) {
    bn_sched *s = j->s;
    pthread_mutex_lock(&s->mu);
    if (!has_output(j) && !j->st.done) {
        const struct timespec t = bn_monotonic_after_ms(timeout_ms);
        pthread_cond_timedwait(&j->cond, &s->mu, &t);
    }
    int rc = 0;
    for (int c = 0; c < j->p.n_choices; c++)
        if (take(&out[c].text, &j->choice[c].out.text) || take(&out[c].logprobs, &j->choice[c].out.logprobs))
            rc = -1;
    *st = j->st;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void bn_job_cancel(bn_job *j) {
    pthread_mutex_lock(&j->s->mu);
    j->cancelled = true;
    pthread_cond_signal(&j->s->wake);
    pthread_mutex_unlock(&j->s->mu);
}

void bn_job_release(bn_job *j) {
    if (!j) return;
    bn_sched *s = j->s;
    pthread_mutex_lock(&s->mu);
    unref(j);
    pthread_mutex_unlock(&s->mu);
}

void bn_sched_stats_read(bn_sched *s, bn_sched_stats *out) {
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->mu);
}

void bn_sched_counts(bn_sched *s, int *slots, int *busy, int *queued) {
    pthread_mutex_lock(&s->mu);
    *slots = bn_batch_n_slots(s->b);
    *busy = n_busy(s);
    *queued = s->n_queued;
    pthread_mutex_unlock(&s->mu);
}
