// chat_tools.c - function calling (chat_tools.h): tools in, a system message
// and a schema out; the held reply back into tool_calls.
#include "chat_tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "error.h"
#include "json_prefix.h"
#include "json_schema.h"
#include "json_text.h"

#define MAX_TOOLS 128

static int tools_error(char *err, size_t size, const char *msg) {
    snprintf(err, size, "%s", msg);
    return -1;
}

// Appends to out the JSON value that begins at text[*at] (after blanks), without
// the blanks between its tokens: its strings and numbers byte for byte as they
// were written (cJSON would print numbers back through a double: 2^53 + 1 or a
// 20-digit id would change). *at moves past it. False when no whole value is there.
static bool copy_value(const char *text, size_t len, size_t *at, bn_buf *out) {
    size_t i = *at;
    while (i < len && bn_json_is_blank(text[i])) i++;
    bn_json_prefix lex;
    bn_json_prefix_init(&lex, false);
    for (; i < len && !bn_json_prefix_complete(&lex); i++) {
        if (bn_json_is_blank(text[i]) && !bn_json_prefix_in_string(&lex)) continue;
        bn_json_prefix next = lex;
        if (!bn_json_prefix_feed(&next, text + i, 1)) break; // what follows a number
        lex = next;
        if (bn_buf_append(out, text + i, 1)) return false;
    }
    *at = i;
    return bn_json_prefix_done(&lex);
}

// Appends the value of the next `"key":` in text from *at on, as copy_value
// does. The reply's schema leaves no other place for the key's text to appear
// before it (names are [A-Za-z0-9_-]; earlier values are skipped whole).
static bool copy_value_of(const char *text, size_t len, size_t *at, const char *key, bn_buf *out) {
    const size_t k = strlen(key);
    for (size_t i = *at; i + k + 2 <= len; i++) {
        if (text[i] != '"' || memcmp(text + i + 1, key, k) || text[i + k + 1] != '"') continue;
        size_t j = i + k + 2;
        while (j < len && bn_json_is_blank(text[j])) j++;
        if (j < len && text[j] == ':') {
            *at = j + 1;
            return copy_value(text, len, at, out);
        }
    }
    return false;
}

// OpenAI's rule for a function's name: 1 to 64 of a-z, A-Z, 0-9, '_' and '-'.
static bool good_name(const char *s) {
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= '0' && s[n] <= '9') ||
              s[n] == '_' || s[n] == '-'))
            return false;
    return n >= 1 && n <= 64;
}

// {"type": "object", "properties": {key: value}, "required": [key]} (value is taken).
static cJSON *one_property(const char *key, cJSON *value) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "object");
    cJSON_AddItemToObject(cJSON_AddObjectToObject(o, "properties"), key, value);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "required"), cJSON_CreateString(key));
    return o;
}

// Keywords that only narrow which values a schema accepts and that
// json_schema.h cannot follow. A tool that is not "strict" has them dropped
// from its parameters: its arguments are then held to a looser schema (as
// OpenAI holds a non-strict tool's to none), rather than the request refused.
static const char *const narrowing[] = {
    "multipleOf", "uniqueItems", "minProperties", "maxProperties", "propertyNames",
    "patternProperties", "dependentRequired", "dependentSchemas", "contains", "minContains", "maxContains", "not",
    "if", "then", "else", "unevaluatedProperties", "unevaluatedItems", "contentEncoding", "contentMediaType",
    "contentSchema", "prefixItems", "nullable", "discriminator"};

// Keywords json_schema.h follows that only narrow values: a non-strict tool
// keeps them where the compiler takes them (beside the schema's "type" alone,
// with nothing that must stand alone or be a value beside them), and drops
// them, all of a schema's at once, where it would refuse them (bounds that
// leave no value, an unknown format, a bound beside an enum, ...).
static const char *const followed[] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                                       "minLength", "maxLength", "format", "pattern"};

