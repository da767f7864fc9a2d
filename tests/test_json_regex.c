// test_json_regex.c - core/json_regex.c, a JSON Schema "pattern" as a DFA over
// UTF-8 bytes: hand-picked patterns with strings they match (taken whole, and
// no prefix of them dead) and strings they do not; ECMA-262's classes and
// escapes; the refusals and their reasons; the limits, reached quickly; every
// byte UTF-8 forbids going dead, and every state reachable over valid UTF-8
// still able to end in a match (checked over the whole automaton); and
// (`test_json_regex python`) the 22,000 strings of 75 patterns that
// tests/regex_reference.py judges with Python's re (through BITNET_REGEX_REFERENCE).
#include "test_util.h"

#include <time.h>

#include "json_regex.h"

static bn_regex *compile(const char *pattern) {
    bn_regex *r = NULL;
    char why[200];
    if (bn_regex_compile(pattern, NULL, &r, why, sizeof why)) fail_msg("/%s/ refused: %s", pattern, why);
    assert_non_null(r);
    return r;
}

// Steps s (n bytes) from the start: whether the pattern accepts it; *dead_at:
// the byte that stepped to BN_REGEX_DEAD (n: none).
static bool run(const bn_regex *r, const char *s, size_t n, size_t *dead_at) {
    uint32_t state = 0;
    for (size_t i = 0; i < n; i++) {
        state = bn_regex_step(r, state, (unsigned char)s[i]);
        if (state == BN_REGEX_DEAD) return *dead_at = i, false;
        assert_true(state < bn_regex_states(r));
    }
    *dead_at = n;
    return bn_regex_accepts(r, state);
}

// A matching string is accepted and no byte on its way is dead (so each of its
// prefixes can still become a match); another string is not accepted.
static void expect_match(const bn_regex *r, const char *pattern, const char *s, size_t n, bool want) {
    size_t dead_at;
    const bool got = run(r, s, n, &dead_at);
    if (want && (!got || dead_at != n))
        fail_msg("/%s/ should match \"%.*s\": %s at byte %zu", pattern, (int)n, s,
                 dead_at < n ? "dead" : "not accepted", dead_at);
    if (!want && got) fail_msg("/%s/ should not match \"%.*s\"", pattern, (int)n, s);
}

typedef struct {
    const char *pattern;
    const char *yes[8], *no[8]; // NULL-ended
} pattern_case;

static void check_cases(const pattern_case *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        bn_regex *r = compile(cases[i].pattern);
        for (int k = 0; k < 8 && cases[i].yes[k]; k++)
            expect_match(r, cases[i].pattern, cases[i].yes[k], strlen(cases[i].yes[k]), true);
        for (int k = 0; k < 8 && cases[i].no[k]; k++)
            expect_match(r, cases[i].pattern, cases[i].no[k], strlen(cases[i].no[k]), false);
        bn_regex_free(r);
    }
}

static void test_search_and_anchors(void **state) {
    (void)state;
    static const pattern_case cases[] = {
        {"abc", {"abc", "xabcx", "aabc", "ababc", "abc\n"}, {"", "ab", "acb", "ABC"}},
        {"^abc$", {"abc"}, {"xabc", "abcx", "abc\n", "\nabc", ""}},
        {"^abc", {"abc", "abcd", "abc\n"}, {"xabc", "ab"}},
        {"abc$", {"abc", "xxabc"}, {"abcx", "abc\n"}},
        // Anchors belong to each alternative: starts with a, or ends with b.
        {"^a|b$", {"a", "axx", "xxb", "ab", "a\nb"}, {"ba", "xax", "xbx", ""}},
        {"^(a|b)$", {"a", "b"}, {"ab", "xb", "ax"}},
        {"a$|^b", {"a", "xa", "b", "bx"}, {"ax", "xb"}},
        {"^ab|cd$|^ef$|gh", {"abx", "xcd", "ef", "xghx"}, {"xab", "cdx", "efx", "xef", "g h"}},
        {"", {"", "x", "\n\n", "\xf0\x9f\x98\x80"}, {NULL}},
        {"^$", {""}, {"a", "\n"}},
        {"a|", {"", "zzz"}, {NULL}},
        {"^(|x)y$", {"y", "xy"}, {"", "x", "xxy"}},
        // "any character" around a search is any, newlines too.
        {"b", {"\nb\n", "\r\xe2\x80\xa8" "b\xe2\x80\xa9"}, {"\n\n"}},
        {"^x*$", {"", "x", "xxxx"}, {"xy", "y"}},
        {"x*", {"", "y", "xxx"}, {NULL}},
    };
    check_cases(cases, sizeof cases / sizeof *cases);
}

