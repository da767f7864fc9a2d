// batch.c - continuous batching: many requests, each in a sequence slot of one
// backend, advanced together one forward pass at a time (bitnet.h, bn_batch).
//
// A slot follows a session's rules (session.c): history holds the prompt and
// every sampled token, n_past of them are in the slot's KV cache, and the last
// sampled token is fed by the next step. A step gathers one run per active slot
// - its pending token, or the next chunk of its prompt - into a single forward
// call (backend.h: seq ids, one run per slot), so decode tokens of all slots
// share each pass over the weights; prompt chunks fill what is left of
// step_tokens, oldest request first, so a long prompt cannot starve the others
// (drafts, below, take at most half of what the pending tokens leave while a
// prompt waits, so they cannot starve a prompt either).
//
// Prompt cache (bitnet.h): a free slot's hist[0..n_cached) are the tokens whose
// K/V its cache region still holds (a used slot's hist[0..n_past)); a new
// request starts with n_past at the common start of those and its prompt, in
// its own slot's region or copied there from another slot's. Positions past
// n_past are written before they are read (backend.h), so nothing is cleared.
//
// Prompt logprobs (bn_request.prompt_logprobs): slots scoring their prompts
// feed all of them but the last token in a forward call of their own each step,
// BN_SCORE_ROWS tokens at most in all, that brings back every token's row of
// logits (the step's call brings back one row per run, and its prompt chunks
// may be hundreds of tokens); a slot's last prompt token then goes in a step's
// call like any other prompt's, and gives the first sampled token's row.
//
// Prompt lookup (bn_batch_set_lookup, lookup.h): a generating slot may add a
// draft after its pending token, and the call then brings back every token's
// row (a step that also feeds prompt chunks feeds them in a second call, one
// row a run: rows for all of a chunk's tokens would cost the LM head's
// arithmetic for each, and room for them). The slot samples its token from the
// pending token's row at once; the drafted tokens' rows wait in b->ahead, and
// in each later step where the token it sampled is the draft's, the slot takes
// its token from the next of them without a run in the call (the draft's K/V is
// in its cache already), so each step still gives each slot one token, as
// without lookup, and the same one. A step whose slots all take rows ahead makes
// no forward call.
#define _GNU_SOURCE // memmem
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "draft.h"
#include "engine_internal.h"
#include "json_mask.h"
#include "logprob_row.h"
#include "lookup.h"
#include "regex_reply.h"
#include "sampler.h"

#define BN_DEFAULT_STEP_TOKENS 512
// Rows that lookup passes keep ahead for their slots, all slots together (64 x
// 128256 floats: 33 MB); a step drafts only into free ones.
#define BN_LOOKUP_ROWS 64

// Schemas compiled for requests, kept beyond the slots that use them (this
// many more): requests that give the same schema text share one compilation,
// and so the mask cache's rows (json_mask.h), which know a compiled schema's
// states only.
#define BN_KEPT_SCHEMAS 4

struct kept_schema {
    char *text;        // NULL: an empty place
    bn_json_schema *g;
    int users;         // slots whose request reads against it
    uint64_t taken;    // when a request last took it (b->schema_clock)
};

typedef struct stop_string {
    char *text;
    size_t len;
} stop_string;

typedef struct bn_slot {
    bool used, done;
    bool in_step;     // has a run in the step being gathered
    void *user;
    uint64_t ticket;  // admission order; of a free slot, when it was freed
    int32_t *hist;    // n_ctx + 1
    int n_prompt, n_hist, n_past, n_gen, max_tokens;
    int n_cached;     // free: hist[0..n_cached) are in the KV cache; used: prompt tokens taken from it
    bn_sampler *smp;
    bn_stop stop;
    stop_string *stops;
    size_t n_stops, longest_stop;
    bn_utf8_stream utf8;
    char *text;       // decoded text not yet handed out; the first `released`
    size_t len, cap, released; // bytes went out in the last event
    bool logprobs;    // the request's; then the last sampled token's log-probability
    int top_logprobs; // and its top_logprobs likeliest tokens'
    float logprob;
    bn_token_logprob top[BN_TOP_LOGPROBS_MAX];
    bool scoring;     // prompt_logprobs: prompt_lp[i] is hist[i]'s log-probability
    float *prompt_lp; // (1 <= i < n_prompt), prompt_top[i * top_logprobs ..] its
    bn_token_logprob *prompt_top; // likeliest tokens'; kept with the slot, as its
    size_t prompt_cap;            // buffers, room for prompt_cap tokens
    bool json;        // json_object or json_schema: the text so far, read against
    struct kept_schema *schema; // the request's (in b->schemas)
    bn_json_state *js;      // kept with the slot, as its buffers
    bool regex;             // bn_request.regex: the text so far, read against it
    bn_regex_reply rr;
    // Lookup: the last verifying pass; its row after draft[i] is b->ahead's row ahead[i].
    bn_lookup_pass pass;
    uint8_t ahead[BN_LOOKUP_MAX];
    bool takes_ahead; // this step's token comes from a row ahead
    // A draft model (bn_batch_set_draft): the slot's sequence of it, kept with
    // the slot as its prompt cache is, and when the slot drafts.
    bn_draft_seq dq;
    bn_draft_backoff backoff;
    bn_sampler *draft_smp; // a sampling request's sampler's copy, for the draft (bn_draft_steps)
    int drafted;      // this step's tokens from the draft model, in b->draft_out
    bool pass_judged; // the ended pass's outcome is in backoff (a step that fails may be run again)
} bn_slot;

