// test_chat_tools.c - core/chat_tools.c, function calling (the server's and the Python API's), with
// no model: the schema a request's tools make (compiled and read by
// json_schema.c: what it takes and refuses), the checks on the tools, and the
// reply and history texts, numbers byte for byte.
#include "test_util.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

#include "bitnet.h"
#include "chat_tools.h"
#include "json_schema.h"
#include "json_text.h"

// bn_tools_read on a request body; rc and *t (freed by the caller).
static int read_tools(const char *body, const char *response_schema, bn_tools *t, char *err, size_t size) {
    cJSON *o = cJSON_Parse(body), *rs = response_schema ? cJSON_Parse(response_schema) : NULL;
    assert_non_null(o);
    const int rc = bn_tools_read(o, rs, t, err, size);
    cJSON_Delete(o);
    cJSON_Delete(rs);
    return rc;
}

// Whether the schema takes text whole.
static bool takes(const char *schema, const char *text) {
    bn_json_schema *g;
    bn_error err;
    if (bn_json_schema_compile(schema, strlen(schema), &g, &err)) fail_msg("%s", err.msg);
    bn_json_state *s = malloc(sizeof *s);
    bn_json_state_init(s, g);
    const bool ok = bn_json_state_feed(s, text, strlen(text)) && bn_json_state_done(s);
    free(s);
    bn_json_schema_free(g);
    return ok;
}