static void test_quantifiers_and_groups(void **state) {
    (void)state;
    static const pattern_case cases[] = {
        {"^a{3}$", {"aaa"}, {"aa", "aaaa"}},
        {"^a{2,}$", {"aa", "aaaaaaaaaa"}, {"a", ""}},
        {"^a{2,4}$", {"aa", "aaa", "aaaa"}, {"a", "aaaaa"}},
        {"^a{0}$", {""}, {"a"}},
        {"^(ab){1,3}$", {"ab", "abab", "ababab"}, {"", "aba", "abababab"}},
        {"^(a|ab)(c|bcd)(d*)$", {"abcd", "ac", "abcdd", "abc"}, {"ab", "abd"}},
        {"^(ab|cd)*$", {"", "ab", "cdab", "abcdab"}, {"a", "abc", "ba"}},
        {"^a+?b*?c??$", {"a", "aab", "abbc", "ac"}, {"", "b", "acc"}},
        {"^(a{1,2}?){2}$", {"aa", "aaa", "aaaa"}, {"a", "aaaaa"}},
        {"^x{0,2}y?z*$", {"", "xx", "xyzzz", "z"}, {"xxx", "yy", "zy"}},
        {"^(?:(?:a|b)c)*$", {"", "ac", "bcac"}, {"a", "cc"}},
        {"^(?<year>\\d{4})-(?<m>\\d\\d)$", {"2024-05"}, {"202-05", "2024-5"}},
        {"^((a*)*)*b$", {"b", "aab"}, {"a", "ba"}},
        {"^(a?){30}a{30}$", {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}, {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}},
        {"^()*$", {""}, {"a"}},
        {"^(|a)+$", {"", "aaa"}, {"b"}},
        {"^[a-z]{1,8}(\\.[a-z]{1,8})*@[a-z]+\\.[a-z]{2,6}$", {"a.b@cd.ef", "john@example.com"},
         {"a..b@c.de", "@c.de", "a@b.c"}},
    };
    check_cases(cases, sizeof cases / sizeof *cases);
}

static void test_sets_and_classes(void **state) {
    (void)state;
    static const pattern_case cases[] = {
        {"^[a-c]$", {"a", "b", "c"}, {"d", "A", "`"}},
        {"^[^a-c]$", {"d", "\n", "\xc3\xa9", "\xf0\x9f\x98\x80"}, {"a", "c", ""}},
        {"^[-a]$", {"-", "a"}, {"b"}},
        {"^[a-]$", {"-", "a"}, {"b"}},
        {"^[a\\-z]$", {"-", "a", "z"}, {"b"}},
        {"^[a-b-c]$", {"a", "b", "-", "c"}, {"d"}},
        {"^[\\w.-]+$", {"a.b-c_9"}, {"a b", "a/b"}},
        {"^[\\d\\s]+$", {"1 2\t3"}, {"1a"}},
        {"^[^\\d\\s]+$", {"ab\xc3\xa9"}, {"a1", "a b"}},
        {"^[\\b]$", {"\b"}, {"b"}},
        {"^[^]$", {"a", "\n", "\xe2\x80\xa8", "\xf0\x9f\x98\x80"}, {"", "ab"}},
        {"^[\\u00e0-\\u00ff]+$", {"\xc3\xa0\xc3\xbf"}, {"\xc3\x9f", "a"}},
        {"^[\\u0100-\\uffff]$", {"\xc4\x80", "\xe2\x82\xac", "\xef\xbf\xbf"}, {"\xc3\xbf", "\xf0\x90\x80\x80"}},
        {"^[\\u{10000}-\\u{10FFFF}]$", {"\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf"}, {"\xef\xbf\xbf"}},
        {"^[\xe2\x82\xac\xc3\xa9\xf0\x9f\x98\x80]+$", {"\xe2\x82\xac\xf0\x9f\x98\x80\xc3\xa9"}, {"e"}},
        // \d \w are ASCII only (ECMA-262): no Arabic digit, no letter with an accent.
        {"^\\d$", {"0", "9"}, {"\xd9\xa3", "a"}},
        {"^\\w+$", {"aZ_09"}, {"\xc3\xa9", "a-b"}},
        {"^\\D\\W$", {"a-", "\xc3\xa9\xc3\xa9"}, {"1-", "a_"}},
        // \s: ECMA-262's blanks and line ends, U+FEFF among them, U+0085 and U+200B not
        // (\v is one too, but no string here holds it: json_regex.h).
        {"^\\s+$",
         {" \t\n\f\r", "\xc2\xa0\xe1\x9a\x80\xe2\x80\x80\xe2\x80\x8a", "\xe2\x80\xa8\xe2\x80\xa9\xe2\x80\xaf",
          "\xe2\x81\x9f\xe3\x80\x80\xef\xbb\xbf"},
         {"\xc2\x85", "\xe2\x80\x8b", "\x1c", "a"}},
        {"^\\S$", {"a", "\xc2\x85", "\xe2\x80\x8b"}, {" ", "\xef\xbb\xbf", "\xc2\xa0"}},
        // "." is any character but \n, \r, U+2028 and U+2029.
        {"^.$", {"a", "\xc2\x85", "\xe2\x80\xaa", "\xf0\x9f\x98\x80", "\t"},
         {"\n", "\r", "\xe2\x80\xa8", "\xe2\x80\xa9"}},
        {"a.c", {"abc", "a\xe2\x82\xac" "c"}, {"a\nc", "ac"}},
    };
    check_cases(cases, sizeof cases / sizeof *cases);
}