struct bn_batch {
    bn_engine *engine;
    bn_opened be;
    int n_slots, step_tokens;
    uint64_t next_ticket;
    bn_slot *slots;
    int32_t *tok, *pos, *seq; // [step_tokens] the step's forward call
    struct run {
        int slot, len, drafted; // drafted: of len, tokens drafted after the pending one
    } *runs;                  // [n_slots] the call's runs, in call order
    int32_t *argmax;          // [n_slots]
    bn_top *top;              // [n_slots][BN_TOP_MAX] (forward_top)
    float *logits;            // [n_slots (+ BN_LOOKUP_ROWS with lookup)][n_vocab]
    float *score_rows;        // [BN_SCORE_ROWS][n_vocab], made at the first prompt scored
    struct run *score_runs;   // [n_slots] the scoring call's runs, made with it
    bn_logprob_row lp;        // a row as the model gave it (logprobs)
    bn_json_vocab json;       // for JSON requests, made at the first one
    struct kept_schema *schemas; // [n_slots + BN_KEPT_SCHEMAS]
    uint64_t schema_clock;
    bn_batch_event *events;   // [n_slots]
    int lookup_max;           // bn_batch_set_lookup's: tokens drafted a pass at most (0: off)
    float *ahead;             // [BN_LOOKUP_ROWS][n_vocab], made with it
    uint64_t ahead_used;      // bit i: row i of ahead is a slot's
    bn_lookup_stats lookup;   // since the batch was made
    // A draft model (bn_batch_set_draft) drafts instead of prompt lookup: one
    // backend on it with a sequence slot for each of the batch's.
    bn_opened draft;          // .be NULL: none
    int32_t draft_vocab;
    float draft_p_min;
    bn_draft_call draft_call; // the slots draft together, a call a token
    float *draft_rows;        // [draft_call.max_runs][draft_vocab]
    bn_draft_job *draft_jobs; // [n_slots]
    int32_t *draft_out;       // [n_slots][BN_LOOKUP_MAX]: a step's drafts
    char draft_note[sizeof(bn_error) + 64]; // why a draft model stopped drafting ("": it did not)
};

// Ends a slot's request (or a failed bn_batch_add's set-up); the buffers and
// the cached tokens are kept for the next request.
static void free_slot(bn_slot *s, uint64_t now) {
    bn_sampler_free(s->smp);
    bn_sampler_free(s->draft_smp);
    if (s->schema) s->schema->users--;
    bn_regex_reply_free(&s->rr);
    for (size_t i = 0; i < s->n_stops; i++) free(s->stops[i].text);
    free(s->stops);
    *s = (bn_slot){.hist = s->hist, .text = s->text, .cap = s->cap, .js = s->js, .dq = s->dq,
                   .prompt_lp = s->prompt_lp, .prompt_top = s->prompt_top, .prompt_cap = s->prompt_cap,
                   .n_cached = s->used ? s->n_past : s->n_cached, .ticket = s->used ? now : s->ticket};
}

// The draft model's backend and buffers go (bn_batch_set_draft).
static void drop_draft(bn_batch *b) {
    if (b->draft.be) b->draft.ops->destroy(b->draft.be);
    b->draft.be = NULL;
    for (int i = 0; b->slots && i < b->n_slots; i++) {
        free(b->slots[i].dq.hist);
        b->slots[i].dq = (bn_draft_seq){0};
    }
    bn_draft_call_free(&b->draft_call);
    free(b->draft_rows);
    free(b->draft_jobs);
    free(b->draft_out);
    b->draft_rows = NULL;
    b->draft_jobs = NULL;
    b->draft_out = NULL;
}

void bn_batch_free(bn_batch *b) {
    if (!b) return;
    for (int i = 0; b->slots && i < b->n_slots; i++) {
        free_slot(&b->slots[i], 0);
        free(b->slots[i].hist);
        free(b->slots[i].text);
        free(b->slots[i].js);
        free(b->slots[i].prompt_lp);
        free(b->slots[i].prompt_top);
    }
    drop_draft(b);
    if (b->be.be) b->be.ops->destroy(b->be.be);
    free(b->slots);
    free(b->tok);
    free(b->pos);
    free(b->seq);
    free(b->runs);
    free(b->argmax);
    free(b->top);
    free(b->logits);
    free(b->ahead);
    free(b->score_rows);
    free(b->score_runs);
    bn_logprob_row_free(&b->lp);
    bn_json_vocab_free(&b->json);
    for (int i = 0; b->schemas && i < b->n_slots + BN_KEPT_SCHEMAS; i++) {
        free(b->schemas[i].text);
        bn_json_schema_free(b->schemas[i].g);
    }
    free(b->schemas);
    free(b->events);
    free(b);
}

int bn_batch_create(bn_engine *e, const bn_batch_params *p, bn_batch **out, bn_error *err) {
    *out = NULL;
    bn_batch_params defaults = {0};
    if (!p) p = &defaults;
    bn_batch *b = calloc(1, sizeof *b);
    if (!b) return bn_errorf(err, "out of memory");
    b->engine = e;
    b->n_slots = p->n_slots > 0 ? p->n_slots : 1;
    b->step_tokens = p->step_tokens > 0 ? p->step_tokens : BN_DEFAULT_STEP_TOKENS;
    if (b->step_tokens < b->n_slots) b->step_tokens = b->n_slots; // a decode token for every slot
    if (bn_backend_open(e, &p->session, b->n_slots, &b->be, err)) goto fail;
    const size_t S = (size_t)b->n_slots, T = (size_t)b->step_tokens, V = e->model->hp.n_vocab;
    b->slots = calloc(S, sizeof *b->slots);
    b->tok = malloc(T * sizeof *b->tok);
    b->pos = malloc(T * sizeof *b->pos);
    b->seq = malloc(T * sizeof *b->seq);
    b->runs = malloc(S * sizeof *b->runs);
    b->argmax = malloc(S * sizeof *b->argmax);
    b->top = malloc(S * BN_TOP_MAX * sizeof *b->top);
    b->logits = malloc(S * V * sizeof *b->logits);
    b->events = malloc(S * sizeof *b->events);
    b->schemas = calloc(S + BN_KEPT_SCHEMAS, sizeof *b->schemas);
    if (!b->slots || !b->tok || !b->pos || !b->seq || !b->runs || !b->argmax || !b->top || !b->logits ||
        bn_logprob_row_init(&b->lp, (int32_t)V) || !b->events || !b->schemas) {
        bn_errorf(err, "out of memory for %d slots", b->n_slots);
        goto fail;
    }
    for (size_t i = 0; i < S; i++)
        if (!(b->slots[i].hist = malloc(((size_t)b->be.n_ctx + 1) * sizeof(int32_t)))) {
            bn_errorf(err, "out of memory for %d slots of %d tokens", b->n_slots, b->be.n_ctx);
            goto fail;
        }
    *out = b;
    return 0;
fail:
    bn_batch_free(b);
    return -1;
}

const char *bn_batch_backend(const bn_batch *b) { return b->be.ops->name; }
const char *bn_batch_backend_note(const bn_batch *b) { return b->be.note; }
const char *bn_batch_draft_note(const bn_batch *b) { return b->draft_note[0] ? b->draft_note : NULL; }
int bn_batch_n_ctx(const bn_batch *b) { return b->be.n_ctx; }
int bn_batch_n_slots(const bn_batch *b) { return b->n_slots; }

