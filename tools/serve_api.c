// serve_api.c - the endpoints (serve_api.h): check the request's JSON, build the
// prompt and sampling parameters, start the job. Replies are built in
// serve_reply.c. Every field is type-checked; a bad one is a 400 that names it.
#include "serve_api.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat_tools.h"
#include "json_prefix.h"
#include "json_schema.h"
#include "serve_reply.h"

#define MAX_STOP 16 // stop strings per request (OpenAI allows 4)
#define MAX_LOGIT_BIAS 1024 // logit_bias entries per request

// A request's error: the reply's status and OpenAI error body.
static void reply_error(bn_api_reply *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reply_error(bn_api_reply *r, int status, const char *code, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->status = status;
    r->body = bn_api_error_json(status, msg, code);
}

static void reply_json(bn_api_reply *r, cJSON *o) {
    r->status = 200;
    r->body = bn_print_taken(o);
    if (!r->body) reply_error(r, 500, NULL, "out of memory");
}

// ---- typed fields: absent is fine (the default stays), a wrong type is not ----

typedef struct fields {
    const cJSON *o;
    bn_api_reply *r;
    bool bad; // a reply_error has been set
} fields;

static bool fail(fields *f, const char *fmt, const char *key) {
    if (!f->bad) reply_error(f->r, 400, "invalid_value", fmt, key);
    f->bad = true;
    return false;
}

static const cJSON *field(fields *f, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(f->o, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static bool get_number(fields *f, const char *key, double lo, double hi, float *out) {
    const cJSON *v = field(f, key);
    if (!v) return true;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi) {
        char fmt[96];
        snprintf(fmt, sizeof fmt, "'%%s' must be a number in [%g, %g]", lo, hi);
        return fail(f, fmt, key);
    }
    *out = (float)v->valuedouble;
    return true;
}

static bool get_int(fields *f, const char *key, double lo, double hi, double *out) {
    const cJSON *v = field(f, key);
    if (!v) return true;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi) {
        char fmt[96];
        snprintf(fmt, sizeof fmt, "'%%s' must be an integer in [%.0f, %.0f]", lo, hi);
        return fail(f, fmt, key);
    }
    *out = v->valuedouble;
    return true;
}

static bool get_bool(fields *f, const char *key, bool *out) {
    const cJSON *v = field(f, key);
    if (!v) return true;
    if (!cJSON_IsBool(v)) return fail(f, "'%s' must be true or false", key);
    *out = cJSON_IsTrue(v);
    return true;
}

// The body as a JSON object, or a 400. A \u0000 in it is refused: cJSON would
// cut that string short, and the request would be served on the cut one.
static cJSON *parse_object(const char *body, size_t len, bn_api_reply *r) {
    if (bn_json_has_nul_escape(body, len)) {
        reply_error(r, 400, "invalid_value", "the body has a \\u0000 escape (a NUL), which this server cannot carry");
        return NULL;
    }
    cJSON *o = cJSON_ParseWithLength(body, len);
    if (!o) reply_error(r, 400, "invalid_json", "the body is not valid JSON");
    else if (!cJSON_IsObject(o)) reply_error(r, 400, "invalid_json", "the body must be a JSON object");
    if (o && r->status) cJSON_Delete(o), o = NULL;
    return o;
}

// ---- generation requests --------------------------------------------------------

// A seed for a request that gives none, so that two requests differ.
static uint64_t fresh_seed(void) {
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static uint64_t counter;
    pthread_mutex_lock(&mu);
    uint64_t c = ++counter;
    pthread_mutex_unlock(&mu);
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (uint64_t)t.tv_nsec * 0x9E3779B97F4A7C15ULL ^ (uint64_t)t.tv_sec ^ c << 32;
}

static bool get_stop(fields *f, bn_job_params *p) {
    const cJSON *v = field(f, "stop");
    if (!v) return true;
    const int n = cJSON_IsString(v) ? 1 : cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    if (n < 0 || n > MAX_STOP) return fail(f, "'%s' must be a string or an array of at most 16 strings", "stop");
    if (!(p->stop = calloc((size_t)n + 1, sizeof *p->stop))) return fail(f, "out of memory (%s)", "stop");
    for (int i = 0; i < n; i++) {
        const cJSON *s = cJSON_IsString(v) ? v : cJSON_GetArrayItem(v, i);
        if (!cJSON_IsString(s)) return fail(f, "'%s' must be a string or an array of strings", "stop");
        if (!(p->stop[p->n_stop++] = strdup(s->valuestring))) return fail(f, "out of memory (%s)", "stop");
    }
    return true;
}

// The fields both endpoints share: sampling (absent ones as the server's flags
// set them, whose logit biases a request's own replace), limits (max_tokens 0
// only with echo, below), stream, n (the choices per prompt: choice i samples
// with the seed + i, so choice 0 is the n = 1 reply), and llama.cpp's
// cache_prompt (default true: reuse a slot's cached start of the prompt).
static bool get_params(const bn_api *a, fields *f, bn_job_params *p, bool *stream, int default_max) {
    bn_sampling *sp = &p->sampling;
    *sp = a->sampling;
    if (!a->seed_given) sp->seed = fresh_seed();
    double seed = -1, n = 1, max_tokens = -1, top_k = sp->top_k, last_n = sp->repeat_last_n;
    get_number(f, "temperature", 0, 100, &sp->temperature);
    get_number(f, "top_p", 0, 1, &sp->top_p);
    get_number(f, "min_p", 0, 1, &sp->min_p);
    get_number(f, "repeat_penalty", 0.01, 100, &sp->repeat_penalty);
    get_number(f, "frequency_penalty", -2, 2, &sp->frequency_penalty); // OpenAI's range
    get_number(f, "presence_penalty", -2, 2, &sp->presence_penalty);
    get_int(f, "repeat_last_n", -1, INT_MAX, &last_n); // the penalties' window (llama.cpp's: default 64, -1 all)
    get_int(f, "top_k", 0, INT_MAX, &top_k);
    get_int(f, "seed", -1, 9007199254740992.0, &seed); // JSON numbers are exact up to 2^53
    get_int(f, "n", 1, BN_JOB_MAX_CHOICES, &n); // choices, each its own sequence (seed + i)
    get_int(f, "max_tokens", 0, INT_MAX, &max_tokens);
    get_int(f, "max_completion_tokens", 0, INT_MAX, &max_tokens);
    bool cache_prompt = true;
    get_bool(f, "stream", stream);
    get_bool(f, "cache_prompt", &cache_prompt);
    get_stop(f, p);
    if (f->bad) return false;
    if (sp->top_p <= 0) return fail(f, "'%s' must be in (0, 1]", "top_p");
    if (sp->min_p >= 1) return fail(f, "'%s' must be in [0, 1)", "min_p");
    sp->top_k = (int)top_k;
    sp->repeat_last_n = last_n < 0 ? INT_MAX : (int)last_n;
    if (seed >= 0) sp->seed = (uint64_t)seed;
    else if (field(f, "seed")) sp->seed = fresh_seed(); // -1: a seed of its own, even where serve has --seed
    p->score_only = max_tokens == 0;
    p->max_tokens = max_tokens < 0 ? default_max : (int)max_tokens;
    p->n = (int)n;
    p->no_prefix_cache = !cache_prompt;
    return true;
}

// logprobs: a chat's {"logprobs": bool, "top_logprobs": 0..20}, a completion's
// {"logprobs": 0..20} (the alternatives per token; absent or null: none).
static bool get_logprobs(fields *f, bool chat, bn_job_params *p) {
    double top = chat ? 0 : -1;
    if (chat) get_bool(f, "logprobs", &p->logprobs);
    get_int(f, chat ? "top_logprobs" : "logprobs", 0, BN_TOP_LOGPROBS_MAX, &top);
    if (f->bad) return false;
    if (chat && top > 0 && !p->logprobs) return fail(f, "'%s' needs \"logprobs\": true", "top_logprobs");
    if (!chat) p->logprobs = top >= 0;
    p->top_logprobs = top > 0 ? (int)top : 0;
    return true;
}

// logit_bias: OpenAI's {"TOKEN_ID": bias, ...}, each bias in [-100, 100] added to
// that token's logit before the penalties and the draw (-100 all but bans it,
// 100 all but forces it), into p (bn_sampling.logit_bias).
static bool get_logit_bias(const bn_api *a, fields *f, bn_job_params *p) {
    const cJSON *v = field(f, "logit_bias"), *e;
    if (!v) return true;
    const int n = cJSON_GetArraySize(v), n_vocab = bn_engine_info(a->engine).n_vocab;
    if (!cJSON_IsObject(v) || n > MAX_LOGIT_BIAS) {
        char fmt[96];
        snprintf(fmt, sizeof fmt, "'%%s' must be an object of at most %d token ids to numbers", MAX_LOGIT_BIAS);
        return fail(f, fmt, "logit_bias");
    }
    if (n && !(p->logit_bias = malloc((size_t)n * sizeof *p->logit_bias)))
        return fail(f, "out of memory (%s)", "logit_bias");
    cJSON_ArrayForEach(e, v) {
        const char *key = e->string; // a token id as a decimal number, as OpenAI writes it
        bool digits = *key && strlen(key) <= 9 && (key[0] != '0' || !key[1]);
        for (const char *c = key; *c; c++) digits = digits && *c >= '0' && *c <= '9';
        if (!digits || atoi(key) >= n_vocab) {
            char fmt[96];
            snprintf(fmt, sizeof fmt, "'%%s' keys must be token ids in 0..%d", n_vocab - 1);
            return fail(f, fmt, "logit_bias");
        }
        for (size_t i = 0; i < p->n_logit_bias; i++)
            if (p->logit_bias[i].token == atoi(key)) return fail(f, "'%s' names a token twice", "logit_bias");
        if (!cJSON_IsNumber(e) || !(e->valuedouble >= -100 && e->valuedouble <= 100))
            return fail(f, "'%s' values must be numbers in [-100, 100]", "logit_bias");
        p->logit_bias[p->n_logit_bias++] = (bn_logit_bias){atoi(key), (float)e->valuedouble};
    }
    p->sampling.logit_bias = p->logit_bias;
    p->sampling.n_logit_bias = p->n_logit_bias;
    return true;
}

// Whether v says what leaving the parameter out says (null is left out).
static bool is_number(const cJSON *v, double x) { return cJSON_IsNumber(v) && v->valuedouble == x; }

// p's json_schema: schema as JSON (absent: any JSON value), compiled once here
// so that one json_schema.h cannot follow is a 400 that says why.
static bool set_schema(fields *f, bn_job_params *p, const cJSON *schema) {
    p->json_schema = schema ? bn_json_print_exact(schema) : strdup("{}");
    if (!p->json_schema) return fail(f, "out of memory (%s)", "response_format");
    bn_error err;
    if (!bn_json_schema_check(p->json_schema, strlen(p->json_schema), &err)) return true;
    reply_error(f->r, 400, "invalid_value", "%s", err.msg);
    return f->bad = true, false;
}

// response_format: {"type": "text"} (the default), {"type": "json_object"}
// (JSON mode: bn_request.json_object) or {"type": "json_schema", "json_schema":
// {"name", "schema", "strict"?, "description"?}} (bn_request.json_schema; a
// schema json_schema.h cannot follow is a 400 that says why).
static bool get_response_format(fields *f, bn_job_params *p) {
    const cJSON *v = field(f, "response_format");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(v, "type");
    if (!v || (cJSON_IsString(type) && !strcmp(type->valuestring, "text"))) return true;
    if (cJSON_IsString(type) && !strcmp(type->valuestring, "json_object")) return p->json_object = true;
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "json_schema"))
        return fail(f, "'%s' must be {\"type\": \"text\"}, {\"type\": \"json_object\"} or {\"type\": "
                       "\"json_schema\", \"json_schema\": {\"name\", \"schema\"}}", "response_format");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(v, "json_schema");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(js, "name");
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(js, "schema");
    if (!cJSON_IsObject(js) || !cJSON_IsString(name) || (schema && !cJSON_IsObject(schema) && !cJSON_IsTrue(schema)))
        return fail(f, "'%s' json_schema must be {\"name\": NAME, \"schema\": {...}}", "response_format");
    return set_schema(f, p, schema);
}