// A pattern refused, and a part of the reason it gets.
typedef struct refusal {
    const char *pattern, *why;
} refusal;

// The pattern is refused, with a reason that holds why.
static void expect_refused(const char *pattern, const char *why) {
    bn_regex *r = (bn_regex *)1;
    char got[200];
    if (!bn_regex_compile(pattern, NULL, &r, got, sizeof got)) {
        const uint32_t n = bn_regex_states(r);
        bn_regex_free(r);
        fail_msg("/%s/ compiled (%u states); want \"%s\"", pattern, n, why);
    }
    assert_null(r);
    if (!strstr(got, why)) fail_msg("/%s/: \"%s\", want \"%s\"", pattern, got, why);
}

static void test_escapes(void **state) {
    (void)state;
    static const pattern_case cases[] = {
        {"^\\x41\\u0042\\u{43}$", {"ABC"}, {"abc"}},
        {"^\\n\\r\\t\\f\\v?$", {"\n\r\t\f"}, {"nrtf", "\n\r\t\f\v"}},
        {"^\\cJ\\cI$", {"\n\t"}, {"cJ"}},
        {"^\\.\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|\\/\\^\\$\\\\\\-$", {".*+?()[]{}|/^$\\-"}, {"a"}},
        // A surrogate pair in \u escapes is the one character it spells.
        {"^\\uD83D\\uDE00$", {"\xf0\x9f\x98\x80"}, {"\xed\xa0\xbd"}},
        {"^\xc3\xa9\xe2\x82\xac$", {"\xc3\xa9\xe2\x82\xac"}, {"\xc3\xa9"}},
    };
    check_cases(cases, sizeof cases / sizeof *cases);
    // A control character JSON writes only as a \\u escape (NUL, \\v, \\x01, \\cA) is none
    // a string here holds: a pattern that needs one matches nothing, and one that
    // may take one does not count on it.
    static const char *const nothing[] = {"^\\0$", "^\\v$", "a\\x01", "\\cA", "^[\\x00-\\x07]"};
    for (size_t i = 0; i < sizeof nothing / sizeof *nothing; i++) expect_refused(nothing[i], "no string matches");
    bn_regex *r = compile("^a[\\x01-\\x09]$");
    expect_match(r, "^a[\\x01-\\x09]$", "a\t", 2, true);
    expect_match(r, "^a[\\x01-\\x09]$", "a\x01", 2, false);
    bn_regex_free(r);
}