int bn_batch_n_free(const bn_batch *b) {
    int n = 0;
    for (int i = 0; i < b->n_slots; i++) n += !b->slots[i].used;
    return n;
}

int bn_batch_n_active(const bn_batch *b) {
    int n = 0;
    for (int i = 0; i < b->n_slots; i++) n += b->slots[i].used && !b->slots[i].done;
    return n;
}

static int copy_stops(bn_slot *s, const bn_request *r, bn_error *err) {
    if (!r->n_stop) return 0;
    if (!(s->stops = calloc(r->n_stop, sizeof *s->stops))) return bn_errorf(err, "out of memory");
    for (size_t i = 0; i < r->n_stop; i++) {
        const char *t = r->stop[i] ? r->stop[i] : "";
        if (!*t) continue; // an empty stop string would match before any text
        const size_t n = strlen(t);
        if (!(s->stops[s->n_stops].text = strdup(t))) return bn_errorf(err, "out of memory");
        s->stops[s->n_stops++].len = n;
        if (n > s->longest_stop) s->longest_stop = n;
    }
    return 0;
}

// ---- json_object and json_schema --------------------------------------------

// The compiled schema of text: one a request gave before, else compiled and
// kept in an empty place of b->schemas or in the one taken longest ago that no
// slot uses (there is one: a kept schema per slot in use at most, and the slot
// being set up uses none). A schema that does not compile displaces nothing.
// NULL on error.
static struct kept_schema *take_schema(bn_batch *b, const char *text, bn_error *err) {
    const int places = b->n_slots + BN_KEPT_SCHEMAS;
    int k = -1;
    for (int i = 0; i < places && k < 0; i++)
        if (b->schemas[i].text && !strcmp(b->schemas[i].text, text)) k = i;
    if (k < 0) {
        bn_json_schema *g;
        char *copy;
        if (bn_json_schema_compile(text, strlen(text), &g, err)) return NULL;
        if (!(copy = strdup(text))) {
            bn_json_schema_free(g);
            bn_errorf(err, "out of memory");
            return NULL;
        }
        for (int i = 0; i < places; i++)
            if (!b->schemas[i].users && (k < 0 || b->schemas[i].taken < b->schemas[k].taken)) k = i;
        if (k < 0) { // cannot be (see above); an error rather than a write out of bounds
            bn_json_schema_free(g);
            free(copy);
            bn_errorf(err, "internal error: every kept schema is in use");
            return NULL;
        }
        struct kept_schema *ks = &b->schemas[k];
        free(ks->text);
        bn_json_schema_free(ks->g);
        *ks = (struct kept_schema){.text = copy, .g = g};
    }
    b->schemas[k].users++;
    b->schemas[k].taken = ++b->schema_clock;
    return &b->schemas[k];
}

// Sets up slot s's constraint for r (a JSON request), and the batch's vocab
// tables at the first such request.
static int json_start(bn_batch *b, bn_slot *s, const bn_request *r, bn_error *err) {
    if (!b->json.kind && bn_json_vocab_init(&b->json, b->engine, err)) return -1;
    if (!s->js && !(s->js = malloc(sizeof *s->js))) return bn_errorf(err, "out of memory");
    static const char object[] = "{\"type\": \"object\"}"; // json_object
    if (!(s->schema = take_schema(b, r->json_schema ? r->json_schema : object, err))) return -1;
    bn_json_state_init(s->js, s->schema->g);
    s->json = true;
    return 0;
}

// bn_request.regex: the reply held to it, whole (regex_reply.h).
static int regex_start(bn_slot *s, const char *regex, int32_t n_vocab, bn_error *err) {
    if (bn_regex_reply_init(&s->rr, regex, n_vocab, err)) return -1;
    s->regex = true;
    return 0;
}

void bn_batch_json_counts(const bn_batch *b, uint64_t *hits, uint64_t *misses) {
    *hits = b->json.hits, *misses = b->json.misses;
}

// Of the prompt, the tokens slot s holds in its cache (free: the last request's
// tokens; used: those fed so far): their common start, short of the prompt's
// last token, which is fed again for its logits.
static int cached_prefix(const bn_slot *s, const int32_t *prompt, size_t n_prompt) {
    const int held = s->used ? s->n_past : s->n_cached;
    const int most = held < (int)n_prompt - 1 ? held : (int)n_prompt - 1;
    int n = 0;
    while (n < most && s->hist[n] == prompt[n]) n++;
    return n;
}

// Slot k (free) gets the longest start of the prompt any other slot holds, when
// that is longer than its own, copied by the backend: a running request's
// prompt (n choices of one prompt), a system prompt that many share. Returns
// the prompt tokens slot k now holds, or -1 with err.
static int copy_prefix(bn_batch *b, int k, const int32_t *prompt, size_t n_prompt, bn_error *err) {
    int from = -1, most = cached_prefix(&b->slots[k], prompt, n_prompt);
    for (int i = 0; i < b->n_slots && b->be.ops->copy_kv; i++) {
        const int n = i == k ? 0 : cached_prefix(&b->slots[i], prompt, n_prompt);
        if (n > most) from = i, most = n;
    }
    if (from >= 0 && b->be.ops->copy_kv(b->be.be, from, k, most, err)) {
        b->slots[k].n_cached = 0; // part of its cache may be overwritten
        return -1;
    }
    return most;
}

bool bn_batch_shares_prompts(const bn_batch *b) { return b->be.ops->copy_kv != NULL; }

// Room in slot s for the log-probabilities of a prompt of n tokens, n_top
// likeliest tokens each.
static int score_start(bn_slot *s, size_t n, int n_top, bn_error *err) {
    if (n > s->prompt_cap) {
        float *lp = realloc(s->prompt_lp, n * sizeof *lp);
        if (lp) s->prompt_lp = lp;
        bn_token_logprob *top = realloc(s->prompt_top, n * BN_TOP_LOGPROBS_MAX * sizeof *top);
        if (top) s->prompt_top = top;
        if (!lp || !top) return bn_errorf(err, "out of memory for the log-probabilities of %zu prompt tokens", n);
        s->prompt_cap = n;
    }
    s->prompt_lp[0] = NAN; // nothing precedes the first token
    memset(s->prompt_top, 0, (size_t)n_top * sizeof *s->prompt_top);
    s->scoring = true;
    return 0;
}