// One reply format in another server's form: a JSON Schema (an object, or its
// JSON text, as vLLM takes it), a regular expression, or choices (bn_request.regex,
// compiled here so that one it cannot follow is a 400 that says why).
enum { ALIAS_JSON, ALIAS_REGEX, ALIAS_CHOICE };

static bool read_alias(fields *f, bn_job_params *p, const char *name, const cJSON *v, int kind) {
    if (kind == ALIAS_JSON) {
        cJSON *parsed = cJSON_IsString(v) ? cJSON_Parse(v->valuestring) : NULL;
        const cJSON *schema = parsed ? parsed : v;
        const bool ok = (cJSON_IsObject(schema) || cJSON_IsTrue(schema))
                            ? set_schema(f, p, schema)
                            : fail(f, "'%s' must be a JSON Schema: an object, or its JSON text", name);
        cJSON_Delete(parsed);
        return ok;
    }
    bn_error err;
    int rc = 0;
    if (kind == ALIAS_REGEX) {
        if (!cJSON_IsString(v)) return fail(f, "'%s' regex must be a string", name);
        if (!(p->regex = strdup(v->valuestring))) return fail(f, "out of memory (%s)", name);
    } else {
        const int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 0;
        const cJSON *e = n ? v->child : NULL;
        while (e && cJSON_IsString(e)) e = e->next;
        if (n == 0 || e) return fail(f, "'%s' choice must be an array of one or more strings", name);
        const char **choices = calloc((size_t)n, sizeof *choices);
        if (!choices) return fail(f, "out of memory (%s)", name);
        int k = 0;
        for (e = v->child; e; e = e->next) choices[k++] = e->valuestring;
        rc = bn_regex_of_choices(choices, (size_t)n, &p->regex, &err);
        free(choices);
    }
    if (rc || bn_regex_check(p->regex, &err)) {
        reply_error(f->r, 400, "invalid_value", "'%s': %s", name, err.msg);
        return f->bad = true, false;
    }
    return true;
}