// Each refused pattern and a part of the reason it gets.
static void test_refused(void **state) {
    (void)state;
    static const refusal cases[] = {
        {"(?=a)", "lookahead (?= at offset 0"},
        {"a(?!b)", "negative lookahead (?! at offset 1"},
        {"(?<=a)b", "lookbehind (?<= at offset 0"},
        {"(?<!a)b", "negative lookbehind (?<! at offset 0"},
        {"a\\b", "word boundary \\b at offset 1"},
        {"\\Ba", "word boundary \\B at offset 0"},
        {"(a)\\1", "backreference \\1 at offset 3"},
        {"(?<n>a)\\k<n>", "named backreference \\k at offset 7"},
        {"\\p{L}", "Unicode property \\p at offset 0"},
        {"\\P{L}", "Unicode property \\P at offset 0"},
        {"(?i)a", "group modifier (?i at offset 0"},
        {"\\a", "unknown escape \\a at offset 0"},
        {"\\e", "unknown escape \\e"},
        {"x\\q", "unknown escape \\q at offset 1"},
        {"\\", "\\ at the end"},
        {"\\x4", "\\x at offset 0 needs two hex digits"},
        {"\\u12", "needs four hex digits"},
        {"\\uD800", "lone surrogate"},
        {"[\\uDC00]", "lone surrogate"},
        {"\\u{110000}", "past U+10FFFF"},
        {"\\01", "octal escape"},
        {"\\c1", "\\c at offset 0 needs a letter"},
        {"*a", "nothing to repeat at offset 0"},
        {"a|+b", "nothing to repeat at offset 2"},
        {"(*a)", "nothing to repeat at offset 1"},
        {"^*a", "nothing to repeat at offset 1"},
        {"a**", "nothing to repeat at offset 2"},
        {"a{2}{3}", "nothing to repeat at offset 4"},
        {"{2}", "nothing to repeat at offset 0"},
        {"a{", "{ at offset 1 is not a quantifier"},
        {"a{,3}", "{ at offset 1 is not a quantifier"},
        {"a}", "lone } at offset 1"},
        {"a]", "lone ] at offset 1"},
        {"[]]", "lone ] at offset 2"},
        {"a{3,2}", "minimum above its maximum"},
        {"a{1001}", "above 1000"},
        {"a{1,99999999999999999999}", "above 1000"},
        {"[z-a]", "the range at offset 1 is reversed"},
        {"[\\d-z]", "the range at offset 1 has a class"},
        {"[a-\\w]", "the range at offset 1 has a class"},
        {"[abc", "missing ] for the set at offset 0"},
        {"(ab", "missing ) for the group at offset 0"},
        {"ab)", "unmatched ) at offset 2"},
        {"a^b", "^ at offset 1 is not at the start"},
        {"(^a)", "^ at offset 1"},
        {"a$b", "$ at offset 1 is not at the end"},
        {"(a$)", "$ at offset 2"},
        {"a$+", "$ at offset 1"},
        {"(?<1a>x)", "group name at offset 3"},
        {"(?<a", "group name at offset 3"},
        {"a\xff", "invalid UTF-8 at offset 1"},
        {"[\xc3]", "invalid UTF-8 at offset 1"},
        {"[]", "no string matches the pattern"},
        {"^[]a$", "no string matches the pattern"},
        {"a[^\\s\\S]", "no string matches the pattern"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) expect_refused(cases[i].pattern, cases[i].why);
    // A short buffer gets the message cut short; no buffer, none.
    bn_regex *r;
    char why[8];
    assert_int_equal(bn_regex_compile("(?=a)", NULL, &r, why, sizeof why), -1);
    assert_string_equal(why, "lookahe");
    assert_int_equal(bn_regex_compile("(?=a)", NULL, &r, NULL, 0), -1);
    assert_int_equal(bn_regex_compile(NULL, NULL, &r, why, sizeof why), -1);
    // ...while the edges of what is supported compile.
    static const char *const fine[] = {"a{1000}", "[\\w-]", "[-\\d]", "a|", "()", "(?:)", "(?<n>)", "[^]", "^", "$",
                                       "^$", "a{0,0}", "\\/", "\\-", "[\\-]", "(?<$_a1>x)", "\\u{10FFFF}"};
    for (size_t i = 0; i < sizeof fine / sizeof *fine; i++) bn_regex_free(compile(fine[i]));
}

static double seconds_since(const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0->tv_nsec);
}