int bn_batch_add(bn_batch *b, const bn_request *r, bn_error *err) {
    if (r->n_prompt < 1) return bn_errorf(err, "nothing to generate from: the prompt is empty");
    if (r->n_prompt > (size_t)b->be.n_ctx)
        return bn_errorf(err, "prompt of %zu tokens does not fit in the context (%d tokens)",
                         r->n_prompt, b->be.n_ctx);
    if (bn_engine_check_ids(b->engine, r->prompt, r->n_prompt, err)) return -1;
    if (r->logprobs && (r->top_logprobs < 0 || r->top_logprobs > BN_TOP_LOGPROBS_MAX))
        return bn_errorf(err, "top_logprobs must be in 0..%d (got %d)", BN_TOP_LOGPROBS_MAX, r->top_logprobs);
    if (r->prompt_logprobs && !r->logprobs) return bn_errorf(err, "prompt_logprobs needs logprobs");
    if (r->regex && (r->json_object || r->json_schema))
        return bn_errorf(err, "a request's reply takes one of a regex, a JSON Schema and JSON mode");
    const bool fresh = r->no_prefix_cache || r->prompt_logprobs; // feeds every prompt token
    // The free slot that caches the longest start of the prompt, if that is at
    // least half of it; else the slot free longest: a shorter match (a BOS, a
    // shared system prompt) is not worth a more recent conversation's cache
    // (copy_prefix then gives it those tokens from the other slot). Among equal
    // matches, too, the slot free longest.
    int k = -1, best = 0;
    for (int i = 0; i < b->n_slots && !fresh; i++) {
        const int n = b->slots[i].used ? 0 : cached_prefix(&b->slots[i], r->prompt, r->n_prompt);
        if (n == 0 || 2 * (size_t)n < r->n_prompt) continue;
        if (n > best || (n == best && b->slots[i].ticket < b->slots[k].ticket)) k = i, best = n;
    }
    for (int i = 0; i < b->n_slots && best == 0; i++)
        if (!b->slots[i].used && (k < 0 || b->slots[i].ticket < b->slots[k].ticket)) k = i;
    if (k < 0) return bn_errorf(err, "all %d slots are busy", b->n_slots);
    bn_slot *s = &b->slots[k];
    const int32_t n_vocab = (int32_t)b->engine->model->hp.n_vocab;
    const int n_top = r->logprobs ? (r->top_logprobs < n_vocab ? r->top_logprobs : n_vocab) : 0;
    int cached = 0; // copied last: a request that fails leaves the slot's cache as it was
    if (bn_sampler_create(&r->sampling, n_vocab, (size_t)b->be.n_ctx + 1, &s->smp, err) || copy_stops(s, r, err) ||
        ((r->json_object || r->json_schema) && json_start(b, s, r, err)) ||
        (r->regex && regex_start(s, r->regex, n_vocab, err)) ||
        (r->prompt_logprobs && score_start(s, r->n_prompt, n_top, err)) ||
        (!fresh && (cached = copy_prefix(b, k, r->prompt, r->n_prompt, err)) < 0)) {
        free_slot(s, 0);
        return cached < 0 ? -2 : -1; // the backend's failure to copy, or the request's fault
    }
    memcpy(s->hist, r->prompt, r->n_prompt * sizeof *s->hist);
    s->used = true;
    s->user = r->user;
    s->ticket = b->next_ticket++;
    s->n_prompt = s->n_hist = (int)r->n_prompt;
    s->n_past = s->n_cached = cached;
    s->max_tokens = r->max_tokens;
    s->logprobs = r->logprobs;
    s->top_logprobs = n_top;
    s->pass.len = BN_LOOKUP_MAX;
    s->backoff = (bn_draft_backoff){0};
    return k;
}

// Gives back the rows slot s holds ahead: those after the drafted tokens no step has taken.
static void drop_ahead(bn_batch *b, bn_slot *s) {
    const bn_lookup_pass *p = &s->pass;
    for (int i = p->next_row > 0 ? p->next_row - 1 : p->n_drafted; i < p->n_drafted; i++)
        b->ahead_used &= ~(UINT64_C(1) << s->ahead[i]);
}

void bn_batch_remove(bn_batch *b, int slot) {
    if (slot < 0 || slot >= b->n_slots || !b->slots[slot].used) return;
    drop_ahead(b, &b->slots[slot]);
    free_slot(&b->slots[slot], b->next_ticket++);
}

int bn_batch_set_lookup(bn_batch *b, int max_draft, bn_error *err) {
    if (max_draft < 0 || max_draft > BN_LOOKUP_MAX)
        return bn_errorf(err, "lookup drafts 0..%d tokens a pass (got %d)", BN_LOOKUP_MAX, max_draft);
    if (max_draft && !b->ahead) {
        const size_t V = b->engine->model->hp.n_vocab, rows = (size_t)b->n_slots + BN_LOOKUP_ROWS;
        float *ahead = malloc(BN_LOOKUP_ROWS * V * sizeof *ahead);
        float *logits = ahead ? realloc(b->logits, rows * V * sizeof *logits) : NULL;
        if (!logits) {
            free(ahead);
            return bn_errorf(err, "out of memory for %zu rows of logits", rows + BN_LOOKUP_ROWS);
        }
        b->logits = logits;
        b->ahead = ahead;
    }
    b->lookup_max = max_draft;
    drop_draft(b);
    return 0;
}