// The reply formats of the servers people come from, after response_format:
// llama.cpp's "json_schema", vLLM's "guided_json", "guided_regex" and
// "guided_choice", and its "structured_outputs" {"json", "regex", "choice"}.
// One reply format at most.
static bool get_reply_aliases(fields *f, bn_job_params *p) {
    const cJSON *so = field(f, "structured_outputs");
    const struct { const char *name; const cJSON *v; int kind; } forms[] = {
        {"json_schema", field(f, "json_schema"), ALIAS_JSON},
        {"guided_json", field(f, "guided_json"), ALIAS_JSON},
        {"structured_outputs", cJSON_GetObjectItemCaseSensitive(so, "json"), ALIAS_JSON},
        {"guided_regex", field(f, "guided_regex"), ALIAS_REGEX},
        {"guided_choice", field(f, "guided_choice"), ALIAS_CHOICE},
        {"structured_outputs", cJSON_GetObjectItemCaseSensitive(so, "regex"), ALIAS_REGEX},
        {"structured_outputs", cJSON_GetObjectItemCaseSensitive(so, "choice"), ALIAS_CHOICE},
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        if (!forms[i].v || cJSON_IsNull(forms[i].v)) continue;
        if (p->json_object || p->json_schema || p->regex)
            return fail(f, "'%s' beside another reply format (response_format, json_schema, guided_json, "
                           "guided_regex, guided_choice or structured_outputs): give one", forms[i].name);
        if (!read_alias(f, p, forms[i].name, forms[i].v, forms[i].kind)) return false;
    }
    return true;
}

