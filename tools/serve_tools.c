// serve_tools.c - function calling (serve_tools.h): tools in, a system message
// and a schema out; the held reply back into tool_calls.
#include "serve_tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve_reply.h"

#define MAX_TOOLS 128

static int tools_error(char *err, size_t size, const char *msg) {
    snprintf(err, size, "%s", msg);
    return -1;
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

// One call of function f: {"name": {"const": NAME}, "arguments": PARAMETERS}.
// The parameters are their own resource ("$id"), so that their "$ref"s point
// into them rather than into the schema around them.
static cJSON *call_schema(const cJSON *f, int index) {
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(f, "parameters");
    cJSON *args = params ? cJSON_Duplicate(params, true) : cJSON_CreateObject();
    if (!cJSON_GetObjectItemCaseSensitive(args, "$id")) {
        char id[40];
        snprintf(id, sizeof id, "urn:bitnet-gpu:tool:%d", index);
        cJSON_AddStringToObject(args, "$id", id);
    }
    cJSON *name = cJSON_CreateObject();
    cJSON_AddStringToObject(name, "const", cJSON_GetObjectItemCaseSensitive(f, "name")->valuestring);
    cJSON *o = one_property("name", name);
    cJSON_AddItemToObject(cJSON_GetObjectItemCaseSensitive(o, "properties"), "arguments", args);
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

// Checks each tool: {"type": "function", "function": {"name", "description"?, "parameters"?}}.
static int check_tools(const cJSON *tools, char *err, size_t size) {
    const int n = cJSON_IsArray(tools) ? cJSON_GetArraySize(tools) : -1;
    if (n < 1 || n > MAX_TOOLS) return tools_error(err, size, "'tools' must be an array of 1 to 128 tools");
    const cJSON *t;
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
    char *json = cJSON_PrintUnformatted(list);
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

int bn_tools_read(const cJSON *request, bn_tools *t, char *err, size_t size) {
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
    if (check_tools(tools, err, size)) return -1;
    bool required, none;
    const cJSON *callable = chosen(tools, choice, &required, &none, err, size);
    if (!callable) return -1;
    if (none) return 0;
    // {"tool_calls": [call, ...]}: any listed function, or the one chosen.
    cJSON *alts = cJSON_CreateArray();
    if (cJSON_IsArray(callable)) {
        int i = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, callable) cJSON_AddItemToArray(alts, call_schema(cJSON_GetObjectItemCaseSensitive(c, "function"), i++));
    } else {
        cJSON_AddItemToArray(alts, call_schema(cJSON_GetObjectItemCaseSensitive(callable, "function"), 0));
    }
    cJSON *items = cJSON_CreateObject();
    cJSON_AddItemToObject(items, "anyOf", alts);
    cJSON *calls = cJSON_CreateObject();
    cJSON_AddStringToObject(calls, "type", "array");
    cJSON_AddItemToObject(calls, "items", items);
    cJSON_AddNumberToObject(calls, "minItems", 1);
    if (cJSON_IsFalse(parallel)) cJSON_AddNumberToObject(calls, "maxItems", 1);
    cJSON *schema = one_property("tool_calls", calls);
    if (!required) {
        cJSON *response = cJSON_CreateObject();
        cJSON_AddStringToObject(response, "type", "string");
        cJSON *either = cJSON_CreateObject(), *any = cJSON_AddArrayToObject(either, "anyOf");
        cJSON_AddItemToArray(any, schema);
        cJSON_AddItemToArray(any, one_property("response", response));
        schema = either;
    }
    t->schema = cJSON_PrintUnformatted(schema);
    cJSON_Delete(schema);
    t->system = system_text(cJSON_IsArray(callable) ? callable : tools, required);
    if (!t->schema || !t->system) {
        bn_tools_free(t);
        return tools_error(err, size, "out of memory");
    }
    return 0;
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

// A content's text: a string, or text parts joined (NULL: not text).
static char *content_text(const cJSON *content) {
    if (cJSON_IsString(content)) return strdup(content->valuestring);
    if (!cJSON_IsArray(content)) return NULL;
    size_t len = 1;
    const cJSON *part, *t;
    cJSON_ArrayForEach(part, content) {
        if (!cJSON_IsString(t = cJSON_GetObjectItemCaseSensitive(part, "text"))) return NULL;
        len += strlen(t->valuestring);
    }
    char *s = malloc(len);
    if (s) *s = 0;
    cJSON_ArrayForEach(part, content) if (s) strcat(s, cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring);
    return s;
}

static char *print_taken(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

char *bn_tools_message(const cJSON *msgs, const cJSON *msg, const char **role, char *err, size_t size) {
    *err = 0;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(msg, "role");
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls");
    if (!strcmp(r->valuestring, "tool")) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "tool_call_id");
        char *text = content_text(cJSON_GetObjectItemCaseSensitive(msg, "content"));
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
        return print_taken(o);
    }
    if (strcmp(r->valuestring, "assistant") || !calls || cJSON_IsNull(calls)) return NULL;
    cJSON *o = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(o, "tool_calls");
    const cJSON *call;
    bool ok = cJSON_IsArray(calls) && calls->child;
    cJSON_ArrayForEach(call, calls) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(call, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(f, "name");
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(f, "arguments");
        cJSON *parsed = cJSON_IsString(args) ? cJSON_Parse(args->valuestring) : NULL;
        if (!cJSON_IsString(name) || !parsed) {
            cJSON_Delete(parsed);
            ok = false;
            break;
        }
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "name", name->valuestring);
        cJSON_AddItemToObject(e, "arguments", parsed);
        cJSON_AddItemToArray(list, e);
    }
    if (!ok) {
        cJSON_Delete(o);
        tools_error(err, size, "an assistant message's 'tool_calls' must be function calls whose 'arguments' "
                               "are JSON text (messages)");
        return NULL;
    }
    *role = "assistant";
    return print_taken(o);
}

// ---- the reply ------------------------------------------------------------------

void bn_tools_reply(cJSON *message, const char *text, size_t len, const char *reply_id, bool delta,
                    const char **finish) {
    *finish = NULL;
    cJSON *o = cJSON_ParseWithLength(text, len);
    const cJSON *calls = cJSON_GetObjectItemCaseSensitive(o, "tool_calls");
    const cJSON *response = cJSON_GetObjectItemCaseSensitive(o, "response");
    if (cJSON_IsArray(calls)) {
        cJSON_AddNullToObject(message, "content");
        cJSON *list = cJSON_AddArrayToObject(message, "tool_calls");
        const char *dash = strchr(reply_id, '-');
        int i = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, calls) {
            char id[64];
            snprintf(id, sizeof id, "call_%s_%d", dash ? dash + 1 : reply_id, i);
            cJSON *e = cJSON_CreateObject(), *f;
            if (delta) cJSON_AddNumberToObject(e, "index", i);
            cJSON_AddStringToObject(e, "id", id);
            cJSON_AddStringToObject(e, "type", "function");
            f = cJSON_AddObjectToObject(e, "function");
            cJSON_AddItemToObject(f, "name", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(c, "name"), true));
            char *args = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(c, "arguments"));
            cJSON_AddStringToObject(f, "arguments", args ? args : "{}");
            free(args);
            cJSON_AddItemToArray(list, e);
            i++;
        }
        *finish = "tool_calls";
    } else if (cJSON_IsString(response)) {
        cJSON_AddStringToObject(message, "content", response->valuestring);
    } else { // not the JSON the schema holds it to: cut short
        cJSON_AddItemToObject(message, "content", bn_text_json(text, len));
    }
    cJSON_Delete(o);
}