#define WEATHER                                                                                              \
    "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": {\"type\": \"object\", "  \
    "\"properties\": {\"city\": {\"type\": \"string\", \"pattern\": \"^[A-Z]\"}, \"days\": "                        \
    "{\"type\": \"integer\", \"minimum\": 1}, \"above\": {\"type\": \"number\", \"minimum\": -90}, \"on\": "        \
    "{\"type\": \"string\", \"format\": \"date\"}, \"mail\": {\"type\": \"string\", \"format\": \"email\"}, "       \
    "\"code\": {\"type\": \"string\", \"pattern\": \"^(?!x)\", \"maxLength\": 2}}, \"required\": [\"city\"]}}}"
#define NOW "{\"type\": \"function\", \"function\": {\"name\": \"now\"}}"

static void test_schema_of_tools(void **state) {
    (void)state;
    bn_tools t;
    char err[512];
    assert_int_equal(read_tools("{\"tools\": [" WEATHER ", " NOW "]}", NULL, &t, err, sizeof err), 0);
    assert_non_null(strstr(t.system, "get_weather"));
    assert_non_null(strstr(t.system, "\"response\""));
    // Calls: each function's own arguments (not strict: format email and the
    // code's lookahead pattern dropped, the maxLength beside it kept; the city's
    // pattern, an integer's and a number's minimum and format date held); no
    // parameters is no arguments; or an answer.
    assert_true(takes(t.schema, "{\"tool_calls\":[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\","
                                "\"days\":1,\"above\":-89.5}},{\"name\":\"now\",\"arguments\":{}}]}"));
    assert_false(takes(t.schema, "{\"tool_calls\":[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\","
                                 "\"above\":-90.5}}]}"));
    assert_false(takes(t.schema, "{\"tool_calls\":[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"\"}}]}"));
    assert_false(takes(t.schema, "{\"tool_calls\":[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"paris\"}}]}"));
    assert_true(takes(t.schema, "{\"tool_calls\":[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"A\","
                                "\"on\":\"2024-02-29\",\"mail\":\"not a mail address\",\"code\":\"xy\"}}]}"));
    assert_false(takes(t.schema, "{\"tool_calls\":[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"A\","
                                 "\"code\":\"xyz\"}}]}"));
    assert_false(takes(t.schema, "{\"tool_calls\":[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"A\","
                                 "\"on\":\"2023-02-29\"}}]}"));
    assert_false(takes(t.schema, "{\"tool_calls\":[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"A\","
                                 "\"days\":0}}]}"));
    assert_true(takes(t.schema, "{\"response\":\"hi\"}"));
    assert_false(takes(t.schema, "{\"tool_calls\":[{\"name\":\"now\",\"arguments\":{\"x\":1}}]}"));
    assert_false(takes(t.schema, "{\"tool_calls\":[{\"name\":\"get_weather\",\"arguments\":{\"days\":1}}]}"));
    assert_false(takes(t.schema, "{\"tool_calls\":[]}"));
    bn_tools_free(&t);
    // required, one call at most, a response_format's value for the answer.
    assert_int_equal(read_tools("{\"tools\": [" WEATHER "], \"tool_choice\": \"required\", "
                                "\"parallel_tool_calls\": false}", NULL, &t, err, sizeof err), 0);
    assert_null(strstr(t.system, "\"response\""));
    assert_false(takes(t.schema, "{\"response\":\"hi\"}"));
    assert_false(takes(t.schema, "{\"tool_calls\":[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"a\"}},"
                                 "{\"name\":\"get_weather\",\"arguments\":{\"city\":\"b\"}}]}"));
    bn_tools_free(&t);
    assert_int_equal(read_tools("{\"tools\": [" WEATHER "]}", "{\"type\": \"object\", \"properties\": {\"$defs\": "
                                "{\"$ref\": \"#/$defs/n\"}}, \"$defs\": {\"n\": {\"type\": \"integer\"}}}",
                                &t, err, sizeof err), 0);
    assert_true(takes(t.schema, "{\"response\":{\"$defs\":3}}"));
    assert_false(takes(t.schema, "{\"response\":\"hi\"}"));
    bn_tools_free(&t);
    // Many functions: one reading each call (a tagged union), however many.
    char body[16384];
    size_t len = (size_t)sprintf(body, "{\"tools\": [");
    for (int i = 0; i < 40; i++)
        len += (size_t)sprintf(body + len, "%s{\"type\": \"function\", \"function\": {\"name\": \"f%d\", \"parameters\": "
                                           "{\"type\": \"object\", \"properties\": {\"x\": {\"const\": %d}}}}}",
                               i ? ", " : "", i, i);
    sprintf(body + len, "], \"tool_choice\": \"required\"}");
    assert_int_equal(read_tools(body, NULL, &t, err, sizeof err), 0);
    assert_true(takes(t.schema, "{\"tool_calls\":[{\"name\":\"f39\",\"arguments\":{\"x\":39}}]}"));
    assert_false(takes(t.schema, "{\"tool_calls\":[{\"name\":\"f39\",\"arguments\":{\"x\":38}}]}"));
    bn_tools_free(&t);
    // Not strict: a followed keyword the compiler would refuse where it stands is
    // dropped, not the request (beside an enum or a $ref, past what a bounded number
    // writes, out of order); one it takes is held (a number's exclusiveMinimum).
    assert_int_equal(read_tools("{\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", "
                                "\"parameters\": {\"type\": \"object\", \"properties\": {\"e\": {\"type\": \"string\", "
                                "\"enum\": [\"a\", \"b\"], \"maxLength\": 10}, \"r\": {\"$ref\": \"#/$defs/n\", \"maxLength\": 3}, "
                                "\"x\": {\"type\": \"number\", \"minimum\": 1e300}, \"i\": {\"type\": \"integer\", \"minimum\": 5, "
                                "\"maximum\": 4}, \"s\": {\"type\": \"string\", \"minLength\": -1, \"format\": \"date\"}, "
                                "\"y\": {\"type\": \"number\", \"exclusiveMinimum\": 0}}, "
                                "\"$defs\": {\"n\": {\"type\": \"string\"}}}}}]}", NULL, &t, err, sizeof err), 0);
    assert_true(takes(t.schema, "{\"tool_calls\":[{\"name\":\"f\",\"arguments\":{\"e\":\"a\",\"r\":\"long\","
                                "\"x\":-1.5,\"i\":9,\"s\":\"\",\"y\":0.5}}]}"));
    assert_false(takes(t.schema, "{\"tool_calls\":[{\"name\":\"f\",\"arguments\":{\"y\":0}}]}"));
    bn_tools_free(&t);
    // Strict: bounds as the request wrote them (cJSON's own print would round
    // 99.99999999999999 to 100, and let 100 through).
    assert_int_equal(read_tools("{\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"strict\": "
                                "true, \"parameters\": {\"type\": \"object\", \"properties\": {\"n\": {\"type\": "
                                "\"integer\", \"maximum\": 99.99999999999999}}}}}], \"tool_choice\": \"required\"}",
                                NULL, &t, err, sizeof err), 0);
    assert_true(takes(t.schema, "{\"tool_calls\":[{\"name\":\"f\",\"arguments\":{\"n\":99}}]}"));
    assert_false(takes(t.schema, "{\"tool_calls\":[{\"name\":\"f\",\"arguments\":{\"n\":100}}]}"));
    bn_tools_free(&t);
    // tool_choice none, or no tools: nothing to add.
    assert_int_equal(read_tools("{\"tools\": [" NOW "], \"tool_choice\": \"none\"}", NULL, &t, err, sizeof err), 0);
    assert_null(t.schema);
    assert_int_equal(read_tools("{}", NULL, &t, err, sizeof err), 0);
    assert_null(t.schema);
}

static void test_refused_tools(void **state) {
    (void)state;
    static const struct {
        const char *body, *says;
    } cases[] = {
        {"{\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"strict\": true, \"parameters\": "
         "{\"type\": \"string\", \"format\": \"email\"}}}]}",
         "'tools' function f's parameters: at the top: 'format' is not supported for \"email\""},
        {"{\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"strict\": true, \"parameters\": "
         "{\"type\": \"number\", \"minimum\": 1, \"exclusiveMaximum\": 1}}}]}",
         "'tools' function f's parameters: at the top: 'minimum' and 'exclusiveMaximum' leave no number"},
        {"{\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"$ref\": \"#/x\"}}}]}",
         "'tools' function f's parameters: at the top: '$ref' must be"},
        {"{\"tools\": [" NOW ", " NOW "]}", "the same name"},
        {"{\"tools\": [" NOW "], \"stop\": [\"x\"]}", "'stop' with 'tools'"},
        {"{\"tools\": [" NOW "], \"tool_choice\": {\"type\": \"function\", \"function\": {\"name\": \"then\"}}}",
         "does not list"},
        {"{\"tool_choice\": \"auto\"}", "'tool_choice' needs 'tools'"},
        {"{\"tools\": [" NOW "], \"parallel_tool_calls\": 1}", "'parallel_tool_calls'"},
        {"{\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"a b\"}}]}", "'name'"},
        {"{\"tools\": {}}", "array of 1 to 128"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        bn_tools t;
        char err[512] = "";
        assert_int_equal(read_tools(cases[i].body, NULL, &t, err, sizeof err), -1);
        assert_null(t.schema);
        if (!strstr(err, cases[i].says)) fail_msg("%s: \"%s\", want \"%s\"", cases[i].body, err, cases[i].says);
    }
}

// The reply's calls carry their arguments as written, blanks aside: 2^53 + 1,
// 1e400 and a 20-digit id are not rounded through a double.
static void test_reply(void **state) {
    (void)state;
    static const char text[] = "{ \"tool_calls\" : [ {\"name\":\"add\", \"arguments\" : { \"a\" : 9007199254740993 ,"
                               "\n\"b\": 1e400, \"s\": \"x \\\"arguments\\\": y\", \"id\": 12345678901234567890 } },"
                               " {\"name\": \"now\", \"arguments\": {}} ] }";
    cJSON *m = cJSON_CreateObject();
    const char *finish;
    bn_tools_reply(m, text, strlen(text), "chatcmpl-7", false, &finish);
    assert_string_equal(finish, "tool_calls");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(m, "content")));
    const cJSON *calls = cJSON_GetObjectItem(m, "tool_calls");
    assert_int_equal(cJSON_GetArraySize(calls), 2);
    const cJSON *f = cJSON_GetObjectItem(cJSON_GetArrayItem(calls, 0), "function");
    assert_string_equal(cJSON_GetObjectItem(f, "name")->valuestring, "add");
    assert_string_equal(cJSON_GetObjectItem(f, "arguments")->valuestring,
                        "{\"a\":9007199254740993,\"b\":1e400,\"s\":\"x \\\"arguments\\\": y\",\"id\":12345678901234567890}");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(calls, 0), "id")->valuestring, "call_7_0");
    f = cJSON_GetObjectItem(cJSON_GetArrayItem(calls, 1), "function");
    assert_string_equal(cJSON_GetObjectItem(f, "arguments")->valuestring, "{}");
    cJSON_Delete(m);
    // An answer: text, or a response_format's value as text; cut short: the text as it is.
    static const struct {
        const char *text, *content;
    } answers[] = {{"{\"response\": \"It is \\\"12\\\" degrees\"}", "It is \"12\" degrees"},
                   {"{\"response\": {\"t\": 1.50, \"k\": [1, 2]}}", "{\"t\":1.50,\"k\":[1,2]}"},
                   {"{\"tool_calls\": [{\"na", "{\"tool_calls\": [{\"na"}};
    for (size_t i = 0; i < sizeof answers / sizeof *answers; i++) {
        m = cJSON_CreateObject();
        bn_tools_reply(m, answers[i].text, strlen(answers[i].text), "chatcmpl-7", true, &finish);
        assert_null(finish);
        assert_string_equal(cJSON_GetObjectItem(m, "content")->valuestring, answers[i].content);
        cJSON_Delete(m);
    }
}

