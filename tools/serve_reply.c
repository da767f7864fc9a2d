// serve_reply.c - the JSON the server answers with (serve_reply.h): OpenAI's
// completion and chat.completion objects, their stream chunks, error objects.
#include "serve_reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_tools.h"
#include "io.h"

cJSON *bn_piece_json(const bn_engine *e, int32_t id) {
    size_t n = 0;
    const char *b = bn_engine_token_bytes(e, id, &n);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", id);
    if (b && bn_utf8_whole(b, n)) {
        cJSON_AddItemToObject(o, "piece", bn_text_json(b, n));
    } else {
        cJSON *bytes = cJSON_AddArrayToObject(o, "piece");
        for (size_t i = 0; b && i < n; i++) cJSON_AddItemToArray(bytes, cJSON_CreateNumber((unsigned char)b[i]));
    }
    return o;
}

// ---- logprobs: OpenAI's two shapes ---------------------------------------------

static cJSON *bytes_json(const char *b, size_t n) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((unsigned char)b[i]));
    return a;
}

cJSON *bn_logprob_entry_json(const bn_engine *e, int32_t id, float logprob) {
    size_t n = 0;
    const char *b = bn_engine_token_bytes(e, id, &n);
    if (!b) n = 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "token", bn_text_json(b, n));
    cJSON_AddNumberToObject(o, "logprob", logprob);
    cJSON_AddItemToObject(o, "bytes", bytes_json(b, n));
    return o;
}

// A completion's name for a token (malloc'd; *len: the token's bytes): its text,
// or where its bytes are not whole UTF-8 characters (a piece of one) "bytes:"
// and them as \xNN, as OpenAI writes them, so that no two tokens share a name.
static char *token_key(const bn_engine *e, int32_t id, size_t *len) {
    size_t n = 0;
    const char *b = bn_engine_token_bytes(e, id, &n);
    if (!b) n = 0;
    *len = n;
    char *out = malloc(4 * n + 8);
    if (!out) return NULL;
    if (bn_utf8_whole(b ? b : "", n)) {
        memcpy(out, b, n);
        out[n] = 0;
        return out;
    }
    size_t o = (size_t)sprintf(out, "bytes:");
    for (size_t i = 0; i < n; i++) o += (size_t)sprintf(out + o, "\\x%02x", (unsigned char)b[i]);
    return out;
}

// Choice i's logprobs for the tokens in out (out NULL, or none asked for: null).
// Chat: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]}.
// Completion: {"tokens", "token_logprobs", "top_logprobs": [{token: logprob}],
// "text_offset"}, the offsets in bytes of the choice's text, counted on from
// the stream's earlier chunks (r->choice[i].text_offset). With echo the
// prompt's tokens come first, the first of them with null for its
// log-probability and alternatives (nothing precedes it), as OpenAI writes it.
static cJSON *logprobs_json(const bn_api *a, bn_api_reply *r, int i, const bn_job_output *out) {
    if (!r->logprobs || !out) return cJSON_CreateNull();
    const bn_job_logprob *lp = (const bn_job_logprob *)out->logprobs.data;
    const size_t n = out->logprobs.len / sizeof *lp;
    cJSON *o = cJSON_CreateObject();
    if (r->chat) {
        cJSON *content = cJSON_AddArrayToObject(o, "content");
        for (size_t t = 0; t < n; t++) {
            cJSON *e = bn_logprob_entry_json(a->engine, lp[t].id, lp[t].logprob);
            cJSON *top = cJSON_AddArrayToObject(e, "top_logprobs");
            for (int j = 0; j < lp[t].n_top; j++)
                cJSON_AddItemToArray(top, bn_logprob_entry_json(a->engine, lp[t].top[j].id, lp[t].top[j].logprob));
            cJSON_AddItemToArray(content, e);
        }
        return o;
    }
    cJSON *tokens = cJSON_AddArrayToObject(o, "tokens"), *values = cJSON_AddArrayToObject(o, "token_logprobs");
    cJSON *tops = cJSON_AddArrayToObject(o, "top_logprobs"), *offsets = cJSON_AddArrayToObject(o, "text_offset");
    for (size_t t = 0; t < n; t++) {
        size_t len;
        char *key = token_key(a->engine, lp[t].id, &len);
        cJSON_AddItemToArray(tokens, cJSON_CreateString(key ? key : ""));
        free(key);
        cJSON_AddItemToArray(values, lp[t].first ? cJSON_CreateNull() : cJSON_CreateNumber(lp[t].logprob));
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)r->choice[i].text_offset));
        // an added BOS, an end of generation, a tokenizer's space before the text: not in the text
        r->choice[i].text_offset += lp[t].unseen ? 0 : len - lp[t].prefixed;
        if (lp[t].first) {
            cJSON_AddItemToArray(tops, cJSON_CreateNull());
            continue;
        }
        cJSON *top = cJSON_CreateObject();
        for (int j = 0; j < lp[t].n_top; j++) { // keys are unique; should two tokens spell one, the likelier
            key = token_key(a->engine, lp[t].top[j].id, &len);
            if (key && !cJSON_GetObjectItemCaseSensitive(top, key)) cJSON_AddNumberToObject(top, key, lp[t].top[j].logprob);
            free(key);
        }
        cJSON_AddItemToArray(tops, top);
    }
    return o;
}

