// test_utf8.c - the streaming UTF-8 decoder: characters split over pushes are
// held until whole, invalid bytes pass through at once, flush releases the rest.
#include "test_util.h"

#include <stdbool.h>

#include "bitnet.h"

// Pushes each piece and returns what came out of each push, concatenated with
// '|' between pushes (and the flush output after a final '#').
static void run(const char *const *pieces, const size_t *lens, size_t n, char *got, size_t *got_len) {
    bn_utf8_stream s = {{0}, 0};
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char out[64];
        size_t k = bn_utf8_stream_push(&s, pieces[i], lens[i], out);
        assert_true(k <= lens[i] + 4);
        memcpy(got + o, out, k);
        o += k;
        got[o++] = '|';
    }
    got[o++] = '#';
    o += bn_utf8_stream_flush(&s, got + o);
    *got_len = o;
}

#define CHECK(want, ...)                                                               \
    do {                                                                               \
        const char *p_[] = {__VA_ARGS__};                                              \
        size_t n_ = sizeof p_ / sizeof p_[0], l_[16];                                  \
        for (size_t i_ = 0; i_ < n_; i_++) l_[i_] = strlen(p_[i_]);                    \
        char g_[256];                                                                  \
        size_t gl_;                                                                    \
        run(p_, l_, n_, g_, &gl_);                                                     \
        if (gl_ != sizeof(want) - 1 || memcmp(g_, want, gl_) != 0)                     \
            fail_msg("got \"%.*s\", want \"%s\"", (int)gl_, g_, want);                 \
    } while (0)

static void test_ascii_and_whole_chars(void **state) {
    (void)state;
    CHECK("ab|\xC3\xA9x|#", "ab", "\xC3\xA9x");
    CHECK("|#", "");
    CHECK("\xF0\x9F\xA6\x99|#", "\xF0\x9F\xA6\x99"); // U+1F999 in one push
}

static void test_split_chars_are_held(void **state) {
    (void)state;
    // é over two pushes; an emoji byte by byte; a 3-byte char split 2+1
    CHECK("a||\xC3\xA9|#", "a\xC3", "", "\xA9");
    CHECK("|||\xF0\x9F\xA6\x99|#", "\xF0", "\x9F", "\xA6", "\x99");
    CHECK("x|\xE2\x82\xAC!|#", "x\xE2\x82", "\xAC!");
}

static void test_invalid_passes_through(void **state) {
    (void)state;
    CHECK("\x80|#", "\x80");                     // stray continuation byte
    CHECK("\xFF\xFE|#", "\xFF\xFE");             // never valid
    CHECK("\xC0\xAF|#", "\xC0\xAF");             // overlong lead
    CHECK("|\xE2\x82" "A|#", "\xE2\x82", "A");   // cut short by ASCII
    CHECK("\xED\xA0\x80|#", "\xED\xA0\x80");     // UTF-16 surrogate
    CHECK("\xF4\x90\x80\x80|#", "\xF4\x90\x80\x80"); // above U+10FFFF
    CHECK("\xE0\x80\x80|#", "\xE0\x80\x80");     // overlong 3-byte
    CHECK("|\xC3\xC3\xA9|#", "\xC3", "\xC3\xA9"); // a new lead ends the old one
}

static void test_flush(void **state) {
    (void)state;
    CHECK("|#\xF0\x9F", "\xF0\x9F");
    CHECK("a|#", "a");
    // the stream is reusable after a flush
    bn_utf8_stream s = {{0}, 0};
    char out[16];
    assert_int_equal(bn_utf8_stream_push(&s, "\xC3", 1, out), 0);
    assert_int_equal(bn_utf8_stream_flush(&s, out), 1);
    assert_int_equal(bn_utf8_stream_flush(&s, out), 0);
    assert_int_equal(bn_utf8_stream_push(&s, "\xA9", 1, out), 1);
}