int bn_batch_set_draft(bn_batch *b, const bn_engine *draft, const bn_session_params *p, int max_draft, float p_min,
                       bn_error *err) {
    bn_batch_set_lookup(b, 0, err); // whatever comes next, nothing drafts until it succeeds
    b->draft_note[0] = 0;
    if (!draft || max_draft == 0) return 0;
    if (max_draft < 0 || max_draft > BN_LOOKUP_MAX)
        return bn_errorf(err, "a draft model drafts 0..%d tokens a pass (got %d)", BN_LOOKUP_MAX, max_draft);
    if (!(p_min >= 0 && p_min <= 1)) return bn_errorf(err, "p_min must be in 0..1 (got %g)", (double)p_min);
    if (bn_engine_same_vocab(b->engine, draft, err)) return -1;
    bn_session_params q = p ? *p : (bn_session_params){0};
    const int n_train = (int)draft->model->hp.n_ctx_train;
    if (q.n_ctx <= 0) q.n_ctx = n_train > 0 && n_train < b->be.n_ctx ? n_train : b->be.n_ctx;
    q.cpu_start = false;
    bn_opened o;
    if (bn_backend_open(draft, &q, b->n_slots, &o, err)) return -1;
    if (bn_batch_set_lookup(b, max_draft, err)) {
        o.ops->destroy(o.be);
        return -1;
    }
    b->draft = o;
    const int n_ctx = b->draft.n_ctx;
    b->draft_vocab = (int32_t)draft->model->hp.n_vocab;
    b->draft_p_min = p_min;
    if (bn_draft_call_init(&b->draft_call, n_ctx, b->n_slots, true, err)) {
        drop_draft(b);
        b->lookup_max = 0;
        return -1;
    }
    b->draft_rows = malloc((size_t)b->draft_call.max_runs * b->draft_vocab * sizeof *b->draft_rows);
    b->draft_jobs = malloc((size_t)b->n_slots * sizeof *b->draft_jobs);
    b->draft_out = malloc((size_t)b->n_slots * BN_LOOKUP_MAX * sizeof *b->draft_out);
    bool ok = b->draft_rows && b->draft_jobs && b->draft_out;
    for (int k = 0; ok && k < b->n_slots; k++) {
        b->slots[k].dq = (bn_draft_seq){.hist = malloc(((size_t)n_ctx + 1) * sizeof(int32_t)), .slot = k,
                                        .n_ctx = n_ctx};
        ok = b->slots[k].dq.hist != NULL;
    }
    if (!ok) {
        drop_draft(b);
        b->lookup_max = 0;
        return bn_errorf(err, "out of memory for the draft model's %d sequences", b->n_slots);
    }
    return 0;
}

bn_lookup_stats bn_batch_lookup_stats(const bn_batch *b) { return b->lookup; }

// ---- text: whole characters, held back while they may begin a stop string ----

// Room for `extra` more bytes of text.
static int reserve(bn_slot *s, size_t extra) {
    if (s->len + extra <= s->cap) return 0;
    const size_t cap = 2 * (s->len + extra);
    char *t = realloc(s->text, cap);
    if (!t) return -1;
    s->text = t;
    s->cap = cap;
    return 0;
}

// The longest tail of the text that a stop string begins with (and is longer
// than): it waits, since the next token may complete the stop string.
static size_t held_tail(const bn_slot *s) {
    size_t k = s->longest_stop ? s->longest_stop - 1 : 0;
    for (k = k < s->len ? k : s->len; k > 0; k--)
        for (size_t i = 0; i < s->n_stops; i++)
            if (s->stops[i].len > k && !memcmp(s->text + s->len - k, s->stops[i].text, k)) return k;
    return 0;
}

// Decodes token id (-1: none) into the slot's text, as whole characters (final:
// and flushes what is held). Sets `released`, the bytes that may go out now.
// Returns 1 when a stop string has appeared: the text is cut before it.
static int push_token(bn_batch *b, bn_slot *s, int32_t id, bool final) {
    size_t n = 0;
    const char *bytes = id >= 0 ? bn_engine_token_bytes(b->engine, id, &n) : NULL;
    if (reserve(s, n + 8)) return -1; // push writes at most n + 4 bytes, flush 4
    if (bytes) s->len += bn_utf8_stream_push(&s->utf8, bytes, n, s->text + s->len);
    if (final) s->len += bn_utf8_stream_flush(&s->utf8, s->text + s->len);
    // Text released earlier never ends inside a stop string (it would have been
    // held), so a match lies in what is here.
    size_t cut = s->len;
    for (size_t i = 0; i < s->n_stops; i++) {
        const char *m = memmem(s->text, s->len, s->stops[i].text, s->stops[i].len);
        if (m && (size_t)(m - s->text) < cut) cut = (size_t)(m - s->text);
    }
    if (cut < s->len) {
        s->len = s->released = cut;
        return 1;
    }
    s->released = s->len - (final ? 0 : held_tail(s));
    return 0;
}

// ---- the step --------------------------------------------------------------

// The run of a slot that is not done: its pending token, or a prompt chunk of at
// most `room` tokens. Returns the tokens added to the call.
static int gather_run(bn_batch *b, int k, int n, int room, struct run *run) {
    bn_slot *s = &b->slots[k];
    const int left = s->n_hist - s->n_past;
    const int take = left < room ? left : room;
    for (int i = 0; i < take; i++) {
        b->tok[n + i] = s->hist[s->n_past + i];
        b->pos[n + i] = s->n_past + i;
        b->seq[n + i] = k;
    }
    *run = (struct run){k, take, 0};
    s->in_step = true;
    return take;
}

// Whether slot s is generating: its prompt fed, a sampled token pending.
static bool generating(const bn_slot *s) { return s->used && !s->done && s->n_past >= s->n_prompt; }

// Whether slot s still has prompt tokens to score (all of its prompt but the last token).
static bool scoring_left(const bn_slot *s) { return s->scoring && s->n_past < s->n_prompt - 1; }

// Whether slot s has prompt tokens to score and no run in the scoring call being gathered.
static bool to_score(const bn_slot *s) { return s->used && !s->done && !s->in_step && scoring_left(s); }

// The oldest slot whose prompt is not fed yet, that has no run in this step,
// and that has no prompt tokens left to score.
static int next_prefill(const bn_batch *b) {
    int best = -1;
    for (int k = 0; k < b->n_slots; k++) {
        const bn_slot *s = &b->slots[k];
        if (!s->used || s->done || s->in_step || s->n_past >= s->n_prompt || scoring_left(s)) continue;
        if (best < 0 || s->ticket < b->slots[best].ticket) best = k;
    }
    return best;
}