static const char *error_type(int status) {
    switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 413: return "invalid_request_error";
    case 503: return "unavailable_error";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

static cJSON *error_object(int status, const char *message, const char *code) {
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "message", message);
    cJSON_AddStringToObject(e, "type", error_type(status));
    cJSON_AddNullToObject(e, "param");
    if (code) cJSON_AddStringToObject(e, "code", code);
    else cJSON_AddNullToObject(e, "code");
    return o;
}

char *bn_api_error_json(int status, const char *message, const char *code) {
    return bn_print_taken(error_object(status, message, code));
}

static const char *finish_reason(const bn_api_reply *r, int i, bn_stop stop) {
    if (r->choice[i].called_tools) return "tool_calls";
    return stop == BN_STOP_EOG || stop == BN_STOP_STRING ? "stop" : "length";
}

// Choice i's message (or a stream's delta) from its whole text: content, or
// with tools the calls it makes (chat_tools.h). The calls' ids name the choice
// past the first ("call_<id>_<i>_0"), so that no two choices share one.
static void message_content(cJSON *m, bn_api_reply *r, int i, const char *text, size_t len, bool delta) {
    if (!r->tools) {
        cJSON_AddItemToObject(m, "content", bn_text_json(text, len));
        return;
    }
    char reply_id[sizeof r->id + 16];
    if (i) snprintf(reply_id, sizeof reply_id, "%s_%d", r->id, i);
    else snprintf(reply_id, sizeof reply_id, "%s", r->id);
    const char *finish;
    bn_tools_reply(m, text, len, reply_id, delta, &finish);
    r->choice[i].called_tools = finish != NULL;
}

// The request's usage: the prompt once (as OpenAI counts it), the tokens of
// every choice, and of the prompt's the fewest any choice took from a cache.
static void add_usage(cJSON *o, const bn_job_state *st) {
    int n_gen = 0, n_cached = st->choice[0].n_cached;
    for (int i = 0; i < st->n_choices; i++) {
        n_gen += st->choice[i].n_gen;
        if (st->choice[i].n_cached < n_cached) n_cached = st->choice[i].n_cached;
    }
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", st->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", n_gen);
    cJSON_AddNumberToObject(u, "total_tokens", st->n_prompt + n_gen);
    cJSON *details = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(details, "cached_tokens", n_cached);
}

// The object's frame, with an empty "choices" array into *choices.
static cJSON *frame(const bn_api *a, const bn_api_reply *r, const char *object, cJSON **choices) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)r->created);
    cJSON_AddStringToObject(o, "model", a->model_id);
    *choices = cJSON_AddArrayToObject(o, "choices");
    return o;
}

static cJSON *add_choice(cJSON *choices, int i) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", i);
    cJSON_AddItemToArray(choices, c);
    return c;
}