static bool followed_fit(const cJSON *schema, bn_json_budget *budget) {
    static const char *const apart[] = {"enum", "const", "$ref", "anyOf", "oneOf", "allOf"};
    for (size_t i = 0; i < sizeof apart / sizeof *apart; i++)
        if (cJSON_GetObjectItemCaseSensitive(schema, apart[i])) return false;
    cJSON *probe = cJSON_CreateObject(); // the schema's type and its followed keywords alone
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(schema, "type");
    if (probe && type) cJSON_AddItemToObject(probe, "type", cJSON_Duplicate(type, true));
    for (size_t i = 0; probe && i < sizeof followed / sizeof *followed; i++) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(schema, followed[i]);
        if (k) cJSON_AddItemToObject(probe, followed[i], cJSON_Duplicate(k, true));
    }
    char *text = probe ? bn_json_print_exact(probe) : NULL;
    bn_error err;
    bn_json_schema *g = NULL;
    const bool ok = text && !bn_json_schema_compile_within(text, strlen(text), budget, &g, &err);
    bn_json_schema_free(g);
    free(text);
    cJSON_Delete(probe);
    return ok;
}

static void keep_followed(cJSON *schema, bn_json_budget *budget) {
    bool any = false;
    for (size_t i = 0; i < sizeof followed / sizeof *followed; i++)
        any = any || cJSON_GetObjectItemCaseSensitive(schema, followed[i]);
    if (!any || followed_fit(schema, budget)) return;
    // A pattern past what can be followed (or, with the lengths beside it, too large): without it,
    // the rest may fit.
    cJSON *pattern = cJSON_DetachItemFromObjectCaseSensitive(schema, "pattern");
    const bool rest = pattern && followed_fit(schema, budget);
    cJSON_Delete(pattern);
    if (rest) return;
    for (size_t i = 0; i < sizeof followed / sizeof *followed; i++)
        cJSON_DeleteItemFromObjectCaseSensitive(schema, followed[i]);
}

// Drops the narrowing keywords, and those json_schema.h follows where it
// would refuse them, from schema and the schemas in it; the patterns it keeps
// draw on budget, shared by the whole request's tools.
static void loosen(cJSON *schema, bn_json_budget *budget) {
    if (!cJSON_IsObject(schema)) return;
    for (size_t i = 0; i < sizeof narrowing / sizeof *narrowing; i++)
        cJSON_DeleteItemFromObjectCaseSensitive(schema, narrowing[i]);
    keep_followed(schema, budget);
    static const char *const maps[] = {"properties", "$defs", "definitions"}; // of schemas
    static const char *const lists[] = {"anyOf", "oneOf", "allOf"};
    cJSON *e;
    for (int i = 0; i < 3; i++) {
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(schema, maps[i])) loosen(e, budget);
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(schema, lists[i])) loosen(e, budget);
    }
    loosen(cJSON_GetObjectItemCaseSensitive(schema, "items"), budget);
    loosen(cJSON_GetObjectItemCaseSensitive(schema, "additionalProperties"), budget);
}

// The schema function f's arguments are held to (a new cJSON): its
// parameters, loosened unless f is strict; none given is an empty parameter
// list, as OpenAI reads it.
static cJSON *arguments_schema(const cJSON *f, bool strict, bn_json_budget *budget) {
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(f, "parameters");
    if (!params) return cJSON_Parse("{\"type\": \"object\", \"properties\": {}}");
    cJSON *args = cJSON_Duplicate(params, true);
    if (!strict) loosen(args, budget);
    return args;
}

// schema (taken) as its own resource ("$id"), so that its "$ref"s point into it
// rather than into the schema around it.
static cJSON *own_resource(cJSON *schema, const char *what, int index) {
    if (cJSON_IsObject(schema) && !cJSON_GetObjectItemCaseSensitive(schema, "$id")) {
        char id[48];
        snprintf(id, sizeof id, "urn:bitnet-gpu:%s:%d", what, index);
        cJSON_AddStringToObject(schema, "$id", id);
    }
    return schema;
}

// One call of function f: {"name": {"const": NAME}, "arguments": args (taken)}.
static cJSON *call_schema(const cJSON *f, cJSON *args, int index) {
    cJSON *name = cJSON_CreateObject();
    cJSON_AddStringToObject(name, "const", cJSON_GetObjectItemCaseSensitive(f, "name")->valuestring);
    cJSON *o = one_property("name", name);
    cJSON_AddItemToObject(cJSON_GetObjectItemCaseSensitive(o, "properties"), "arguments",
                          own_resource(args, "tool", index));
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(o, "required"), cJSON_CreateString("arguments"));
    return o;
}