// Parameters that would change the answer in ways this server does not
// implement are refused, not ignored, unless absent, null or off: OpenAI's,
// and the other servers' grammars.
static bool refuse_unsupported(fields *f) {
    const cJSON *v, *so = field(f, "structured_outputs");
    const char *bad = (v = field(f, "best_of")) && !is_number(v, 1)                          ? "best_of"
                    : (v = field(f, "suffix")) && !(cJSON_IsString(v) && !*v->valuestring)   ? "suffix"
                    : (v = field(f, "functions")) && !(cJSON_IsArray(v) && !v->child)        ? "functions"
                                                                                              : NULL;
    if (bad) return fail(f, "'%s' is not supported by this server", bad);
    bad = (v = field(f, "grammar")) && !(cJSON_IsString(v) && !*v->valuestring) ? "grammar"
        : field(f, "guided_grammar")                                             ? "guided_grammar"
        : so && !cJSON_IsObject(so)                                              ? "structured_outputs"
                                                                                  : NULL;
    static const char *const known[] = {"json", "regex", "choice"}; // structured_outputs' (get_regex)
    for (const cJSON *e = so && cJSON_IsObject(so) ? so->child : NULL; e && !bad; e = e->next)
        if (!cJSON_IsNull(e) && strcmp(e->string, known[0]) && strcmp(e->string, known[1]) &&
            strcmp(e->string, known[2]))
            bad = "structured_outputs";
    return !bad || fail(f, "'%s' is not supported by this server (JSON Schemas, regular expressions and "
                           "choices are: response_format, guided_json, guided_regex, guided_choice)", bad);
}

// echo (completions): each choice's text, and with logprobs its tokens, begin
// with its prompt's, which lm-evaluation-harness reads to score a text; with
// max_tokens 0, the prompt alone.
static bool get_echo(fields *f, bool chat, bn_job_params *p) {
    get_bool(f, "echo", &p->echo);
    if (f->bad) return false;
    if (chat && p->echo) return fail(f, "'%s' is for completions", "echo");
    if (p->score_only && !p->echo)
        return fail(f, chat ? "'%s' must be at least 1"
                            : "'%s' must be at least 1 (0 only with \"echo\": true: the prompt scored alone)",
                    field(f, "max_tokens") ? "max_tokens" : "max_completion_tokens");
    return true;
}

// tools, tool_choice, parallel_tool_calls (chat_tools.h): a chat whose tools
// may be called has its reply held to their schema, and its system message
// lists them. A response_format then shapes the answer that calls none.
static bool get_tools(fields *f, bn_job_params *p, bn_tools *t) {
    // The reply format as get_response_format and get_schema_aliases read it:
    // json_object, or a JSON Schema.
    cJSON *response = p->json_object ? cJSON_Parse("{\"type\": \"object\"}")
                    : p->json_schema ? cJSON_Parse(p->json_schema)
                                     : NULL;
    if ((p->json_object || p->json_schema) && !response) return fail(f, "out of memory (%s)", "tools");
    char err[512];
    const int rc = bn_tools_read(f->o, response, t, err, sizeof err);
    cJSON_Delete(response);
    if (rc) {
        reply_error(f->r, 400, "invalid_value", "%s", err);
        return f->bad = true, false;
    }
    if (!t->schema) return true;
    if (p->regex) return fail(f, "'%s' beside a regex or choices: give one", "tools");
    free(p->json_schema);
    p->json_schema = t->schema;
    p->json_object = false;
    t->schema = NULL;
    return f->r->tools = true;
}