static size_t put_cp(char *o, uint32_t cp) {
    if (cp < 0x80) return o[0] = (char)cp, 1;
    if (cp < 0x800) return o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

// Valid text cut at random points: every push ends on a character boundary
// (known from how the text was built), and nothing is lost.
static void test_random_valid(void **state) {
    (void)state;
    uint64_t rng = 12345;
    for (int iter = 0; iter < 300; iter++) {
        char text[1200];
        bool boundary[1201] = {0};
        size_t len = 0;
        boundary[0] = true;
        size_t nchars = bn_test_rand(&rng) % 257;
        for (size_t c = 0; c < nchars; c++) {
            static const uint32_t top[] = {0x80, 0x800, 0x10000, 0x110000};
            uint32_t cp = (uint32_t)(bn_test_rand(&rng) % top[bn_test_rand(&rng) % 4]);
            if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD; // surrogates are not characters
            len += put_cp(text + len, cp);
            boundary[len] = true;
        }
        bn_utf8_stream s = {{0}, 0};
        char out[1300];
        size_t o = 0;
        for (size_t i = 0; i < len;) {
            size_t k = 1 + bn_test_rand(&rng) % 7;
            if (k > len - i) k = len - i;
            o += bn_utf8_stream_push(&s, text + i, k, out + o);
            assert_true(boundary[o]);
            i += k;
        }
        assert_int_equal(bn_utf8_stream_flush(&s, out + o), 0);
        assert_int_equal(o, len);
        assert_memory_equal(out, text, len);
    }
}

// Arbitrary bytes: output never exceeds input + 4 per push and the whole
// stream comes back byte for byte.
static void test_random_bytes(void **state) {
    (void)state;
    uint64_t rng = 777;
    for (int iter = 0; iter < 300; iter++) {
        char text[501];
        size_t len = bn_test_rand(&rng) % sizeof text;
        for (size_t i = 0; i < len; i++) {
            uint64_t r = bn_test_rand(&rng);
            text[i] = (char)(r % 4 == 0 ? 0x80 | (r >> 8 & 0x3F) : r >> 16);
        }
        bn_utf8_stream s = {{0}, 0};
        char out[600];
        size_t o = 0;
        for (size_t i = 0; i < len;) {
            size_t k = bn_test_rand(&rng) % 5;
            if (k > len - i) k = len - i;
            size_t w = bn_utf8_stream_push(&s, text + i, k, out + o);
            assert_true(w <= k + 4);
            o += w;
            i += k;
        }
        o += bn_utf8_stream_flush(&s, out + o);
        assert_int_equal(o, len);
        assert_memory_equal(out, text, len);
    }
}

static void test_char_len(void **state) {
    (void)state;
    assert_int_equal(bn_utf8_char_len("a", 1), 1);
    assert_int_equal(bn_utf8_char_len("", 0), 0);
    assert_int_equal(bn_utf8_char_len("\xC3\xA9", 2), 2);
    assert_int_equal(bn_utf8_char_len("\xC3\xA9", 1), 0);   // truncated
    assert_int_equal(bn_utf8_char_len("\xE2\x82\xAC", 3), 3);
    assert_int_equal(bn_utf8_char_len("\xF0\x9F\xA6\x99", 4), 4);
    assert_int_equal(bn_utf8_char_len("\xED\xA0\x80", 3), 0); // surrogate
    assert_int_equal(bn_utf8_char_len("\xC1\xBF", 2), 0);     // overlong
    assert_int_equal(bn_utf8_char_len("\x80", 1), 0);
    assert_int_equal(bn_utf8_char_len("\xF4\x90\x80\x80", 4), 0);
}

// bn_utf8_whole: whole characters only, none of them NUL.
static void test_whole(void **state) {
    (void)state;
    assert_true(bn_utf8_whole("", 0));
    assert_true(bn_utf8_whole("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10));
    assert_false(bn_utf8_whole("a\xc3", 2));       // cut short
    assert_false(bn_utf8_whole("\xc0\x80", 2));     // overlong
    assert_false(bn_utf8_whole("a\0b", 3));         // a NUL
    assert_false(bn_utf8_whole("\xed\xa0\x80", 3)); // a surrogate
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ascii_and_whole_chars), cmocka_unit_test(test_split_chars_are_held),
        cmocka_unit_test(test_invalid_passes_through), cmocka_unit_test(test_flush),
        cmocka_unit_test(test_random_valid),          cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_char_len),              cmocka_unit_test(test_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