// The functions the reply may call: all, or the one tool_choice names. NULL
// with err set when the choice is malformed or names no tool; *none: "none".
static const cJSON *chosen(const cJSON *tools, const cJSON *choice, bool *required, bool *none, char *err,
                           size_t size) {
    *required = *none = false;
    if (!choice || cJSON_IsNull(choice)) return tools;
    if (cJSON_IsString(choice)) {
        const char *c = choice->valuestring;
        if (!strcmp(c, "auto")) return tools;
        if (!strcmp(c, "required")) return *required = true, tools;
        if (!strcmp(c, "none")) return *none = true, tools;
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(choice, "function"), "name");
    if (!cJSON_IsString(name)) {
        tools_error(err, size, "'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", "
                               "\"function\": {\"name\": NAME}}");
        return NULL;
    }
    const cJSON *t;
    cJSON_ArrayForEach(t, tools) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(t, "function");
        if (!strcmp(cJSON_GetObjectItemCaseSensitive(f, "name")->valuestring, name->valuestring))
            return *required = true, t;
    }
    tools_error(err, size, "'tool_choice' names a function that 'tools' does not list");
    return NULL;
}

// schema as exact text (malloc'd) when the library can hold a value to it,
// its patterns drawing on budget (NULL: a schema's own); else NULL, with the
// reason in err naming what: "'tools' function get_weather's parameters: at
// /properties/...".
static char *checked_text(const cJSON *schema, const char *what, char *err, size_t size, bn_json_budget *budget) {
    char *text = bn_json_print_exact(schema);
    bn_json_budget own = BN_JSON_BUDGET;
    bn_json_schema *g = NULL;
    bn_error e;
    const bool ok = text && !bn_json_schema_compile_within(text, strlen(text), budget ? budget : &own, &g, &e);
    bn_json_schema_free(g);
    if (ok) return text;
    snprintf(err, size, "%s: %s", what, text ? bn_json_schema_reason(e.msg) : "out of memory");
    free(text);
    return NULL;
}

// Checks each tool: {"type": "function", "function": {"name", "description"?,
// "parameters"?, "strict"?}}, its arguments' schema one the library can follow,
// which goes into args[i] (the caller frees those made, on failure too). Their
// patterns together draw on one schema's budget, so that a request costs what
// one schema may, and so that the schema of them all fits it too.
static int check_tools(const cJSON *tools, cJSON *args[MAX_TOOLS], char *err, size_t size) {
    bn_json_budget budget = BN_JSON_BUDGET;
    const int n = cJSON_IsArray(tools) ? cJSON_GetArraySize(tools) : -1;
    if (n < 1 || n > MAX_TOOLS) return tools_error(err, size, "'tools' must be an array of 1 to 128 tools");
    const cJSON *t;
    int i = 0;
    cJSON_ArrayForEach(t, tools) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(t, "type");
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(t, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(f, "name");
        const cJSON *desc = cJSON_GetObjectItemCaseSensitive(f, "description");
        const cJSON *params = cJSON_GetObjectItemCaseSensitive(f, "parameters");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "function") || !cJSON_IsObject(f))
            return tools_error(err, size, "each of 'tools' must be {\"type\": \"function\", \"function\": {...}}");
        if (!cJSON_IsString(name) || !good_name(name->valuestring))
            return tools_error(err, size, "a function's 'name' in 'tools' must be 1 to 64 of a-z, A-Z, 0-9, _ and -");
        if ((desc && !cJSON_IsString(desc) && !cJSON_IsNull(desc)) || (params && !cJSON_IsObject(params)))
            return tools_error(err, size, "a function's 'description' must be a string and its 'parameters' a "
                                          "JSON Schema object, in 'tools'");
        for (const cJSON *u = tools->child; u != t; u = u->next)
            if (!strcmp(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(u, "function"), "name")
                            ->valuestring, name->valuestring))
                return tools_error(err, size, "two functions in 'tools' have the same name");
        char what[128];
        snprintf(what, sizeof what, "'tools' function %s's parameters", name->valuestring);
        // A strict function's patterns draw on the budget here; a loosened one's drew
        // on it as they were kept (loosen), so what is left of it is theirs again.
        const bool strict = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f, "strict"));
        char *text = checked_text(args[i] = arguments_schema(f, strict, &budget), what, err, size,
                                  strict ? &budget : NULL);
        if (!text) return -1;
        free(text);
        i++;
    }
    return 0;
}