// messages -> the chat prompt's ids, in the model's chat format (core/chat.h).
// Tool results, earlier tool calls and the tools' system text go in as
// chat_tools.h says.
static bool chat_prompt(const bn_api *a, fields *f, bn_job_params *p, const bn_tools *tools) {
    char why[512];
    cJSON *conv = bn_tools_conversation(field(f, "messages"), tools->system, why, sizeof why);
    if (!conv) return fail(f, "%s", why);
    const int n = cJSON_GetArraySize(conv);
    bn_chat_message *m = calloc((size_t)n, sizeof *m);
    if (!m) {
        cJSON_Delete(conv);
        return fail(f, "out of memory (%s)", "messages");
    }
    const cJSON *turn;
    int i = 0;
    cJSON_ArrayForEach(turn, conv) m[i++] = (bn_chat_message){
        cJSON_GetObjectItemCaseSensitive(turn, "role")->valuestring,
        cJSON_GetObjectItemCaseSensitive(turn, "content")->valuestring};
    bn_error err;
    bool ok = true;
    if (!(p->prompts = calloc(1, sizeof *p->prompts))) {
        free(m);
        cJSON_Delete(conv);
        return fail(f, "out of memory (%s)", "messages");
    }
    p->n_prompts = 1;
    if (bn_engine_chat_prompt(a->engine, m, (size_t)n, &p->prompts[0].ids, &p->prompts[0].n, &err)) {
        reply_error(f->r, 400, "invalid_value", "%s", err.msg);
        ok = false, f->bad = true;
    }
    free(m);
    cJSON_Delete(conv);
    return ok;
}

// A JSON array of token ids in [0, n_vocab), malloc'd (*n of them). NULL when arr
// is not an array, is empty (unless allow_empty) or memory is short; also NULL,
// with *bad_id set, when an element is not such an id.
static int32_t *json_ids(const cJSON *arr, int n_vocab, size_t *n, bool allow_empty, bool *bad_id) {
    const int count = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : -1;
    *n = 0;
    *bad_id = false;
    // + 1: an empty array's ids are not NULL either
    int32_t *ids = count >= (allow_empty ? 0 : 1) ? malloc(((size_t)count + 1) * sizeof *ids) : NULL;
    if (!ids) return NULL;
    const cJSON *id;
    cJSON_ArrayForEach(id, arr) {
        if (!cJSON_IsNumber(id) || id->valuedouble != floor(id->valuedouble) || id->valuedouble < 0 ||
            id->valuedouble >= n_vocab) {
            free(ids);
            *bad_id = true;
            return NULL;
        }
        ids[(*n)++] = (int32_t)id->valuedouble;
    }
    return ids;
}

// With a tokenizer that puts a space before the text and after each special
// token in it (bn_engine_space_prefix), the tokens from ids[first] on lined up
// against the echoed text: a token whose bytes are not there but, less a
// leading space, are, carries such a space. Sets out->prefixed (NULL when no
// token does); false when out of memory.
static bool mark_prefixed(const bn_engine *e, size_t first, bn_job_prompt *out) {
    if (!out->echo || !bn_engine_space_prefix(e)) return true;
    const char *text = out->echo;
    const size_t n_text = strlen(text);
    size_t at = 0, marked = 0;
    uint8_t *flags = calloc(out->n ? out->n : 1, 1);
    if (!flags) return false;
    for (size_t i = first; i < out->n; i++) {
        size_t len = 0;
        const char *b = bn_engine_token_bytes(e, out->ids[i], &len);
        if (!b) continue;
        if (len && b[0] == ' ' && !(at + len <= n_text && !memcmp(text + at, b, len)) && at + len - 1 <= n_text &&
            !memcmp(text + at, b + 1, len - 1))
            flags[i] = 1, marked++, len--;
        at += len;
    }
    if (marked) out->prefixed = flags;
    else free(flags);
    return true;
}

// One prompt v: a string (tokenized as `generate -p` does: BOS, no special
// tokens parsed) or an array of token ids (as given); with echo, its text (the
// string, or the ids' bytes).
static bool one_prompt(const bn_api *a, fields *f, const cJSON *v, bool echo, bn_job_prompt *out) {
    bn_error err;
    if (cJSON_IsString(v)) {
        const bool bos = bn_engine_add_bos(a->engine);
        if (bn_engine_tokenize(a->engine, v->valuestring, bos, false, &out->ids, &out->n, &err)) {
            reply_error(f->r, 400, "invalid_value", "%s", err.msg);
            return f->bad = true, false;
        }
        out->added_bos = bos && out->n && out->ids[0] == bn_engine_bos(a->engine);
        if (echo && (!(out->echo = strdup(v->valuestring)) || !mark_prefixed(a->engine, out->added_bos, out)))
            return fail(f, "out of memory (%s)", "prompt");
        return true;
    }
    bool bad_id;
    if (!(out->ids = json_ids(v, bn_engine_info(a->engine).n_vocab, &out->n, false, &bad_id)))
        return fail(f, bad_id ? "'%s' token ids must be in the vocabulary"
                              : "'%s' must be a string, an array of token ids, or an array of those (a prompt each)",
                    "prompt");
    size_t len;
    if (echo && bn_engine_detokenize(a->engine, out->ids, out->n, &out->echo, &len, &err))
        return fail(f, "'%s' token ids must be in the vocabulary", "prompt");
    if (echo && !mark_prefixed(a->engine, 0, out)) return fail(f, "out of memory (%s)", "prompt");
    return true;
}

