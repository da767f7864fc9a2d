// test_json_prefix.c - core/json_prefix.c, the automaton behind json_object
// requests: hand-picked texts and their prefixes, every byte of the way; the
// UTF-8, depth and whitespace rules; and (`test_json_prefix python`) 123,000
// texts judged by Python's json module (tests/json_reference.py, through
// BITNET_JSON_REFERENCE): a text is whole JSON for the automaton exactly when
// json.loads takes it, and every prefix of one it takes is a prefix here; on
// the same texts json_schema.c with {"type": "object"} (json_object's schema)
// reads exactly what this automaton reads with object_only.
#include "test_util.h"

#include <stdlib.h>

#include "json_prefix.h"
#include "json_schema.h"

// Feeds s byte by byte: the bytes read before the first refusal (strlen: none).
static size_t accepted(const char *s, size_t n, bool object_only, bool *done) {
    bn_json_prefix p;
    bn_json_prefix_init(&p, object_only);
    for (size_t i = 0; i < n; i++)
        if (!bn_json_prefix_feed(&p, s + i, 1)) return *done = false, i;
    *done = bn_json_prefix_done(&p);
    return n;
}

static void expect(const char *s, bool object_only, size_t want_read, bool want_done) {
    bool done;
    const size_t n = strlen(s), got = accepted(s, n, object_only, &done);
    if (got != want_read || done != want_done)
        fail_msg("\"%s\": read %zu of %zu bytes (want %zu), done %d (want %d)", s, got, n, want_read, done,
                 want_done);
}

static void test_whole_texts(void **state) {
    (void)state;
    static const char *const whole[] = {
        "{}", "[]", "0", "-0", "12", "-3.25e+10", "1E5", "0.5", "true", "false", "null", "\"\"",
        "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\uD83D\"", "{\"a\":1,\"b\":[true,{\"c\":null}],\"d\":\"x\"}",
        " { \"k\" : [ 1 , 2 ] } ", "[[[]],[{}],\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"]", "\t\n\r7\n",
    };
    for (size_t i = 0; i < sizeof whole / sizeof *whole; i++) {
        expect(whole[i], false, strlen(whole[i]), true);
        // Every prefix reads whole; none shorter is done but a bare number's.
        for (size_t n = 0; n < strlen(whole[i]); n++) {
            bool done;
            assert_int_equal(accepted(whole[i], n, false, &done), n);
        }
    }
}

static void test_refused(void **state) {
    (void)state;
    // The text, and how many bytes are read before the refusal.
    static const struct {
        const char *s;
        size_t read;
    } bad[] = {
        {"01", 1},        {"-", 1},        {"1.", 2},       {"1.e5", 2},     {".5", 0},        {"+1", 0},
        {"1e", 2},        {"1e+", 3},      {"tru", 3},      {"trux", 3},     {"nul l", 3},     {"[1,]", 3},
        {"{\"a\"}", 4},   {"{\"a\" 1}", 5}, {"{1:2}", 1},    {"{,}", 1},      {"[1 2]", 3},     {"\"\x01\"", 1},
        {"\"\\x\"", 2},   {"\"\\u12G4\"", 5}, {"{}{", 2},    {"[}", 1},       {"{]", 1},        {"]", 0},
        {"\"\xc0\x80\"", 1}, {"\"\xe0\x80\x80\"", 2}, {"\"\xed\xa0\x80\"", 2}, {"\"\xf4\x90\x80\x80\"", 2},
        {"\"\xc3\"", 2},  {"\"\xff\"", 1}, {"NaN", 0},      {"1 2", 2},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        bool done;
        const size_t got = accepted(bad[i].s, strlen(bad[i].s), false, &done);
        if (got != bad[i].read || done) fail_msg("\"%s\": read %zu bytes, want %zu and a refusal", bad[i].s, got, bad[i].read);
    }
    // Unfinished texts read whole but are not done.
    expect("{\"a\":", false, 5, false);
    expect("[1,", false, 3, false);
    expect("\"abc", false, 4, false);
}