// The system message's part: the functions as JSON, and the two answers.
static char *system_text(const cJSON *tools, bool required) {
    cJSON *list = cJSON_CreateArray();
    const cJSON *t;
    cJSON_ArrayForEach(t, tools) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(t, "function");
        cJSON *e = cJSON_CreateObject();
        static const char *const keys[] = {"name", "description", "parameters"};
        for (int k = 0; k < 3; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(f, keys[k]);
            if (v && !cJSON_IsNull(v)) cJSON_AddItemToObject(e, keys[k], cJSON_Duplicate(v, true));
        }
        cJSON_AddItemToArray(list, e);
    }
    char *json = bn_json_print_exact(list);
    cJSON_Delete(list);
    if (!json) return NULL;
    static const char head[] = "You can call these functions (their parameters as JSON Schema):\n";
    static const char call[] = "\nTo call functions, answer with {\"tool_calls\": [{\"name\": NAME, \"arguments\": "
                               "{...}}]}.";
    static const char either[] = " To answer the user yourself, answer with {\"response\": TEXT}.";
    const size_t len = sizeof head + strlen(json) + sizeof call + sizeof either;
    char *s = malloc(len);
    if (s) snprintf(s, len, "%s%s%s%s", head, json, call, required ? "" : either);
    free(json);
    return s;
}

// bn_tools_read past the checks of the tools, whose arguments' schemas are
// args (a call's schema takes its tool's, leaving NULL).
static int read_choice(const cJSON *request, const cJSON *tools, cJSON *args[MAX_TOOLS],
                       const cJSON *response_schema, bn_tools *t, char *err, size_t size) {
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(request, "tool_choice");
    const cJSON *parallel = cJSON_GetObjectItemCaseSensitive(request, "parallel_tool_calls");
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(request, "stop");
    bool required, none;
    const cJSON *callable = chosen(tools, choice, &required, &none, err, size);
    if (!callable) return -1;
    if (none) return 0;
    // A stop string would cut the JSON the reply is read from.
    if (stop && !cJSON_IsNull(stop) && !(cJSON_IsArray(stop) && !stop->child))
        return tools_error(err, size, "'stop' with 'tools' is not supported");
    // {"tool_calls": [call, ...]}: any listed function, or the one chosen.
    cJSON *alts = cJSON_CreateArray();
    int i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, tools) {
        if (cJSON_IsArray(callable) || c == callable) {
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(c, "function");
            cJSON_AddItemToArray(alts, call_schema(f, args[i], cJSON_IsArray(callable) ? i : 0));
            args[i] = NULL;
        }
        i++;
    }
    cJSON *items = cJSON_CreateObject();
    cJSON_AddItemToObject(items, "anyOf", alts);
    cJSON *calls = cJSON_CreateObject();
    cJSON_AddStringToObject(calls, "type", "array");
    cJSON_AddItemToObject(calls, "items", items);
    cJSON_AddNumberToObject(calls, "minItems", 1);
    if (cJSON_IsFalse(parallel)) cJSON_AddNumberToObject(calls, "maxItems", 1);
    cJSON *schema = one_property("tool_calls", calls);
    if (!required) { // or {"response": ...}: text, or the response_format's value
        cJSON *response = response_schema ? own_resource(cJSON_Duplicate(response_schema, true), "response", 0)
                                          : cJSON_Parse("{\"type\": \"string\"}");
        cJSON *either = cJSON_CreateObject(), *any = cJSON_AddArrayToObject(either, "anyOf");
        cJSON_AddItemToArray(any, schema);
        cJSON_AddItemToArray(any, one_property("response", response));
        schema = either;
    }
    // Each part passed, within one budget for them all: only the whole's size, or a
    // response_format's patterns beside the tools', can fail here.
    t->schema = checked_text(schema, "'tools'", err, size, NULL);
    cJSON_Delete(schema);
    if (!t->schema) return -1;
    t->system = system_text(cJSON_IsArray(callable) ? callable : tools, required);
    if (!t->system) {
        bn_tools_free(t);
        return tools_error(err, size, "out of memory");
    }
    return 0;
}