// prompt: OpenAI's four forms, one prompt (a string, an array of token ids) or
// an array of them, each with n choices (at most BN_JOB_MAX_CHOICES in all).
static bool completion_prompts(const bn_api *a, fields *f, bn_job_params *p) {
    const cJSON *v = field(f, "prompt");
    const bool many = cJSON_IsArray(v) && v->child && (cJSON_IsString(v->child) || cJSON_IsArray(v->child));
    const int n = many ? cJSON_GetArraySize(v) : 1;
    if ((long)n * p->n > BN_JOB_MAX_CHOICES) {
        char fmt[96];
        snprintf(fmt, sizeof fmt, "'%%s' times n must be at most %d choices", BN_JOB_MAX_CHOICES);
        return fail(f, fmt, "prompt");
    }
    if (!(p->prompts = calloc((size_t)n, sizeof *p->prompts))) return fail(f, "out of memory (%s)", "prompt");
    p->n_prompts = n;
    const cJSON *e = many ? v->child : v;
    for (int i = 0; i < n; i++, e = e->next)
        if (!one_prompt(a, f, e, p->echo, &p->prompts[i])) return false;
    return true;
}

static void generate(const bn_api *a, const char *body, size_t len, bool chat, bn_api_reply *r) {
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static unsigned long serial;
    cJSON *o = parse_object(body, len, r);
    if (!o) return;
    fields f = {o, r, false};
    bn_job_params p = {0};
    bn_tools tools = {0};
    const cJSON *t;
    // serve -n, else OpenAI's defaults: a completion stops after 16 tokens, a chat reply at its end.
    const int default_max = a->max_tokens >= 0 ? a->max_tokens : chat ? 0 : 16;
    bool ok = get_params(a, &f, &p, &r->stream, default_max) && get_echo(&f, chat, &p) && get_logit_bias(a, &f, &p) &&
              get_logprobs(&f, chat, &p) && get_response_format(&f, &p) && get_reply_aliases(&f, &p) &&
              refuse_unsupported(&f) &&
              (chat ? get_tools(&f, &p, &tools) && chat_prompt(a, &f, &p, &tools)
                    : (!(t = field(&f, "tools")) || (cJSON_IsArray(t) && !t->child) ||
                       fail(&f, "'%s' is for chat completions", "tools")) && completion_prompts(a, &f, &p));
    bn_tools_free(&tools);
    cJSON_Delete(o);
    if (!ok) {
        bn_job_params_free(&p);
        return;
    }
    for (int i = 0; i < p.n_prompts; i++)
        if (p.prompts[i].n > (size_t)a->n_ctx) {
            char which[32] = "the prompt";
            if (p.n_prompts > 1) snprintf(which, sizeof which, "prompt %d", i);
            reply_error(r, 400, "context_length_exceeded", "%s is %zu tokens, more than the context of %d tokens",
                        which, p.prompts[i].n, a->n_ctx);
            bn_job_params_free(&p);
            return;
        }
    pthread_mutex_lock(&mu);
    const unsigned long id = ++serial;
    pthread_mutex_unlock(&mu);
    snprintf(r->id, sizeof r->id, "%s-%lx%06lu", chat ? "chatcmpl" : "cmpl", (unsigned long)a->created, id);
    r->chat = chat;
    r->logprobs = p.logprobs;
    r->created = (long)time(NULL);
    if (!(r->job = bn_sched_submit(a->sched, &p)))
        reply_error(r, 503, "unavailable", "the server is shutting down");
}

// ---- the other endpoints ----------------------------------------------------------

static void models(const bn_api *a, bn_api_reply *r) {
    cJSON *o = cJSON_CreateObject(), *data = cJSON_AddArrayToObject(o, "data"), *m = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON_AddStringToObject(m, "id", a->model_id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)a->created);
    cJSON_AddStringToObject(m, "owned_by", "bitnet-gpu");
    cJSON_AddItemToArray(data, m);
    reply_json(r, o);
}

// llama.cpp's /health, plus the slot counts (a slot that leaked would show here).
static void health(const bn_api *a, bn_api_reply *r) {
    int slots, busy, queued;
    bn_sched_counts(a->sched, &slots, &busy, &queued);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    cJSON_AddNumberToObject(o, "slots_total", slots);
    cJSON_AddNumberToObject(o, "slots_idle", slots - busy);
    cJSON_AddNumberToObject(o, "slots_processing", busy);
    cJSON_AddNumberToObject(o, "requests_queued", queued);
    reply_json(r, o);
}