void bn_api_finish(const bn_api *a, bn_api_reply *r, const bn_job_output *out, const bn_job_state *st) {
    if (st->error[0]) {
        r->status = st->status;
        r->body = bn_api_error_json(st->status, st->error, NULL);
        return;
    }
    cJSON *choices, *o = frame(a, r, r->chat ? "chat.completion" : "text_completion", &choices);
    for (int i = 0; i < st->n_choices; i++) {
        const char *text = out[i].text.data ? out[i].text.data : "";
        const size_t len = out[i].text.len;
        cJSON *choice = add_choice(choices, i);
        if (r->chat) {
            cJSON *m = cJSON_AddObjectToObject(choice, "message");
            cJSON_AddStringToObject(m, "role", "assistant");
            message_content(m, r, i, text, len, false);
        } else {
            cJSON_AddItemToObject(choice, "text", bn_text_json(text, len));
        }
        cJSON_AddItemToObject(choice, "logprobs", logprobs_json(a, r, i, &out[i]));
        cJSON_AddStringToObject(choice, "finish_reason", finish_reason(r, i, st->choice[i].stop));
    }
    add_usage(o, st);
    r->status = 200;
    r->body = bn_print_taken(o);
}

// Appends "data: JSON\n\n" for o (deleted), or "data: raw\n\n", to out.
static void add_event(bn_buf *out, cJSON *o, const char *raw) {
    char *json = o ? bn_print_taken(o) : NULL;
    const char *data = json ? json : raw;
    if (data) bn_buf_printf(out, "data: %s\n\n", data); // out of memory: the event is lost
    free(json);
}

// A stream chunk of choice i: a chat delta {role?, content?} or a completion's
// text piece, with the logprobs of out's tokens (out NULL: the opening or the
// last chunk); the last (stop) has the finish_reason, and usage its totals.
static cJSON *chunk(const bn_api *a, bn_api_reply *r, int i, const bn_job_output *out, bool role,
                    const bn_stop *stop, const bn_job_state *usage) {
    cJSON *choices, *o = frame(a, r, r->chat ? "chat.completion.chunk" : "text_completion", &choices);
    cJSON *choice = add_choice(choices, i);
    const char *text = out && out->text.data ? out->text.data : "";
    const size_t len = out ? out->text.len : 0;
    if (r->chat) {
        cJSON *d = cJSON_AddObjectToObject(choice, "delta");
        if (role) cJSON_AddStringToObject(d, "role", "assistant");
        if (role && r->tools) cJSON_AddNullToObject(d, "content"); // as OpenAI opens a reply that may call tools
        else if (role) cJSON_AddStringToObject(d, "content", "");
        else if (out) message_content(d, r, i, text, len, true);
    } else {
        cJSON_AddItemToObject(choice, "text", bn_text_json(text, len));
    }
    cJSON_AddItemToObject(choice, "logprobs", logprobs_json(a, r, i, out));
    if (stop) cJSON_AddStringToObject(choice, "finish_reason", finish_reason(r, i, *stop));
    else cJSON_AddNullToObject(choice, "finish_reason");
    if (usage) add_usage(o, usage);
    return o;
}

char *bn_api_event(const bn_api *a, bn_api_reply *r, bn_job_output *got, const bn_job_state *st, bool first) {
    bn_buf out = {0};
    if (bn_buf_reserve(&out, 0)) return NULL; // "" when there is nothing to send
    for (int i = 0; first && r->chat && i < st->n_choices; i++) add_event(&out, chunk(a, r, i, NULL, true, NULL, NULL), NULL);
    int open = 0; // choices whose last chunk has not gone out
    for (int i = 0; i < st->n_choices; i++) open += !r->choice[i].ended;
    for (int i = 0; i < st->n_choices; i++) {
        const bn_choice_state *c = &st->choice[i];
        // With tools a choice's reply is known only whole: it waits in got[i] till then.
        if ((got[i].text.len || got[i].logprobs.len) && (!r->tools || c->done)) {
            add_event(&out, chunk(a, r, i, &got[i], false, NULL, NULL), NULL);
            got[i].text.len = got[i].logprobs.len = 0;
        }
        if (c->done && !r->choice[i].ended && !st->error[0]) {
            r->choice[i].ended = true;
            open--;
            add_event(&out, chunk(a, r, i, NULL, false, &c->stop, st->done && !open ? st : NULL), NULL);
        }
    }
    if (st->done && st->error[0]) add_event(&out, error_object(st->status, st->error, NULL), NULL);
    if (st->done) add_event(&out, NULL, "[DONE]");
    return out.data;
}