int bn_tools_read(const cJSON *request, const cJSON *response_schema, bn_tools *t, char *err, size_t size) {
    *t = (bn_tools){0};
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(request, "tools");
    const cJSON *choice = cJSON_GetObjectItemCaseSensitive(request, "tool_choice");
    const cJSON *parallel = cJSON_GetObjectItemCaseSensitive(request, "parallel_tool_calls");
    if (parallel && !cJSON_IsBool(parallel) && !cJSON_IsNull(parallel))
        return tools_error(err, size, "'parallel_tool_calls' must be true or false");
    if (!tools || cJSON_IsNull(tools) || (cJSON_IsArray(tools) && !tools->child)) {
        if (choice && !cJSON_IsNull(choice) && !(cJSON_IsString(choice) && !strcmp(choice->valuestring, "none")))
            return tools_error(err, size, "'tool_choice' needs 'tools'");
        return 0;
    }
    cJSON *args[MAX_TOOLS] = {NULL}; // each tool's arguments' schema, made and checked once
    const int rc = check_tools(tools, args, err, size) ? -1 : read_choice(request, tools, args, response_schema, t,
                                                                          err, size);
    for (int i = 0; i < MAX_TOOLS; i++) cJSON_Delete(args[i]);
    return rc;
}

void bn_tools_free(bn_tools *t) {
    free(t->system);
    free(t->schema);
    *t = (bn_tools){0};
}

// ---- the conversation so far --------------------------------------------------

// The function name of the earlier assistant's call with this id, or NULL.
static const char *called_name(const cJSON *msgs, const char *id) {
    const cJSON *m, *call;
    cJSON_ArrayForEach(m, msgs) {
        cJSON_ArrayForEach(call, cJSON_GetObjectItemCaseSensitive(m, "tool_calls")) {
            const cJSON *cid = cJSON_GetObjectItemCaseSensitive(call, "id");
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(call, "function"), "name");
            if (cJSON_IsString(cid) && cJSON_IsString(name) && !strcmp(cid->valuestring, id)) return name->valuestring;
        }
    }
    return NULL;
}

// An assistant's earlier calls as the model would have written them:
// {"tool_calls":[{"name":NAME,"arguments":ARGS}]}, each ARGS the call's
// arguments text (one whole JSON value, nothing after it) without its blanks.
// NULL when a call is malformed (*malformed) or memory is short.
static char *calls_text(const cJSON *calls, bool *malformed) {
    bn_buf out = {0};
    bool ok = cJSON_IsArray(calls) && calls->child, oom = bn_buf_printf(&out, "{\"tool_calls\":[") != 0;
    const cJSON *call;
    cJSON_ArrayForEach(call, calls) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(call, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(f, "name");
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(f, "arguments");
        cJSON *parsed = cJSON_IsString(args) ? cJSON_ParseWithOpts(args->valuestring, NULL, true) : NULL;
        char *quoted = cJSON_IsString(name) ? cJSON_PrintUnformatted(name) : NULL;
        size_t at = 0;
        ok = ok && parsed && quoted;
        cJSON_Delete(parsed);
        if (ok) {
            oom |= bn_buf_printf(&out, "%s{\"name\":%s,\"arguments\":", call == calls->child ? "" : ",", quoted) != 0;
            ok = oom || copy_value(args->valuestring, strlen(args->valuestring), &at, &out);
            oom |= bn_buf_printf(&out, "}") != 0;
        }
        free(quoted);
        if (!ok || oom) break;
    }
    oom |= bn_buf_printf(&out, "]}") != 0;
    *malformed = !ok;
    if (ok && !oom) return out.data;
    free(out.data);
    return NULL;
}