// After the forward: the slot's new token, and whether that ends the request.
// next < 0: a JSON request that no token can continue (json_schema.h's
// limits), which ends there.
static void take_token(bn_batch *b, int k, int32_t next, bn_batch_event *ev) {
    bn_slot *s = &b->slots[k];
    if (next >= 0) {
        s->hist[s->n_hist++] = next; // pending: fed by the next step
        s->n_gen++;
    }
    bool done = true, eog = next >= 0 && bn_engine_is_eog(b->engine, next);
    int hit = 0;
    if (next < 0) s->stop = BN_STOP_LENGTH;
    else if (eog) s->stop = BN_STOP_EOG;
    else if ((hit = push_token(b, s, next, false)) == 1) s->stop = BN_STOP_STRING;
    else if (s->json && bn_json_state_feed_token(s->js, b->engine, next)) s->stop = BN_STOP_EOG;
    else if (s->regex && bn_regex_reply_feed(&s->rr, b->engine, next)) s->stop = BN_STOP_EOG;
    else if (s->max_tokens > 0 && s->n_gen >= s->max_tokens) s->stop = BN_STOP_LENGTH;
    else if (s->n_hist > b->be.n_ctx) s->stop = BN_STOP_CONTEXT; // no room to feed it
    else done = false;
    if (done && hit != 1) push_token(b, s, -1, true); // flush a held tail
    s->done = done;
    *ev = (bn_batch_event){.slot = k, .user = s->user, .token = next, .eog = eog, .text = s->text,
                           .len = s->released, .done = done, .stop = s->stop,
                           .n_prompt = s->n_prompt, .n_gen = s->n_gen, .n_cached = s->n_cached,
                           .logprob = s->logprob, .n_top = s->top_logprobs, .top = s->top,
                           .prompt_logprob = s->scoring ? s->prompt_lp : NULL,
                           .prompt_top = s->scoring ? s->prompt_top : NULL};
}

// The next prompt tokens of the slots scoring their prompts, oldest first, up to
// BN_SCORE_ROWS in all, fed in a forward call of their own with a row of logits
// each: the row of a slot's token at position p gives the log-probabilities of
// its prompt's token p + 1. Returns the runs (b->score_runs; 0: no slot is
// scoring), or -1 with err.
static int score_prompts(bn_batch *b, bn_error *err) {
    const int32_t V = (int32_t)b->engine->model->hp.n_vocab;
    const int most = b->step_tokens < BN_SCORE_ROWS ? b->step_tokens : BN_SCORE_ROWS;
    int n = 0, runs = 0;
    for (;;) {
        int k = -1;
        for (int i = 0; i < b->n_slots; i++)
            if (to_score(&b->slots[i]) && (k < 0 || b->slots[i].ticket < b->slots[k].ticket)) k = i;
        if (k < 0 || n == most) break;
        if (!b->score_rows && (!(b->score_runs = malloc((size_t)b->n_slots * sizeof *b->score_runs)) ||
                               !(b->score_rows = malloc((size_t)BN_SCORE_ROWS * V * sizeof *b->score_rows)))) {
            free(b->score_runs);
            b->score_runs = NULL;
            return bn_errorf(err, "out of memory for %d rows of logits", BN_SCORE_ROWS);
        }
        const bn_slot *s = &b->slots[k];
        const int left = s->n_prompt - 1 - s->n_past;
        n += gather_run(b, k, n, left < most - n ? left : most - n, &b->score_runs[runs++]);
    }
    for (int r = 0; r < runs; r++) b->slots[b->score_runs[r].slot].in_step = false; // their last prompt
    if (n == 0) return 0;                                                     // tokens may go in the step's call
    if (b->be.ops->forward(b->be.be, b->tok, b->pos, b->seq, n, b->score_rows, true, err)) return -1;
    const float *rows = b->score_rows;
    for (int r = 0; r < runs; r++) {
        bn_slot *s = &b->slots[b->score_runs[r].slot];
        const int len = b->score_runs[r].len, i = s->n_past + 1; // the prompt token the run's first row predicts
        bn_logprob_rows_score(rows, len, V, s->hist + i, s->top_logprobs, s->prompt_lp + i,
                              s->prompt_top + (size_t)i * s->top_logprobs);
        s->n_past += len;
        rows += (size_t)len * V;
    }
    return runs;
}

// What a step's forward call gives back for its runs: the argmax ids when every
// run is greedy; the rows' best entries (top.h) when the backend computes them
// and every run is greedy or picks among them (bn_sampler_takes_top: a top-k of
// at most BN_TOP_MAX, with penalties and biases that only lower logits, of at
// most BN_TOP_MAX - k tokens); else the rows of logits (also when a run's request wants
// logprobs or a JSON object, which need the whole row). The tokens are the same
// either way; the first two move a few bytes a row instead of the row.
enum { OUT_LOGITS, OUT_ARGMAX, OUT_TOP };

static int step_output(const bn_batch *b, int runs) {
    bool greedy = b->be.ops->forward_argmax != NULL, top = b->be.ops->forward_top != NULL;
    for (int r = 0; r < runs; r++) {
        const bn_slot *s = &b->slots[b->runs[r].slot];
        const bool rows = s->logprobs || s->json || s->regex; // they need the whole row
        greedy = greedy && !rows && bn_sampler_is_greedy(s->smp);
        top = top && !rows && bn_sampler_takes_top(s->smp); // greedy ones too: the argmax is the first entry
    }
    return greedy ? OUT_ARGMAX : top ? OUT_TOP : OUT_LOGITS;
}

// Slot s's next token from a whole row of logits; with logprobs, also its and
// the likeliest tokens' log-probabilities, from the row as the model gave it
// (before the JSON or regex mask and the sampler, which change it in place);
// -1 when a JSON value's or a regex's mask, or -inf logit biases, leave no token.
static int32_t pick_row(bn_batch *b, bn_slot *s, float *row) {
    const int32_t V = (int32_t)b->engine->model->hp.n_vocab;
    if (s->logprobs) bn_logprob_row_read(&b->lp, row, V, s->top_logprobs, s->top);
    if (s->json && !bn_json_mask_row(&b->json, b->engine, s->js, row)) return -1;
    if (s->regex && !bn_regex_reply_mask(&s->rr, b->engine, row)) return -1;
    const int32_t id = bn_sampler_sample(s->smp, row, s->hist, (size_t)s->n_hist);
    if (s->logprobs && id >= 0) s->logprob = bn_logprob_row_of(&b->lp, id);
    return id;
}

// Run r's next token from the step's output (row: its row of logits, with out
// OUT_LOGITS).
static int32_t pick(bn_batch *b, int r, int out, float *row) {
    bn_slot *s = &b->slots[b->runs[r].slot];
    if (out == OUT_ARGMAX) return b->argmax[r];
    if (out == OUT_TOP) {
        bn_top *top = b->top + (size_t)r * BN_TOP_MAX;
        return bn_sampler_sample_top(s->smp, top, s->hist, (size_t)s->n_hist);
    }
    return pick_row(b, s, row);
}

