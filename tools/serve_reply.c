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

// choice.logprobs for the tokens in out (out NULL, or none asked for: null).
// Chat: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]}.
// Completion: {"tokens", "token_logprobs", "top_logprobs": [{token: logprob}],
// "text_offset"}, the offsets in bytes of generated text, counted on from the
// stream's earlier chunks (r->text_offset).
static cJSON *logprobs_json(const bn_api *a, bn_api_reply *r, const bn_job_output *out) {
    if (!r->logprobs || !out) return cJSON_CreateNull();
    const bn_job_logprob *lp = (const bn_job_logprob *)out->logprobs.data;
    const size_t n = out->logprobs.len / sizeof *lp;
    cJSON *o = cJSON_CreateObject();
    if (r->chat) {
        cJSON *content = cJSON_AddArrayToObject(o, "content");
        for (size_t i = 0; i < n; i++) {
            cJSON *t = bn_logprob_entry_json(a->engine, lp[i].id, lp[i].logprob);
            cJSON *top = cJSON_AddArrayToObject(t, "top_logprobs");
            for (int j = 0; j < lp[i].n_top; j++)
                cJSON_AddItemToArray(top, bn_logprob_entry_json(a->engine, lp[i].top[j].id, lp[i].top[j].logprob));
            cJSON_AddItemToArray(content, t);
        }
        return o;
    }
    cJSON *tokens = cJSON_AddArrayToObject(o, "tokens"), *values = cJSON_AddArrayToObject(o, "token_logprobs");
    cJSON *tops = cJSON_AddArrayToObject(o, "top_logprobs"), *offsets = cJSON_AddArrayToObject(o, "text_offset");
    for (size_t i = 0; i < n; i++) {
        size_t len;
        char *key = token_key(a->engine, lp[i].id, &len);
        cJSON_AddItemToArray(tokens, cJSON_CreateString(key ? key : ""));
        free(key);
        cJSON_AddItemToArray(values, cJSON_CreateNumber(lp[i].logprob));
        cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)r->text_offset));
        r->text_offset += len;
        cJSON *top = cJSON_CreateObject();
        for (int j = 0; j < lp[i].n_top; j++) { // keys are unique; should two tokens spell one, the likelier
            key = token_key(a->engine, lp[i].top[j].id, &len);
            if (key && !cJSON_GetObjectItemCaseSensitive(top, key)) cJSON_AddNumberToObject(top, key, lp[i].top[j].logprob);
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

static const char *finish_reason(const bn_api_reply *r, bn_stop stop) {
    if (r->called_tools) return "tool_calls";
    return stop == BN_STOP_EOG || stop == BN_STOP_STRING ? "stop" : "length";
}

// A chat reply's message (or a stream's delta) from its whole text: content,
// or with tools the calls it makes (chat_tools.h).
static void message_content(cJSON *m, bn_api_reply *r, const char *text, size_t len, bool delta) {
    if (!r->tools) {
        cJSON_AddItemToObject(m, "content", bn_text_json(text, len));
        return;
    }
    const char *finish;
    bn_tools_reply(m, text, len, r->id, delta, &finish);
    r->called_tools = finish != NULL;
}

static void add_usage(cJSON *o, const bn_job_state *st) {
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", st->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", st->n_gen);
    cJSON_AddNumberToObject(u, "total_tokens", st->n_prompt + st->n_gen);
    cJSON *details = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(details, "cached_tokens", st->n_cached);
}

// The object's frame, with one choice (index 0) returned for the caller to fill.
static cJSON *frame(const bn_api *a, const bn_api_reply *r, const char *object, cJSON **choice) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)r->created);
    cJSON_AddStringToObject(o, "model", a->model_id);
    *choice = cJSON_CreateObject();
    cJSON_AddNumberToObject(*choice, "index", 0);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), *choice);
    return o;
}

void bn_api_finish(const bn_api *a, bn_api_reply *r, const bn_job_output *out, const bn_job_state *st) {
    const char *text = out->text.data ? out->text.data : "";
    const size_t len = out->text.len;
    if (st->error[0]) {
        r->status = st->status;
        r->body = bn_api_error_json(st->status, st->error, NULL);
        return;
    }
    cJSON *choice, *o = frame(a, r, r->chat ? "chat.completion" : "text_completion", &choice);
    if (r->chat) {
        cJSON *m = cJSON_AddObjectToObject(choice, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        message_content(m, r, text, len, false);
    } else {
        cJSON_AddItemToObject(choice, "text", bn_text_json(text, len));
    }
    cJSON_AddItemToObject(choice, "logprobs", logprobs_json(a, r, out));
    cJSON_AddStringToObject(choice, "finish_reason", finish_reason(r, st->stop));
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

// A stream chunk: a chat delta {role?, content?} or a completion's text piece,
// with the logprobs of out's tokens (out NULL: the opening or the last chunk).
static cJSON *chunk(const bn_api *a, bn_api_reply *r, const bn_job_output *out, bool role,
                    const bn_job_state *last) {
    cJSON *choice, *o = frame(a, r, r->chat ? "chat.completion.chunk" : "text_completion", &choice);
    const char *text = out && out->text.data ? out->text.data : "";
    const size_t len = out ? out->text.len : 0;
    if (r->chat) {
        cJSON *d = cJSON_AddObjectToObject(choice, "delta");
        if (role) cJSON_AddStringToObject(d, "role", "assistant");
        if (role && r->tools) cJSON_AddNullToObject(d, "content"); // as OpenAI opens a reply that may call tools
        else if (role) cJSON_AddStringToObject(d, "content", "");
        else if (out) message_content(d, r, text, len, true);
    } else {
        cJSON_AddItemToObject(choice, "text", bn_text_json(text, len));
    }
    cJSON_AddItemToObject(choice, "logprobs", logprobs_json(a, r, out));
    if (last) cJSON_AddStringToObject(choice, "finish_reason", finish_reason(r, last->stop));
    else cJSON_AddNullToObject(choice, "finish_reason");
    if (last) add_usage(o, last);
    return o;
}

char *bn_api_event(const bn_api *a, bn_api_reply *r, const bn_job_output *got, const bn_job_state *st,
                   bool first) {
    bn_buf out = {0};
    if (bn_buf_reserve(&out, 0)) return NULL; // "" when there is nothing to send
    if (first && r->chat) add_event(&out, chunk(a, r, NULL, true, NULL), NULL);
    // With tools the reply is known only whole: serve_http.c holds it back till then.
    if ((got->text.len || got->logprobs.len) && (!r->tools || st->done))
        add_event(&out, chunk(a, r, got, false, NULL), NULL);
    if (st->done && st->error[0]) add_event(&out, error_object(st->status, st->error, NULL), NULL);
    else if (st->done) add_event(&out, chunk(a, r, NULL, false, st), NULL);
    if (st->done) add_event(&out, NULL, "[DONE]");
    return out.data;
}