char *bn_tools_message(const cJSON *msgs, const cJSON *msg, const char **role, char *err, size_t size) {
    *err = 0;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(msg, "role");
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls");
    if (!strcmp(r->valuestring, "tool")) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "tool_call_id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
        bool ok = content && !cJSON_IsNull(content); // a result has text (bn_message_text reads null as "")
        char *text = ok ? bn_message_text(content, &ok) : NULL;
        if (!text || !cJSON_IsString(id)) {
            free(text);
            tools_error(err, size, "a \"tool\" message needs a string 'tool_call_id' and text 'content' (messages)");
            return NULL;
        }
        cJSON *o = cJSON_CreateObject(), *result = cJSON_AddObjectToObject(o, "tool_result");
        const char *name = called_name(msgs, id->valuestring);
        if (name) cJSON_AddStringToObject(result, "name", name);
        cJSON_AddStringToObject(result, "content", text);
        free(text);
        *role = "user";
        return bn_print_taken(o);
    }
    if (strcmp(r->valuestring, "assistant") || !calls || cJSON_IsNull(calls)) return NULL;
    bool malformed;
    char *text = calls_text(calls, &malformed);
    if (!text)
        tools_error(err, size, !malformed ? "out of memory" : "an assistant message's 'tool_calls' must be function "
                                                             "calls whose 'arguments' are one JSON value (messages)");
    *role = "assistant";
    return text;
}

// ---- the reply ------------------------------------------------------------------

// A call's arguments, or a response that is not text: the value of the next
// `"key":` in text from *at on, as the model wrote it (copy_value), as a string
// item. The schema the reply was held to puts it there.
static cJSON *value_text(const char *text, size_t len, size_t *at, const char *key) {
    bn_buf v = {0};
    cJSON *s = copy_value_of(text, len, at, key, &v) ? cJSON_CreateString(v.data) : NULL;
    free(v.data);
    return s;
}

void bn_tools_reply(cJSON *message, const char *text, size_t len, const char *reply_id, bool delta,
                    const char **finish) {
    *finish = NULL;
    cJSON *o = cJSON_ParseWithLength(text, len);
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(o, "tool_calls");
    const cJSON *response = cJSON_GetObjectItemCaseSensitive(o, "response");
    size_t at = 0;
    cJSON *value;
    if (cJSON_IsArray(calls)) {
        cJSON_AddNullToObject(message, "content");
        cJSON *list = cJSON_AddArrayToObject(message, "tool_calls");
        const char *dash = strchr(reply_id, '-');
        int i = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, calls) {
            bn_buf id = {0};
            bn_buf_printf(&id, "call_%s_%d", dash ? dash + 1 : reply_id, i);
            cJSON *e = cJSON_CreateObject(), *f;
            cJSON_AddItemToArray(list, e);
            if (delta) cJSON_AddNumberToObject(e, "index", i);
            cJSON_AddStringToObject(e, "id", id.data ? id.data : "call");
            free(id.data);
            cJSON_AddStringToObject(e, "type", "function");
            f = cJSON_AddObjectToObject(e, "function");
            cJSON_AddItemToObject(f, "name", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(c, "name"), true));
            value = value_text(text, len, &at, "arguments");
            cJSON_AddItemToObject(f, "arguments", value ? value : cJSON_CreateString("{}"));
            i++;
        }
        *finish = "tool_calls";
    } else if (cJSON_IsString(response)) {
        cJSON_AddStringToObject(message, "content", response->valuestring);
    } else if (response && (value = value_text(text, len, &at, "response"))) { // a response_format's value
        cJSON_AddItemToObject(message, "content", value);
    } else { // not the JSON the schema holds it to: cut short
        cJSON_AddItemToObject(message, "content", bn_text_json(text, len));
    }
    cJSON_Delete(o);
}

// ---- the conversation as the model reads it ------------------------------------

// Adds (role, content) to the array conv; false when memory is short.
// {"role": role, "content": content} put into conv at index at (-1: last);
// false when memory is short.
static bool add_turn(cJSON *conv, int at, const char *role, const char *content) {
    cJSON *turn = cJSON_CreateObject();
    const bool ok = turn && cJSON_AddStringToObject(turn, "role", role) &&
                    cJSON_AddStringToObject(turn, "content", content) &&
                    (at < 0 ? cJSON_AddItemToArray(conv, turn) : cJSON_InsertItemInArray(conv, at, turn));
    if (!ok) cJSON_Delete(turn);
    return ok;
}