// ---- lookup ------------------------------------------------------------------

// After the step's pass, for a slot whose pass ended (its pending token is
// not the next drafted one, or none is left): its rows go back. Not before the
// pass: a step that fails leaves the slots as they were.
static void end_draft(bn_batch *b, bn_slot *s) {
    drop_ahead(b, s);
    bn_lookup_end(&s->pass, b->lookup_max);
    s->pass_judged = false;
}

// A draft model's pass that ends at this step (the slot does not take its next
// row): whether it gave a token goes into the slot's back-off before the slot
// may draft again, once however often the step is run.
static void judge_pass(bn_batch *b, bn_slot *s) {
    if (!b->draft.be || !s->pass.next_row || s->pass_judged) return;
    bn_draft_judge(&s->backoff, s->pass.next_row > 1);
    s->pass_judged = true;
}

// Where a step's drafts may go: the rows ahead that are free, and the call's
// first `tokens` tokens (with the generating slots' pending tokens).
typedef struct draft_room {
    int rows, tokens;
} draft_room;

// How many tokens slot s may draft after its pending token, the call's n-th:
// its draft length, as much as its context, its max_tokens (a pass gives up
// to 1 + its draft), the room's tokens (less a token for each of the `later`
// slots still to gather) and rows leave room for.
static int draft_budget(const bn_batch *b, const bn_slot *s, int n, int later, draft_room room) {
    int most = bn_lookup_len(&s->pass, b->lookup_max); // as end_draft will keep it
    const int ctx = b->be.n_ctx - s->n_hist, left = s->max_tokens > 0 ? s->max_tokens - s->n_gen - 1 : most;
    const int call = room.tokens - n - later;
    most = ctx < most ? ctx : most;
    most = left < most ? left : most;
    most = call < most ? call : most;
    return room.rows < most ? room.rows : most;
}

// Whether the generating slot s takes its token from a row ahead this step.
static bool takes_row_ahead(const bn_slot *s) { return bn_lookup_takes(&s->pass, s->hist[s->n_hist - 1]); }

// Whether slot s's prompt, as far as the main model has fed it, goes to the
// draft model in this step's draft calls (bn_draft_job.feed_only) rather than
// all at once at the slot's first draft, in a step that other slots wait on:
// a request being fed its prompt that may draft (a max_tokens of 3 or more,
// or none, and a prompt shorter than the draft model's context).
static bool feeds_draft(const bn_slot *s) {
    return s->used && !s->done && s->n_past > 0 && s->n_past < s->n_prompt && s->n_prompt < s->dq.n_ctx &&
           (s->max_tokens <= 0 || s->max_tokens > 2);
}

// A draft model's drafts for the step, before its call is gathered: every
// generating slot that verifies a new pass drafts, all in the same draft
// calls (bn_draft_steps), as much as draft_budget leaves it were every slot
// before it to take all of its own (so what the gathering leaves a slot is
// never less). Slot k's tokens go to b->draft_out[k], their count to its
// `drafted`. The same calls feed the draft model the prompt chunks that the
// main model was fed so far (feeds_draft). later: the generating slots.
// Returns 0, or -1 and err.
static int draft_slots(bn_batch *b, draft_room room, int later, bn_error *err) {
    int n = 0, jobs = 0;
    for (int k = 0; k < b->n_slots; k++) {
        bn_slot *s = &b->slots[k];
        s->drafted = 0;
        if (!generating(s)) {
            if (feeds_draft(s))
                b->draft_jobs[jobs++] = (bn_draft_job){.seq = &s->dq, .feed_only = true, .text = s->hist, .n = s->n_past};
            continue;
        }
        later--;
        if (takes_row_ahead(s)) continue;
        judge_pass(b, s); // before the back-off decides
        const int most = draft_budget(b, s, ++n, later, room);
        if (most <= 0) continue;
        n += most, room.rows -= most;
        b->draft_jobs[jobs++] = (bn_draft_job){.seq = &s->dq, .backoff = &s->backoff, .copy = &s->draft_smp,
                                               .smp = s->smp, .text = s->hist, .n = s->n_hist, .max = most,
                                               .out = b->draft_out + (size_t)k * BN_LOOKUP_MAX};
    }
    if (jobs && bn_draft_steps(&b->draft, b->draft_vocab, &b->draft_call, b->draft_jobs, jobs, b->draft_p_min,
                               b->draft_rows, err))
        return -1;
    for (int i = 0; i < jobs; i++) b->slots[b->draft_jobs[i].seq->slot].drafted = b->draft_jobs[i].got;
    return 0;
}

// A draft model that fails (its backend, or logits that are not finite) costs
// the batch its drafts, not its requests: drafting stops for good, as
// bn_batch_set_lookup(b, 0) stops it between steps, and this step goes on
// without drafts (draft_slots drafted for no slot). bn_batch_draft_note says why.
static void draft_failed(bn_batch *b, const bn_error *why) {
    snprintf(b->draft_note, sizeof b->draft_note, "the draft model failed, and drafts no more: %s", why->msg);
    bn_error ignored;
    bn_batch_set_lookup(b, 0, &ignored); // turning drafts off cannot fail
    for (int k = 0; k < b->n_slots; k++) b->slots[k].drafted = 0;
}

// Slot k's draft after its pending token (the run gathered last, ending at n)
// into the call: prompt lookup's, or what the draft model drafted for it
// (draft_slots), as much as draft_budget leaves it. Returns how many.
static int draft_run(bn_batch *b, int k, int n, int later, draft_room room) {
    bn_slot *s = &b->slots[k];
    const int most = draft_budget(b, s, n, later, room);
    int d = 0;
    if (most > 0 && b->draft.be) {
        d = s->drafted < most ? s->drafted : most; // never cut: draft_slots gave it no more than this
        memcpy(b->tok + n, b->draft_out + (size_t)k * BN_LOOKUP_MAX, (size_t)d * sizeof *b->tok);
    } else if (most > 0) {
        d = bn_lookup_draft(s->hist, s->n_hist, most, b->tok + n);
    }
    for (int i = 0; i < d; i++) b->pos[n + i] = s->n_hist + i, b->seq[n + i] = k;
    return d;
}