// Earlier turns go back as the model writes them: calls as JSON (arguments
// byte for byte, blanks aside), results as a user message naming the function.
static void test_history(void **state) {
    (void)state;
    cJSON *msgs = cJSON_Parse(
        "[{\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"c1\", \"type\": \"function\", "
        "\"function\": {\"name\": \"add\", \"arguments\": \" {\\\"a\\\" : 12345678901234567890} \"}}]},"
        " {\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": [{\"type\": \"text\", \"text\": \"3\"}]},"
        " {\"role\": \"user\", \"content\": \"hi\"},"
        " {\"role\": \"assistant\", \"tool_calls\": [{\"function\": {\"name\": \"f\", \"arguments\": \"{} junk\"}}]},"
        " {\"role\": \"tool\", \"content\": \"x\"}]");
    const char *role = NULL;
    char err[256];
    char *text = bn_tools_message(msgs, cJSON_GetArrayItem(msgs, 0), &role, err, sizeof err);
    assert_string_equal(text, "{\"tool_calls\":[{\"name\":\"add\",\"arguments\":{\"a\":12345678901234567890}}]}");
    assert_string_equal(role, "assistant");
    free(text);
    text = bn_tools_message(msgs, cJSON_GetArrayItem(msgs, 1), &role, err, sizeof err);
    assert_string_equal(text, "{\"tool_result\":{\"name\":\"add\",\"content\":\"3\"}}");
    assert_string_equal(role, "user");
    free(text);
    assert_null(bn_tools_message(msgs, cJSON_GetArrayItem(msgs, 2), &role, err, sizeof err));
    assert_string_equal(err, ""); // not this file's: a plain message
    assert_null(bn_tools_message(msgs, cJSON_GetArrayItem(msgs, 3), &role, err, sizeof err));
    assert_non_null(strstr(err, "one JSON value"));
    assert_null(bn_tools_message(msgs, cJSON_GetArrayItem(msgs, 4), &role, err, sizeof err));
    assert_non_null(strstr(err, "tool_call_id"));
    cJSON_Delete(msgs);
}

// bn_tools_conversation on messages (JSON text) and the tools' system text:
// the conversation as compact JSON, or NULL with *why set.
static char *conversation(const char *msgs, const char *system, char *why, size_t size) {
    cJSON *m = cJSON_Parse(msgs);
    cJSON *conv = bn_tools_conversation(m, system, why, size);
    cJSON_Delete(m);
    return conv ? bn_print_taken(conv) : NULL;
}

// The conversation as the model reads it: content parts joined, "developer" as
// "system", calls and results as text, the tools' text joined to the system
// message or put before the rest as one.
static void test_conversation(void **state) {
    (void)state;
    char why[256], *c;
    c = conversation("[{\"role\": \"developer\", \"content\": [{\"type\": \"text\", \"text\": \"Be \"},"
                     " {\"type\": \"text\", \"text\": \"brief.\"}]}, {\"role\": \"user\", \"content\": null}]",
                     "TOOLS", why, sizeof why);
    assert_string_equal(c, "[{\"role\":\"system\",\"content\":\"Be brief.\\n\\nTOOLS\"},{\"role\":\"user\",\"content\":\"\"}]");
    free(c);
    c = conversation("[{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"tool_calls\": [{\"id\": "
                     "\"c1\", \"function\": {\"name\": \"f\", \"arguments\": \"{ }\"}}]}, {\"role\": \"tool\", "
                     "\"tool_call_id\": \"c1\", \"content\": \"4\"}]", "TOOLS", why, sizeof why);
    assert_string_equal(c, "[{\"role\":\"system\",\"content\":\"TOOLS\"},{\"role\":\"user\",\"content\":\"hi\"},"
                           "{\"role\":\"assistant\",\"content\":\"{\\\"tool_calls\\\":[{\\\"name\\\":\\\"f\\\","
                           "\\\"arguments\\\":{}}]}\"},{\"role\":\"user\",\"content\":"
                           "\"{\\\"tool_result\\\":{\\\"name\\\":\\\"f\\\",\\\"content\\\":\\\"4\\\"}}\"}]");
    free(c);
    c = conversation("[{\"role\": \"system\", \"content\": \"S\"}]", NULL, why, sizeof why);
    assert_string_equal(c, "[{\"role\":\"system\",\"content\":\"S\"}]");
    free(c);
    static const struct {
        const char *msgs, *says;
    } bad[] = {{"[]", "non-empty array"},
               {"{\"role\": \"user\"}", "non-empty array"},
               {"[{\"role\": 3, \"content\": \"x\"}]", "string 'role'"},
               {"[7]", "string 'role'"},
               {"[{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]", "array of text parts"},
               {"[{\"role\": \"user\", \"content\": 5}]", "array of text parts"},
               {"[{\"role\": \"tool\", \"content\": \"x\"}]", "tool_call_id"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_null(conversation(bad[i].msgs, "TOOLS", why, sizeof why));
        assert_non_null(strstr(why, bad[i].says));
    }
    assert_null(bn_tools_conversation(NULL, NULL, why, sizeof why));
    assert_non_null(strstr(why, "non-empty array"));
}

// The public pair over JSON text: the request's conversation and reply schema
// (NULL without a tool to call), the reply's message, and refusals naming the field.
static void test_chat_api(void **state) {
    (void)state;
    char *messages, *schema;
    bn_error err;
    static const char ask[] = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"type\": "
                              "\"function\", \"function\": {\"name\": \"now\"}}], \"tool_choice\": \"required\"}";
    assert_int_equal(bn_tools_chat_request(ask, NULL, &messages, &schema, &err), 0);
    assert_non_null(strstr(messages, "\"role\":\"system\""));
    assert_non_null(strstr(messages, "now"));
    assert_int_equal(bn_json_schema_check(schema, strlen(schema), &err), 0);
    assert_null(strstr(schema, "\"response\"")); // required: calls only
    free(messages);
    free(schema);
    static const char none[] = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"tools\": [{\"type\": "
                               "\"function\", \"function\": {\"name\": \"now\"}}], \"tool_choice\": \"none\"}";
    assert_int_equal(bn_tools_chat_request(none, "{\"type\": \"object\"}", &messages, &schema, &err), 0);
    assert_string_equal(messages, "[{\"role\":\"user\",\"content\":\"hi\"}]");
    assert_null(schema);
    free(messages);
    static const struct {
        const char *request, *response, *says;
    } bad[] = {{"[1]", NULL, "must be a JSON object"},
               {"{\"messages\": [", NULL, "must be a JSON object"},
               {ask, "{", "not JSON"},
               {"{\"messages\": [{\"role\": \"user\", \"content\": \"a\\u0000\"}]}", NULL, "u0000"},
               {"{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}], \"tool_choice\": \"required\"}", NULL,
                "'tool_choice' needs 'tools'"},
               {"{\"messages\": 3}", NULL, "non-empty array"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        messages = schema = (char *)"unset";
        assert_int_equal(bn_tools_chat_request(bad[i].request, bad[i].response, &messages, &schema, &err), -1);
        assert_null(messages);
        assert_null(schema);
        assert_non_null(strstr(err.msg, bad[i].says));
    }
    int called = -1;
    static const char reply[] = "{\"tool_calls\": [{\"name\": \"now\", \"arguments\": {}}]}";
    char *m = bn_tools_chat_reply(reply, strlen(reply), "chatcmpl-ab", 1, &called);
    assert_int_equal(called, 1);
    assert_string_equal(m, "{\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"call_ab_0\",\"type\":\"function\","
                           "\"function\":{\"name\":\"now\",\"arguments\":\"{}\"}}]}");
    free(m);
    static const char answer[] = "{\"response\": \"ok\"}";
    m = bn_tools_chat_reply(answer, strlen(answer), "x", 0, &called);
    assert_int_equal(called, 0);
    assert_string_equal(m, "{\"content\":\"ok\"}");
    free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_of_tools),
        cmocka_unit_test(test_refused_tools),
        cmocka_unit_test(test_reply),
        cmocka_unit_test(test_history),
        cmocka_unit_test(test_conversation),
        cmocka_unit_test(test_chat_api),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