// Patterns past the limits are refused, and quickly: they come in request
// bodies. (2 s is far above what they take, even under the sanitizers.)
static void test_limits(void **state) {
    (void)state;
    static const refusal big[] = {
        {"((a{1000}){1000}){1000}", "NFA states"},
        {"(((((((((((a{2}){2}){2}){2}){2}){2}){2}){2}){2}){2}){2}){2}", "NFA states"},
        {"(.*.*.*.*.*.*.*.*.*.*){30}", "NFA states"},
        {"([\\s\\S]|[\\s\\S]|[\\s\\S]|[\\s\\S]){0,200}", "NFA states"},
        {"^.{0,1000}$", "NFA states"},
        {"[\\s\\S]{0,300}x", "would pass 2048 states"},
        {"^(\\W\\S\\D){0,80}$", "would pass 2048 states"},
        {"^[ab]*a[ab]{11}$", "would pass 2048 states"}, // 2^12: the last 12 characters
        {"(a|.){0,200}z(a|.){0,80}", "NFA states"},
        // Thousands of NFA states in each DFA state, and many byte classes.
        {"(.|\\w|\\d|\\s|[a-f]|[x-z]){0,100}z", "takes too long to build"},
    };
    for (size_t i = 0; i < sizeof big / sizeof *big; i++) {
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        expect_refused(big[i].pattern, big[i].why);
        const double s = seconds_since(&t0);
        if (s > 2) fail_msg("/%s/ took %.2f s to refuse", big[i].pattern, s);
    }
    // A long pattern is refused as soon as it is too large.
    enum { LONG = 1 << 20 };
    char *lots = malloc(LONG + 1);
    memset(lots, 'a', LONG);
    lots[LONG] = 0;
    bn_regex *r;
    char why[200];
    assert_int_equal(bn_regex_compile(lots, NULL, &r, why, sizeof why), -1);
    assert_non_null(strstr(why, "NFA states"));
    // ...and one of half a million empty groups (no states at all) takes linear time.
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t i = 0; i < LONG / 2; i++) lots[2 * i] = '(', lots[2 * i + 1] = ')';
    r = compile(lots);
    assert_true(bn_regex_accepts(r, 0));
    bn_regex_free(r);
    if (seconds_since(&t0) > 2) fail_msg("half a million () took %.2f s", seconds_since(&t0));
    free(lots);
    // Groups nest 64 deep, not 65.
    char deep[2 * 65 + 2];
    for (int depth = 64; depth <= 65; depth++) {
        memset(deep, '(', (size_t)depth);
        deep[depth] = 'a';
        memset(deep + depth + 1, ')', (size_t)depth);
        deep[2 * depth + 1] = 0;
        const int rc = bn_regex_compile(deep, NULL, &r, why, sizeof why);
        if (depth == 64) {
            assert_int_equal(rc, 0);
            bn_regex_free(r);
        } else {
            assert_int_equal(rc, -1);
            assert_non_null(strstr(why, "nested deeper than 64 groups"));
        }
    }
    // Right under the limits: a thousand copies, and a thousand states.
    r = compile("^[a-z]{0,1000}$");
    assert_int_equal(bn_regex_states(r), 1001);
    bn_regex_free(r);
    r = compile("^.{1,100}$");
    assert_true(bn_regex_states(r) <= BN_REGEX_MAX_DFA);
    bn_regex_free(r);
}

// ---- the whole automaton against UTF-8 -------------------------------------------

// Where a UTF-8 reader is: at a character's start, or inside one with the
// next byte's range given (RFC 3629's table).
enum { AT_START, TAIL1, TAIL2, TAIL3, AFTER_E0, AFTER_ED, AFTER_F0, AFTER_F4, N_UTF8 };

// The reader's place after byte b, or -1 where UTF-8 forbids b.
static int utf8_next(int u, unsigned b) {
    switch (u) {
    case AT_START:
        if (b < 0x80) return AT_START;
        if (b >= 0xC2 && b <= 0xDF) return TAIL1;
        if (b == 0xE0) return AFTER_E0;
        if (b == 0xED) return AFTER_ED;
        if (b >= 0xE1 && b <= 0xEF) return TAIL2;
        if (b == 0xF0) return AFTER_F0;
        if (b == 0xF4) return AFTER_F4;
        if (b >= 0xF1 && b <= 0xF3) return TAIL3;
        return -1;
    case AFTER_E0: return b >= 0xA0 && b <= 0xBF ? TAIL1 : -1;
    case AFTER_ED: return b >= 0x80 && b <= 0x9F ? TAIL1 : -1;
    case AFTER_F0: return b >= 0x90 && b <= 0xBF ? TAIL2 : -1;
    case AFTER_F4: return b >= 0x80 && b <= 0x8F ? TAIL2 : -1;
    default: return b >= 0x80 && b <= 0xBF ? u - 1 : -1; // TAIL1 -> AT_START
    }
}