// After the pass: slot s's d drafted tokens (draft, in the call) and the rows
// after them (rows[1..d]) go to free rows ahead.
static void keep_ahead(bn_batch *b, bn_slot *s, const int32_t *draft, const float *rows, int d) {
    const size_t V = b->engine->model->hp.n_vocab;
    bn_lookup_begin(&s->pass, draft, d);
    for (int i = 0; i < d; i++) {
        const int j = __builtin_ctzll(~b->ahead_used); // draft_run took no more than are free
        b->ahead_used |= UINT64_C(1) << j;
        memcpy(b->ahead + (size_t)j * V, rows + (size_t)(i + 1) * V, V * sizeof *rows);
        s->ahead[i] = (uint8_t)j;
    }
    b->lookup.drafted += d;
    b->lookup.passes++;
}

// Slot s's token from its next row ahead, whose K/V its pending token's are.
static int32_t pick_ahead(bn_batch *b, bn_slot *s) {
    const int j = s->ahead[s->pass.next_row++ - 1];
    b->ahead_used &= ~(UINT64_C(1) << j); // free again once read, before the next step's pass
    s->n_past = s->n_hist;
    b->lookup.accepted++;
    return pick_row(b, s, b->ahead + (size_t)j * b->engine->model->hp.n_vocab);
}

int bn_batch_step(bn_batch *b, const bn_batch_event **events, int *n_events, bn_error *err) {
    *events = b->events;
    *n_events = 0;
    // Text handed out by the last step leaves the slots' buffers.
    for (int k = 0; k < b->n_slots; k++) {
        bn_slot *s = &b->slots[k];
        s->in_step = s->takes_ahead = false;
        if (!s->released) continue;
        memmove(s->text, s->text + s->released, s->len - s->released);
        s->len -= s->released;
        s->released = 0;
    }
    // Prompts being scored first, in a call of their own (the step's call may
    // then feed their last tokens); then, in one call, decode tokens (every
    // generating slot gets one, with its draft) and prompt chunks (in a second
    // call where there are drafts).
    const int scored = score_prompts(b, err);
    if (scored < 0) return -1;
    int n = 0, runs = 0, drafted = 0, later = 0; // later: generating slots not yet gathered
    for (int k = 0; k < b->n_slots; k++) later += generating(&b->slots[k]);
    // Drafts go into the rows ahead that are free; while a prompt waits to be
    // fed, into at most half of the call's room past the pending tokens (the
    // rest is the prompt's, which would otherwise wait while drafts fill it).
    draft_room room = {b->lookup_max ? BN_LOOKUP_ROWS - __builtin_popcountll(b->ahead_used) : 0, b->step_tokens};
    if (next_prefill(b) >= 0) {
        int pending = 0; // tokens the generating slots put in the call (none where a row ahead gives it)
        for (int k = 0; k < b->n_slots; k++) pending += generating(&b->slots[k]) && !takes_row_ahead(&b->slots[k]);
        room.tokens = pending + (b->step_tokens - pending) / 2;
    }
    if (room.rows && b->draft.be) {
        bn_error why = {{0}};
        if (draft_slots(b, room, later, &why)) draft_failed(b, &why);
    }
    for (int k = 0; k < b->n_slots; k++) {
        bn_slot *s = &b->slots[k];
        if (!generating(s)) continue;
        later--;
        if (takes_row_ahead(s)) {
            s->takes_ahead = true;
            continue;
        }
        judge_pass(b, s);
        struct run *run = &b->runs[runs++];
        n += gather_run(b, k, n, 1, run);
        const int d = room.rows ? draft_run(b, k, n, later, room) : 0;
        run->len += d, run->drafted = d, n += d, drafted += d, room.rows -= d;
    }
    const int decode_runs = runs, decode_n = n; // the generating slots' runs come first
    for (int k; n < b->step_tokens && (k = next_prefill(b)) >= 0; runs++)
        n += gather_run(b, k, n, b->step_tokens - n, &b->runs[runs]);
    // A draft's rows: the decode runs' call brings back every token's row, and
    // prompt chunks go in a call of their own, a row a run.
    const int out = drafted ? OUT_LOGITS : step_output(b, runs);
    const bn_backend_ops *ops = b->be.ops;
    const int first = drafted ? decode_n : n; // the tokens of the first call
    if (first > 0 && (out == OUT_ARGMAX ? ops->forward_argmax(b->be.be, b->tok, b->pos, b->seq, first, b->argmax, err)
                      : out == OUT_TOP  ? ops->forward_top(b->be.be, b->tok, b->pos, b->seq, first, b->top, NULL, err)
                                        : ops->forward(b->be.be, b->tok, b->pos, b->seq, first, b->logits, drafted > 0,
                                                       err)))
        goto fail;
    if (n > first && ops->forward(b->be.be, b->tok + first, b->pos + first, b->seq + first, n - first,
                                  b->logits + (size_t)first * b->engine->model->hp.n_vocab, false, err))
        goto fail;
    for (int k = 0; k < b->n_slots; k++)
        if (generating(&b->slots[k]) && b->slots[k].pass.next_row && !b->slots[k].takes_ahead)
            end_draft(b, &b->slots[k]);
    const size_t V = b->engine->model->hp.n_vocab;
    float *row = b->logits; // the run's first row (drafted: every decode run token's row, in call order)
    for (int r = 0, t = 0; r < runs;
         row += (size_t)(drafted && r < decode_runs ? b->runs[r].len : 1) * V, t += b->runs[r].len, r++) {
        bn_slot *s = &b->slots[b->runs[r].slot];
        s->n_past += b->runs[r].len - b->runs[r].drafted; // a draft's K/V count once its tokens are sampled
        if (s->n_past < s->n_hist) continue; // a prompt chunk with more to come
        const int32_t next = pick(b, r, out, row);
        if (b->runs[r].drafted) keep_ahead(b, s, b->tok + t + 1, row, b->runs[r].drafted);
        take_token(b, b->runs[r].slot, next, &b->events[(*n_events)++]);
    }
    for (int k = 0; k < b->n_slots; k++)
        if (b->slots[k].takes_ahead) take_token(b, k, pick_ahead(b, &b->slots[k]), &b->events[(*n_events)++]);
    return 0;
fail:
    for (int r = 0; r < scored; r++) // as before: their K/V there are written again
        b->slots[b->score_runs[r].slot].n_past -= b->score_runs[r].len;
    return -1;
}