cJSON *bn_tools_conversation(const cJSON *msgs, const char *system, char *err, size_t size) {
    *err = 0;
    if (!cJSON_IsArray(msgs) || !msgs->child) {
        tools_error(err, size, "'messages' must be a non-empty array of messages");
        return NULL;
    }
    cJSON *conv = cJSON_CreateArray();
    if (!conv) {
        tools_error(err, size, "out of memory (messages)");
        return NULL;
    }
    bool ok = true;
    const cJSON *msg;
    cJSON_ArrayForEach(msg, msgs) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(msg, "role");
        if (!cJSON_IsObject(msg) || !cJSON_IsString(role)) {
            tools_error(err, size, "each of 'messages' must be an object with a string 'role'");
            ok = false;
            break;
        }
        const char *as = NULL;
        char *text = bn_tools_message(msgs, msg, &as, err, size);
        if (!text && *err) {
            ok = false;
            break;
        }
        if (!text) text = bn_message_text(cJSON_GetObjectItemCaseSensitive(msg, "content"), &ok);
        if (!ok || !text) {
            tools_error(err, size, ok ? "out of memory (messages)"
                                      : "a message's 'content' must be a string or an array of text parts (messages)");
            free(text);
            ok = false;
            break;
        }
        // OpenAI's newer name for the system role.
        ok = add_turn(conv, -1, as ? as : !strcmp(role->valuestring, "developer") ? "system" : role->valuestring, text);
        free(text);
        if (!ok) {
            tools_error(err, size, "out of memory (messages)");
            break;
        }
    }
    if (ok && system) { // the tools' part: into the system message, or one of its own first
        cJSON *first = conv->child, *content = cJSON_GetObjectItemCaseSensitive(first, "content");
        if (!strcmp(cJSON_GetObjectItemCaseSensitive(first, "role")->valuestring, "system")) {
            bn_buf joined = {0};
            ok = !bn_buf_printf(&joined, "%s\n\n%s", content->valuestring, system) &&
                 cJSON_SetValuestring(content, joined.data) != NULL;
            free(joined.data);
        } else {
            ok = add_turn(conv, 0, "system", system);
        }
        if (!ok) tools_error(err, size, "out of memory (tools)");
    }
    if (ok) return conv;
    cJSON_Delete(conv);
    return NULL;
}

// ---- the library's API (bitnet.h) ------------------------------------------------

int bn_tools_chat_request(const char *request_json, const char *response_schema, char **messages_json,
                          char **reply_schema, bn_error *err) {
    *messages_json = *reply_schema = NULL;
    if (request_json && bn_json_has_nul_escape(request_json, strlen(request_json)))
        return bn_errorf(err, "the request has a \\u0000 escape (a NUL) in its text, which cannot be carried");
    cJSON *request = request_json ? cJSON_Parse(request_json) : NULL;
    cJSON *response = response_schema ? cJSON_Parse(response_schema) : NULL;
    if (!cJSON_IsObject(request)) {
        cJSON_Delete(request), cJSON_Delete(response);
        return bn_errorf(err, "tools: the request must be a JSON object");
    }
    if (response_schema && !response) {
        cJSON_Delete(request);
        return bn_errorf(err, "tools: the response schema is not JSON");
    }
    char why[512];
    bn_tools t = {0};
    int rc = bn_tools_read(request, response, &t, why, sizeof why);
    cJSON *conv = rc ? NULL : bn_tools_conversation(cJSON_GetObjectItemCaseSensitive(request, "messages"),
                                                    t.system, why, sizeof why);
    if (conv && !(*messages_json = bn_print_taken(conv))) snprintf(why, sizeof why, "out of memory");
    rc = *messages_json ? 0 : bn_errorf(err, "%s", why);
    if (!rc) *reply_schema = t.schema, t.schema = NULL;
    bn_tools_free(&t);
    cJSON_Delete(request);
    cJSON_Delete(response);
    return rc;
}

char *bn_tools_chat_reply(const char *text, size_t len, const char *reply_id, int delta, int *called) {
    cJSON *message = cJSON_CreateObject();
    const char *finish = NULL;
    if (message) bn_tools_reply(message, text, len, reply_id, delta != 0, &finish);
    *called = finish != NULL;
    return bn_print_taken(message);
}