// Over every (state, UTF-8 place) the start reaches by bytes: a byte UTF-8
// forbids steps to BN_REGEX_DEAD; a state accepts only at a character's start;
// and from each such pair some valid bytes lead to an accepting state (found
// backwards from the accepting pairs). Returns the pairs reached.
static size_t check_automaton(const char *pattern) {
    bn_regex *r = compile(pattern);
    const size_t n = (size_t)bn_regex_states(r) * N_UTF8;
    uint8_t *seen = calloc(n, 1), *live = calloc(n, 1);
    uint32_t *queue = malloc(n * sizeof *queue), *edge_to = malloc(n * 256 * sizeof *edge_to);
    size_t head = 0, tail = 0;
    seen[0] = 1, queue[tail++] = 0;
    while (head < tail) {
        const uint32_t p = queue[head++], s = p / N_UTF8;
        const int u = (int)(p % N_UTF8);
        if (bn_regex_accepts(r, s) && u != AT_START) fail_msg("/%s/ accepts inside a character", pattern);
        for (unsigned b = 0; b < 256; b++) {
            const uint32_t t = bn_regex_step(r, s, (unsigned char)b);
            const int v = utf8_next(u, b);
            edge_to[(size_t)p * 256 + b] = UINT32_MAX;
            if (v < 0 && t != BN_REGEX_DEAD)
                fail_msg("/%s/: byte %02X after UTF-8 place %d is invalid, yet not dead", pattern, b, u);
            if (t == BN_REGEX_DEAD) continue;
            assert_true(t < bn_regex_states(r));
            const uint32_t q = t * N_UTF8 + (uint32_t)v;
            edge_to[(size_t)p * 256 + b] = q;
            if (!seen[q]) seen[q] = 1, queue[tail++] = q;
        }
    }
    // Liveness: repeat until stable (a reached pair is live when it accepts or
    // has an edge to a live one); small automata, so the simple way.
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t i = 0; i < tail; i++) {
            const uint32_t p = queue[i];
            if (live[p]) continue;
            bool l = bn_regex_accepts(r, p / N_UTF8) && p % N_UTF8 == AT_START;
            for (unsigned b = 0; b < 256 && !l; b++)
                l = edge_to[(size_t)p * 256 + b] != UINT32_MAX && live[edge_to[(size_t)p * 256 + b]];
            if (l) live[p] = 1, changed = true;
        }
    }
    for (size_t i = 0; i < tail; i++)
        if (!live[queue[i]])
            fail_msg("/%s/: state %u (UTF-8 place %u) is reachable but no match follows it", pattern,
                     queue[i] / N_UTF8, queue[i] % N_UTF8);
    assert_int_equal(bn_regex_step(r, BN_REGEX_DEAD, 'a'), BN_REGEX_DEAD);
    assert_false(bn_regex_accepts(r, BN_REGEX_DEAD));
    free(seen), free(live), free(queue), free(edge_to);
    bn_regex_free(r);
    return tail;
}