static void test_object_only_depth_space(void **state) {
    (void)state;
    expect("{\"a\":[1]}", true, 9, true);
    expect("[1]", true, 0, false);
    expect("7", true, 0, false);
    expect("  {}", true, 4, true);
    char deep[2 * BN_JSON_MAX_DEPTH + 4];
    memset(deep, '[', BN_JSON_MAX_DEPTH + 1);
    deep[BN_JSON_MAX_DEPTH + 1] = 0;
    expect(deep, false, BN_JSON_MAX_DEPTH, false); // one container too many
    deep[BN_JSON_MAX_DEPTH] = 0;
    memset(deep + BN_JSON_MAX_DEPTH, ']', BN_JSON_MAX_DEPTH);
    deep[2 * BN_JSON_MAX_DEPTH] = 0;
    expect(deep, false, 2 * BN_JSON_MAX_DEPTH, true);
    char spaces[64] = "{";
    memset(spaces + 1, ' ', BN_JSON_MAX_SPACE + 1);
    spaces[BN_JSON_MAX_SPACE + 2] = 0;
    expect(spaces, false, BN_JSON_MAX_SPACE + 1, false); // the 17th blank in a row
    // One newline a run: indented JSON, not a page of blank lines.
    expect("{\n  \"a\": [\n    1\n  ]\n}", true, 22, true);
    expect("{\r\n\t}", true, 5, true);
    expect("{\n\n}", true, 2, false);
    expect("{ \n \t\n}", true, 5, false);
    expect("{} \n\n", true, 4, false);
    // After the value: whitespace only.
    expect("{} ", true, 3, true);
    expect("{} x", true, 3, false);
}

static void test_plain_string_bytes(void **state) {
    (void)state;
    assert_true(bn_json_plain_string_bytes("hello", 5));
    assert_true(bn_json_plain_string_bytes(" \xc3\xa9t\xc3\xa9", 6));
    assert_false(bn_json_plain_string_bytes("a\"", 2));
    assert_false(bn_json_plain_string_bytes("a\\", 2));
    assert_false(bn_json_plain_string_bytes("a\n", 2));
    assert_false(bn_json_plain_string_bytes("\xc3", 1)); // half a character
    assert_false(bn_json_plain_string_bytes("", 0));
    bn_json_prefix p;
    bn_json_prefix_init(&p, true);
    assert_false(bn_json_prefix_in_string(&p));
    assert_true(bn_json_prefix_feed(&p, "{\"k", 3));
    assert_true(bn_json_prefix_in_string(&p));
    assert_true(bn_json_prefix_feed(&p, "\xc3", 1));
    assert_false(bn_json_prefix_in_string(&p)); // within a character
}

// ---- Python's json module (tests/json_reference.py writes the cases) ----

// json_object requests read their text with the schema {"type": "object"}
// (json_schema.c), which must take what json_prefix.c with object_only takes,
// byte for byte.
static void object_schema_agrees(const bn_json_schema *object, bn_json_state *st, const char *bytes, size_t n) {
    bool done;
    const size_t read = accepted(bytes, n, true, &done);
    bn_json_state_init(st, object);
    size_t i = 0;
    while (i < n && bn_json_state_feed(st, bytes + i, 1)) i++;
    const bool schema_done = i == n && bn_json_state_done(st);
    if (i != read || schema_done != done)
        fail_msg("\"%.*s\": json_prefix reads %zu bytes (done %d), the object schema %zu (done %d)", (int)n, bytes,
                 read, done, i, schema_done);
}

static void test_python_reference(void **state) {
    (void)state;
    bn_reference ref;
    bn_reference_open(&ref, "BITNET_JSON_REFERENCE", "json_reference.py", 2048);
    static const char object_text[] = "{\"type\": \"object\"}";
    bn_json_schema *object;
    bn_error err;
    if (bn_json_schema_compile(object_text, sizeof object_text - 1, &object, &err)) fail_msg("%s", err.msg);
    bn_json_state *st = malloc(sizeof *st);
    int cases = 0, whole = 0;
    while (bn_reference_next(&ref)) {
        assert_true(ref.kind == '0' || ref.kind == '1');
        bool done;
        const size_t n = ref.n, read = accepted(ref.bytes, n, false, &done);
        object_schema_agrees(object, st, ref.bytes, n);
        const bool want = ref.kind == '1';
        if ((read == n && done) != want)
            fail_msg("case %d \"%.*s\": json.loads %s it, the automaton read %zu of %zu bytes, done %d", cases + 1,
                     (int)n, ref.bytes, want ? "takes" : "refuses", read, n, done);
        cases++;
        whole += want;
    }
    bn_reference_close(&ref);
    free(st);
    bn_json_schema_free(object);
    assert_true(cases >= 100000 && whole >= 3000);
    fprintf(stderr, "%d texts (%d whole JSON) agree with Python's json\n", cases, whole);
}

int main(int argc, char **argv) {
    const struct CMUnitTest python[] = {cmocka_unit_test(test_python_reference)};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_texts),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_object_only_depth_space),
        cmocka_unit_test(test_plain_string_bytes),
    };
    if (argc > 1 && !strcmp(argv[1], "python")) return cmocka_run_group_tests(python, NULL, NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