// Prometheus's text format: the scheduler's counters since the start, and the
// slots now. Names follow Prometheus's conventions (_total counters, _seconds).
static void metrics(const bn_api *a, bn_api_reply *r) {
    bn_sched_stats t;
    int slots, busy, queued;
    bn_sched_stats_read(a->sched, &t);
    bn_sched_counts(a->sched, &slots, &busy, &queued);
    static const char *const ended[BN_ENDED_N] = {"stop", "length", "cancelled", "error"};
    uint64_t n_ended = 0;
    bn_buf out = {0};
    int bad = 0;
#define HEAD(name, type, help) bad |= bn_buf_printf(&out, "# HELP bitnet_" name " " help "\n# TYPE bitnet_" name " " type "\n")
#define COUNT(name, help, v) HEAD(name, "counter", help), bad |= bn_buf_printf(&out, "bitnet_" name " %llu\n", (unsigned long long)(v))
#define GAUGE(name, help, v) HEAD(name, "gauge", help), bad |= bn_buf_printf(&out, "bitnet_" name " %d\n", v)
#define SUMMARY(name, help, sum, n)                                                                          \
    HEAD(name, "summary", help),                                                                             \
        bad |= bn_buf_printf(&out, "bitnet_" name "_sum %.6f\nbitnet_" name "_count %llu\n", sum, (unsigned long long)(n))
    HEAD("requests_total", "counter", "Generation requests ended, by how (each of a request's n choices counts).");
    for (int i = 0; i < BN_ENDED_N; i++) {
        bad |= bn_buf_printf(&out, "bitnet_requests_total{ended=\"%s\"} %llu\n", ended[i], (unsigned long long)t.ended[i]);
        n_ended += t.ended[i];
    }
    COUNT("prompt_tokens_total", "Prompt tokens of the ended requests (each choice's).", t.prompt_tokens);
    COUNT("prompt_tokens_cached_total", "Of those, the ones taken from a slot's prompt cache.", t.cached_tokens);
    COUNT("generated_tokens_total", "Tokens generated by the ended requests' choices.", t.generated_tokens);
    COUNT("steps_total", "Batch steps: each gives every running request a token (with --lookup, from a row a "
          "verifying pass gave ahead, or by a forward pass).", t.steps);
    HEAD("step_seconds_total", "counter", "Time in batch steps.");
    bad |= bn_buf_printf(&out, "bitnet_step_seconds_total %.6f\n", t.step_seconds);
    SUMMARY("time_to_first_token_seconds", "From a request's arrival to its first token.", t.first_token_seconds,
            t.first_tokens);
    SUMMARY("request_duration_seconds", "From a request's arrival to the end of each of its choices.",
            t.request_seconds, n_ended);
    HEAD("json_mask_rows_total", "counter", "Rows of logits of JSON requests masked: from the mask cache, or worked out.");
    bad |= bn_buf_printf(&out, "bitnet_json_mask_rows_total{from=\"cache\"} %llu\n"
                               "bitnet_json_mask_rows_total{from=\"worked_out\"} %llu\n",
                         (unsigned long long)t.json_rows_cached, (unsigned long long)t.json_rows_worked);
    COUNT("lookup_drafted_tokens_total", "Tokens drafted (--lookup, or the draft model of -md).", t.lookup.drafted);
    COUNT("lookup_accepted_tokens_total", "Of those, the ones sampled: each a token without a forward pass.",
          t.lookup.accepted);
    COUNT("lookup_passes_total", "Verifying passes: requests' runs with a draft.", t.lookup.passes);
    GAUGE("slots", "Sequence slots.", slots);
    GAUGE("requests_running", "Requests (their choices) in a slot.", busy);
    GAUGE("requests_queued", "Requests waiting for a slot.", queued);
#undef HEAD
#undef COUNT
#undef GAUGE
#undef SUMMARY
    if (bad) {
        free(out.data);
        return reply_error(r, 500, NULL, "out of memory");
    }
    r->status = 200;
    r->body = out.data;
    r->content_type = "text/plain; version=0.0.4";
}