static void test_utf8_and_liveness(void **state) {
    (void)state;
    static const char *const patterns[] = {
        "", "a", "^a$", ".", "^.*$", "\\S+", "^[^a]{2,5}$", "^[\\u0080-\\u07ff]*x$", "^[\\u0800-\\uffff]+$",
        "[\\u{10000}-\\u{10FFFF}]", "^\\s*$", "\\W\\D", "[^]", "^[\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80]{1,3}$",
        "(a|b)*abb$", "^(\\d{1,3}\\.){3}\\d{1,3}$", "^a|b$", "^[a-z]+@[a-z]+\\.[a-z]{2,}$", "^\\uFFFF|\\uE000$",
        "^[\\uD7FF\\uE000]$", "^[^\\u0000-\\u{10FFFE}]$", "(.*a){6}", "^(a|\xc3\xa9)+[^x]?$",
        // [] matches nothing: in "^(x|\xc3\xa9[])$" the state after the byte C3 can reach
        // no match, and must be cut.
        "a[]|b", "^(a|[]b)c$", "(x[])*y", "^(x|\xc3\xa9[])$", "^\xe2\x82\xac[]$|^b$",
    };
    size_t pairs = 0;
    for (size_t i = 0; i < sizeof patterns / sizeof *patterns; i++) pairs += check_automaton(patterns[i]);
    // Dead where UTF-8 says so, after a valid start, for a pattern any string matches.
    static const struct {
        const char *bytes;
        size_t dead_at;
    } bad[] = {
        {"\x80", 0},          {"a\xbf", 1},          {"\xc0\x80", 0},      {"\xc1\xbf", 0}, {"\xc2" "a", 1},
        {"\xe0\x80\x80", 1},  {"\xe0\x9f\xbf", 1},   {"\xed\xa0\x80", 1},  {"\xed\xbf\xbf", 1},
        {"\xe2\x82" "a", 2},  {"\xf0\x8f\xbf\xbf", 1}, {"\xf4\x90\x80\x80", 1}, {"\xf5\x80", 0},
        {"\xff", 0},          {"\xf0\x9f\x98", 3},   {"x\xf0\x9f\x98\x80\xc3", 6},
    };
    bn_regex *r = compile("");
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t dead_at;
        const size_t n = strlen(bad[i].bytes);
        const bool ok = run(r, bad[i].bytes, n, &dead_at);
        assert_false(ok);
        if (dead_at != bad[i].dead_at && !(bad[i].dead_at == n && dead_at == n))
            fail_msg("bad UTF-8 #%zu: dead at %zu, want %zu", i, dead_at, bad[i].dead_at);
    }
    bn_regex_free(r);
    fprintf(stderr, "%zu patterns: %zu (state, UTF-8 place) pairs checked\n", sizeof patterns / sizeof *patterns,
            pairs);
}

// Dead states are cut and none is kept twice where the pattern is anchored.
static void test_state_counts(void **state) {
    (void)state;
    static const struct {
        const char *pattern;
        uint32_t states;
    } cases[] = {{"^abc$", 4}, {"^$", 1}, {"^a*$", 1}, {"^(a|b)c$", 3}, {"^[0-9]{3}$", 4}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        bn_regex *r = compile(cases[i].pattern);
        if (bn_regex_states(r) != cases[i].states)
            fail_msg("/%s/: %u states, want %u", cases[i].pattern, bn_regex_states(r), cases[i].states);
        bn_regex_free(r);
    }
}

// ---- Python's re (tests/regex_reference.py writes the cases) -------------------------

static void test_python_reference(void **state) {
    (void)state;
    bn_reference ref;
    bn_reference_open(&ref, "BITNET_REGEX_REFERENCE", "regex_reference.py", 8192);
    char *pattern = malloc(ref.max + 1);
    bn_regex *r = NULL;
    int patterns = 0, yes = 0, no = 0;
    while (bn_reference_next(&ref)) {
        if (ref.kind == 'P') {
            bn_regex_free(r);
            memcpy(pattern, ref.bytes, ref.n + 1);
            r = compile(pattern);
            patterns++;
            continue;
        }
        assert_true(r && (ref.kind == '0' || ref.kind == '1'));
        expect_match(r, pattern, ref.bytes, ref.n, ref.kind == '1');
        yes += ref.kind == '1', no += ref.kind == '0';
    }
    bn_reference_close(&ref);
    bn_regex_free(r);
    free(pattern);
    assert_true(patterns >= 50 && yes >= 3000 && no >= 3000);
    fprintf(stderr, "%d patterns: %d matching and %d other strings agree with Python's re\n", patterns, yes, no);
}

int main(int argc, char **argv) {
    const struct CMUnitTest python[] = {cmocka_unit_test(test_python_reference)};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_search_and_anchors), cmocka_unit_test(test_quantifiers_and_groups),
        cmocka_unit_test(test_sets_and_classes),   cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_refused),            cmocka_unit_test(test_limits),
        cmocka_unit_test(test_utf8_and_liveness),  cmocka_unit_test(test_state_counts),
    };
    if (argc > 1 && !strcmp(argv[1], "python")) return cmocka_run_group_tests(python, NULL, NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