// llama.cpp's /tokenize: {"content", "add_special", "parse_special",
// "with_pieces"}, or vLLM's {"prompt", "add_special_tokens"} (lm-evaluation-
// harness's remote tokenizer), which adds the BOS unless told not to; special
// tokens' text is parsed either way unless parse_special is false.
static void tokenize(const bn_api *a, const char *body, size_t len, bn_api_reply *r) {
    cJSON *o = parse_object(body, len, r);
    if (!o) return;
    fields f = {o, r, false};
    const bool vllm = !field(&f, "content") && field(&f, "prompt");
    const char *key = vllm ? "prompt" : "content";
    const cJSON *content = field(&f, key);
    bool add_special = vllm, parse_special = true, pieces = false;
    if (!cJSON_IsString(content)) fail(&f, "'%s' must be a string", key);
    get_bool(&f, vllm ? "add_special_tokens" : "add_special", &add_special);
    get_bool(&f, "parse_special", &parse_special);
    get_bool(&f, "with_pieces", &pieces);
    int32_t *ids = NULL;
    size_t n = 0;
    bn_error err;
    if (!f.bad && bn_engine_tokenize(a->engine, content->valuestring, add_special, parse_special, &ids, &n, &err))
        reply_error(r, 400, "invalid_value", "%s", err.msg), f.bad = true;
    cJSON_Delete(o);
    if (f.bad) return;
    cJSON *out = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(out, "tokens");
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, pieces ? bn_piece_json(a->engine, ids[i])
                                                                     : cJSON_CreateNumber(ids[i]));
    free(ids);
    if (vllm) {
        cJSON_AddNumberToObject(out, "count", (double)n);
        cJSON_AddNumberToObject(out, "max_model_len", a->n_ctx);
    }
    reply_json(r, out);
}

// llama.cpp's /detokenize: {"tokens": [ids]} -> {"content"}, and the same
// text as vLLM's "prompt".
static void detokenize(const bn_api *a, const char *body, size_t len, bn_api_reply *r) {
    cJSON *o = parse_object(body, len, r);
    if (!o) return;
    size_t n, len_text;
    bool bad_id;
    const int n_vocab = bn_engine_info(a->engine).n_vocab;
    int32_t *ids = json_ids(cJSON_GetObjectItemCaseSensitive(o, "tokens"), n_vocab, &n, true, &bad_id);
    cJSON_Delete(o);
    char *text = NULL;
    bn_error err;
    // An id past the tokenizer's vocabulary (the model's may be larger) fails here too.
    const bool ok = ids && !bn_engine_detokenize(a->engine, ids, n, &text, &len_text, &err);
    free(ids);
    if (!ok) return reply_error(r, 400, "invalid_value", "'tokens' must be an array of token ids in the vocabulary");
    cJSON *out = cJSON_CreateObject();
    cJSON_AddItemToObject(out, "content", bn_text_json(text, len_text));
    cJSON_AddItemToObject(out, "prompt", bn_text_json(text, len_text));
    free(text);
    reply_json(r, out);
}

// vLLM's /tokenizer_info, as lm-evaluation-harness's remote tokenizer reads it:
// the BOS and EOS tokens' text (null: none), whether a text prompt gets the BOS,
// the context, and the model's Jinja chat template where it is the format the
// chat route applies (its --apply_chat_template renders it).
static void tokenizer_info(const bn_api *a, bn_api_reply *r) {
    cJSON *o = cJSON_CreateObject();
    const int32_t special[2] = {bn_engine_bos(a->engine), bn_engine_eos(a->engine)};
    static const char *const names[2] = {"bos_token", "eos_token"};
    for (int i = 0; i < 2; i++) {
        size_t n = 0;
        const char *text = special[i] >= 0 ? bn_engine_token_bytes(a->engine, special[i], &n) : NULL;
        cJSON_AddItemToObject(o, names[i], text ? bn_text_json(text, n) : cJSON_CreateNull());
    }
    cJSON_AddBoolToObject(o, "add_bos_token", bn_engine_add_bos(a->engine));
    cJSON_AddNumberToObject(o, "model_max_length", a->n_ctx);
    cJSON_AddStringToObject(o, "tokenizer_class", "bitnet-gpu");
    const char *jinja = bn_engine_chat_template_jinja(a->engine);
    if (jinja) cJSON_AddStringToObject(o, "chat_template", jinja);
    reply_json(r, o);
}

void bn_api_handle(const bn_api *a, const char *method, const char *path, const char *body,
                   size_t len, bn_api_reply *r) {
    *r = (bn_api_reply){0};
    static const struct {
        const char *path, *method;
    } routes[] = {{"/v1/chat/completions", "POST"}, {"/v1/completions", "POST"}, {"/v1/models", "GET"},
                  {"/health", "GET"}, {"/tokenize", "POST"}, {"/detokenize", "POST"}, {"/metrics", "GET"},
                  {"/tokenizer_info", "GET"}};
    size_t i = 0;
    while (i < sizeof routes / sizeof routes[0] && strcmp(routes[i].path, path)) i++;
    if (i == sizeof routes / sizeof routes[0])
        return reply_error(r, 404, "not_found", "no endpoint %.200s", path);
    if (strcmp(routes[i].method, method))
        return reply_error(r, 405, "method_not_allowed", "%.200s takes %s", path, routes[i].method);
    switch (i) {
    case 0: generate(a, body, len, true, r); break;
    case 1: generate(a, body, len, false, r); break;
    case 2: models(a, r); break;
    case 3: health(a, r); break;
    case 4: tokenize(a, body, len, r); break;
    case 5: detokenize(a, body, len, r); break;
    case 6: metrics(a, r); break;
    default: tokenizer_info(a, r); break;
    }
}
