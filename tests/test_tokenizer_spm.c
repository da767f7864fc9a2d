// test_tokenizer_spm.c - the SentencePiece tokenizer (tokenizer.ggml.model
// "llama", core/tokenizer/encode_spm.c).
//
// Two parts. (1) The rules on tiny vocabularies built here, so a machine
// without Python still checks them: merge by score (ties leftmost), U+2581 and
// the space prefix, byte fallback (including llama.cpp's grouping of invalid
// UTF-8), <unk> and special tokens with and without parse_special, llama.cpp's
// longest-first special split, decoding, and the loader's errors. (2) The
// independent reference: tests/spm_reference.py trains a SentencePiece BPE model
// with the `sentencepiece` package and writes its vocabulary as a GGUF plus
// sentencepiece's own ids and decodings of ~200 strings
// (`test_tokenizer_spm reference`, BITNET_SPM_REFERENCE=DIR, set by CTest when
// the Python tests run; it skips without). The same cases run again through a model
// file made by bn_synth_model_write from that vocabulary (make-model --vocab).
#include "test_util.h"

#include "devtools.h"
#include "gguf.h"
#include "gguf_builder.h"
#include "tokenizer/tokenizer.h"

// ---- tiny vocabularies ----------------------------------------------------------------
// ids: 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, then the pieces below.
typedef struct piece {
    const char *text;
    float score;
    int32_t type;
} piece;

#define U "\xE2\x96\x81" // U+2581
static const piece PIECES[] = {
    {U, -1.0f, BN_TOKEN_TYPE_NORMAL},          // 259
    {"a", -2.0f, BN_TOKEN_TYPE_NORMAL},        // 260
    {"b", -2.0f, BN_TOKEN_TYPE_NORMAL},        // 261
    {"c", -2.0f, BN_TOKEN_TYPE_NORMAL},        // 262
    {"ab", -5.0f, BN_TOKEN_TYPE_NORMAL},       // 263: lower score than bc
    {"bc", -4.0f, BN_TOKEN_TYPE_NORMAL},       // 264
    {U "a", -3.0f, BN_TOKEN_TYPE_NORMAL},      // 265
    {U U, -6.0f, BN_TOKEN_TYPE_NORMAL},        // 266
    {"d", -2.0f, BN_TOKEN_TYPE_NORMAL},        // 267
    {"e", -2.0f, BN_TOKEN_TYPE_NORMAL},        // 268
    {"de", -7.0f, BN_TOKEN_TYPE_NORMAL},       // 269: same score as ef
    {"ef", -7.0f, BN_TOKEN_TYPE_NORMAL},       // 270
    {"f", -2.0f, BN_TOKEN_TYPE_NORMAL},        // 271
    {"xy", 0.0f, BN_TOKEN_TYPE_USER_DEFINED},  // 272
    {"yzw", 0.0f, BN_TOKEN_TYPE_USER_DEFINED}, // 273
    {"<pad>", 0.0f, BN_TOKEN_TYPE_UNUSED},     // 274
    {U "abc", -8.0f, BN_TOKEN_TYPE_NORMAL},    // 275
    {"\xC3\xA9", -2.0f, BN_TOKEN_TYPE_NORMAL}, // 276 "é"
};
#define N_PIECES (sizeof PIECES / sizeof PIECES[0])
enum { UNK = 0, BOS = 1, EOS = 2, SPACE = 259, A = 260, B, C, AB, BC, SA, SS, D, E, DE, EF, F,
       XY, YZW, PAD, SABC, EACUTE };
#define BYTE(b) (3 + (b))

typedef struct vocab_opts {
    const char *model;     // NULL: "llama"
    int add_space_prefix;  // -1: key absent (default true)
    int add_bos;           // -1: key absent (default true)
    int drop_byte;         // >= 0: leave out the <0xXX> token of this byte (named "<0xXX>x")
    const char *bad_byte;  // non-NULL: the text of byte token 0x41
    int scores;            // 0: N float32; 1: one too few; 2: int32s; 3: none
    uint32_t bos;          // nonzero: tokenizer.ggml.bos_token_id
} vocab_opts;

static bn_tokenizer *make_vocab(const vocab_opts *o, bn_error *err) {
    enum { N = 259 + N_PIECES };
    static char texts[N][16];
    const char *tok[N];
    int32_t type[N];
    float score[N];
    for (int i = 0; i < N; i++) {
        if (i < 3) {
            static const char *const sp[] = {"<unk>", "<s>", "</s>"};
            tok[i] = sp[i];
            type[i] = i == 0 ? BN_TOKEN_TYPE_UNKNOWN : BN_TOKEN_TYPE_CONTROL;
            score[i] = 0.0f;
        } else if (i < 259) {
            int b = i - 3;
            snprintf(texts[i], sizeof texts[i], b == o->drop_byte ? "<0x%02X>x" : "<0x%02X>", b);
            if (b == 0x41 && o->bad_byte) snprintf(texts[i], sizeof texts[i], "%s", o->bad_byte);
            tok[i] = texts[i];
            type[i] = BN_TOKEN_TYPE_BYTE;
            score[i] = 0.0f;
        } else {
            tok[i] = PIECES[i - 259].text;
            type[i] = PIECES[i - 259].type;
            score[i] = PIECES[i - 259].score;
        }
    }
    if (o->drop_byte >= 0) type[3 + o->drop_byte] = BN_TOKEN_TYPE_NORMAL; // not a byte token now
    gb_builder b;
    gb_init(&b, 3);
    gb_kv_str(&b, "general.architecture", "llama");
    gb_kv_str(&b, "tokenizer.ggml.model", o->model ? o->model : "llama");
    gb_kv_arr_str(&b, "tokenizer.ggml.tokens", tok, N);
    if (o->scores == 2) {
        gb_kv_arr_i32(&b, "tokenizer.ggml.scores", type, N);
    } else if (o->scores != 3) {
        int n = o->scores == 1 ? N - 1 : N;
        gb_kv_arr(&b, "tokenizer.ggml.scores", BN_GGUF_FLOAT32, (uint64_t)n);
        for (int i = 0; i < n; i++) gb_put_f32(&b.kv, score[i]);
    }
    gb_kv_arr_i32(&b, "tokenizer.ggml.token_type", type, N);
    gb_kv_u32(&b, "tokenizer.ggml.bos_token_id", o->bos ? o->bos : BOS);
    gb_kv_u32(&b, "tokenizer.ggml.eos_token_id", EOS);
    gb_kv_u32(&b, "tokenizer.ggml.unknown_token_id", UNK);
    if (o->add_bos >= 0) gb_kv_bool(&b, "tokenizer.ggml.add_bos_token", o->add_bos);
    if (o->add_space_prefix >= 0) gb_kv_bool(&b, "tokenizer.ggml.add_space_prefix", o->add_space_prefix);
    size_t size;
    uint8_t *file = gb_finish(&b, &size);
    bn_gguf *g;
    bn_tokenizer *t = NULL;
    if (bn_gguf_open_memory(file, size, &g, err) == 0) {
        bn_tokenizer_from_gguf(g, &t, err);
        bn_gguf_close(g);
    }
    free(file);
    gb_free(&b);
    return t;
}

static bn_tokenizer *vocab_default(void) {
    bn_error err = {{0}};
    bn_tokenizer *t = make_vocab(&(vocab_opts){NULL, -1, -1, -1, NULL, 0, 0}, &err);
    if (!t) fprintf(stderr, "make_vocab: %s\n", err.msg);
    assert_non_null(t);
    return t;
}

#define IDS(...) ((const int32_t[]){__VA_ARGS__}), (sizeof((const int32_t[]){__VA_ARGS__}) / 4)

static void expect_ids(const bn_tokenizer *t, const char *text, size_t len, bool add_bos,
                       bool parse_special, const int32_t *want, size_t n_want) {
    int32_t *ids;
    size_t n;
    bn_error err = {{0}};
    assert_int_equal(bn_tokenize(t, text, len, add_bos, parse_special, &ids, &n, &err), 0);
    bool same = n == n_want && memcmp(ids, want, n * sizeof *ids) == 0;
    if (!same) {
        fprintf(stderr, "\"%.*s\": got", (int)len, text);
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "; want");
        for (size_t i = 0; i < n_want; i++) fprintf(stderr, " %d", want[i]);
        fprintf(stderr, "\n");
    }
    free(ids);
    assert_true(same);
}
#define EXPECT(t, text, add_bos, special, ...) \
    expect_ids(t, text, sizeof text - 1, add_bos, special, IDS(__VA_ARGS__))

static void expect_text(const bn_tokenizer *t, const int32_t *ids, size_t n, const char *want,
                        size_t want_len) {
    char *s;
    size_t len;
    bn_error err = {{0}};
    assert_int_equal(bn_detokenize(t, ids, n, &s, &len, &err), 0);
    if (len != want_len || memcmp(s, want, len) != 0)
        fprintf(stderr, "decoded \"%.*s\", want \"%.*s\"\n", (int)len, s, (int)want_len, want);
    assert_int_equal(len, want_len);
    assert_memory_equal(s, want, len);
    free(s);
}
#define EXPECT_TEXT(t, want, ...) expect_text(t, IDS(__VA_ARGS__), want, sizeof want - 1)

static void test_merges(void **state) {
    (void)state;
    bn_tokenizer *t = vocab_default();
    assert_true(bn_tokenizer_is_spm(t));
    assert_true(bn_tokenizer_add_bos(t));
    assert_true(bn_tokenizer_add_space_prefix(t));
    assert_int_equal(bn_tokenizer_bos(t), BOS);
    assert_int_equal(bn_tokenizer_eos(t), EOS);
    assert_int_equal(bn_tokenizer_unk(t), UNK);
    assert_true(bn_tokenizer_is_eog(t, EOS));
    // "▁abc": ▁a (-3) beats bc (-4) beats ab (-5); then ▁a + bc is ▁abc (-8)
    EXPECT(t, "abc", false, false, SABC);
    // "▁bc": bc first; ▁bc is not a token
    EXPECT(t, "bc", false, false, SPACE, BC);
    // "▁ab": ▁a (-3) before ab (-5)
    EXPECT(t, "ab", false, false, SA, B);
    // equal scores: the leftmost pair (de) merges first
    EXPECT(t, "def", false, false, SPACE, DE, F);
    EXPECT(t, "ef", false, false, SPACE, EF);
    // BOS, empty text
    EXPECT(t, "a", true, false, BOS, SA);
    EXPECT(t, "", true, false, BOS);
    bn_tokenizer_free(t);
}

static void test_empty(void **state) {
    (void)state;
    bn_tokenizer *t = vocab_default();
    int32_t *ids;
    size_t n;
    bn_error err = {{0}};
    assert_int_equal(bn_tokenize(t, "", 0, false, false, &ids, &n, &err), 0);
    assert_non_null(ids);
    assert_int_equal(n, 0);
    free(ids);
    bn_tokenizer_free(t);
}

static void test_spaces(void **state) {
    (void)state;
    bn_tokenizer *t = vocab_default();
    EXPECT(t, " a", false, false, SPACE, SA);     // "▁▁a": ▁a (-3) before ▁▁ (-6)
    EXPECT(t, "a  a", false, false, SA, SPACE, SA); // "▁a▁▁a": both ▁a, then ▁▁ is stale
    EXPECT(t, "a ", false, false, SA, SPACE);     // trailing space kept
    EXPECT(t, " ", false, false, SS);             // "▁▁"
    EXPECT(t, "\n", false, false, SPACE, BYTE('\n')); // only spaces become ▁
    bn_tokenizer_free(t);

    bn_error err = {{0}};
    t = make_vocab(&(vocab_opts){NULL, 0, 0, -1, NULL, 0, 0}, &err); // no space prefix, no add_bos
    assert_non_null(t);
    assert_false(bn_tokenizer_add_space_prefix(t));
    assert_false(bn_tokenizer_add_bos(t));
    EXPECT(t, "abc", false, false, A, BC);
    EXPECT(t, " abc", false, false, SABC); // a single ▁abc
    EXPECT(t, "a", true, false, BOS, A);
    EXPECT_TEXT(t, " abc", SABC); // no prefix to drop
    bn_tokenizer_free(t);
}

static void test_byte_fallback(void **state) {
    (void)state;
    bn_tokenizer *t = vocab_default();
    // no token for x, for ✓ (E2 9C 93); é is a token, ▁é is not
    EXPECT(t, "x", false, false, SPACE, BYTE('x'));
    EXPECT(t, "ax\xE2\x9C\x93", false, false, SA, BYTE('x'), BYTE(0xE2), BYTE(0x9C), BYTE(0x93));
    EXPECT(t, "\xC3\xA9", false, false, SPACE, EACUTE);
    // invalid UTF-8: llama.cpp groups by the lead byte alone, so C3 swallows the
    // 'a' after it and the pair falls back to two bytes; a lone continuation
    // byte is a symbol of its own
    EXPECT(t, "\xC3" "a", false, false, SPACE, BYTE(0xC3), BYTE('a'));
    EXPECT(t, "a\xA9", false, false, SA, BYTE(0xA9));
    EXPECT(t, "a\xF0", false, false, SA, BYTE(0xF0)); // truncated at the end
    // text that spells a byte token or <unk> is plain text
    EXPECT(t, "<0x41>", false, false, SPACE, BYTE('<'), BYTE('0'), BYTE('x'), BYTE('4'), BYTE('1'),
           BYTE('>'));
    bn_tokenizer_free(t);

    // a byte without <0xXX>: llama.cpp falls back to the one-byte token's text...
    bn_error err = {{0}};
    t = make_vocab(&(vocab_opts){NULL, -1, -1, 'a', NULL, 0, 0}, &err);
    assert_non_null(t);
    EXPECT(t, "\xC3" "a", false, false, SPACE, BYTE(0xC3), A);
    bn_tokenizer_free(t);
    // ...and with neither, tokenizing text that needs it fails, saying so
    int32_t *ids;
    size_t n;
    t = make_vocab(&(vocab_opts){NULL, -1, -1, 'q', NULL, 0, 0}, &err);
    assert_non_null(t);
    assert_int_equal(bn_tokenize(t, "q", 1, false, false, &ids, &n, &err), -1);
    assert_non_null(strstr(err.msg, "<0x71>"));
    bn_tokenizer_free(t);
}

static void test_special(void **state) {
    (void)state;
    bn_tokenizer *t = vocab_default();
    // CONTROL and UNKNOWN only with parse_special; each text after a special
    // token gets the space prefix again (llama.cpp)
    EXPECT(t, "<s>a", false, true, BOS, SA);
    EXPECT(t, "a<s>", false, true, SA, BOS);
    EXPECT(t, "a</s>a", false, true, SA, EOS, SA);
    EXPECT(t, "<unk>", false, true, UNK);
    EXPECT(t, "<s>", false, false, SPACE, BYTE('<'), BYTE('s'), BYTE('>'));
    // USER_DEFINED always, longest first over the whole text: yzw is cut out
    // before xy is looked for, so "xyzw" is x + yzw (leftmost-longest would be
    // xy + zw)
    EXPECT(t, "xyzw", false, false, SPACE, BYTE('x'), YZW);
    EXPECT(t, "xy", false, false, XY);
    EXPECT(t, "axy b", false, false, SA, XY, SS, B); // " b" after xy: "▁▁b"
    EXPECT(t, "xyxy", false, false, XY, XY);
    // an UNUSED token's text is plain text, and it decodes to nothing
    size_t len = 99;
    assert_non_null(bn_token_bytes(t, PAD, &len));
    assert_int_equal(len, 0);
    assert_true(bn_tokenizer_is_special(t, UNK));
    assert_true(bn_tokenizer_is_special(t, BOS));
    assert_false(bn_tokenizer_is_special(t, BYTE(0)));
    assert_false(bn_tokenizer_is_special(t, SA));
    bn_tokenizer_free(t);
}

static void test_decode(void **state) {
    (void)state;
    bn_tokenizer *t = vocab_default();
    size_t len;
    const char *b = bn_token_bytes(t, SA, &len);
    assert_int_equal(len, 2);
    assert_memory_equal(b, " a", 2);
    b = bn_token_bytes(t, BYTE(0xE2), &len);
    assert_int_equal(len, 1);
    assert_int_equal((unsigned char)b[0], 0xE2);
    b = bn_token_bytes(t, BOS, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(b, "<s>", 3);
    size_t n;
    const char *text = bn_tokenizer_token_text(t, SA, &n);
    assert_int_equal(n, 4);
    assert_memory_equal(text, U "a", 4);
    assert_true(bn_tokenizer_token_score(t, BC) == -4.0f);

    // the first token loses one leading space; a BOS first has none to lose
    EXPECT_TEXT(t, "abc", SA, BC);
    EXPECT_TEXT(t, " a", SS, A);
    EXPECT_TEXT(t, "<s> abc", BOS, SA, BC);
    EXPECT_TEXT(t, "bc a", BC, SA);
    EXPECT_TEXT(t, "x\xE2\x9C\x93</s>", SPACE, BYTE('x'), BYTE(0xE2), BYTE(0x9C), BYTE(0x93), EOS);
    expect_text(t, NULL, 0, "", 0);
    bn_tokenizer_free(t);
}

static void expect_load_error(const vocab_opts *o, const char *want) {
    bn_error err = {{0}};
    bn_tokenizer *t = make_vocab(o, &err);
    if (t || !strstr(err.msg, want)) fail_msg("error \"%s\" does not mention \"%s\"", err.msg, want);
}

static void test_loader_errors(void **state) {
    (void)state;
    expect_load_error(&(vocab_opts){"bert", -1, -1, -1, NULL, 0, 0}, "\"bert\"");
    expect_load_error(&(vocab_opts){"bert", -1, -1, -1, NULL, 0, 0}, "\"llama\" (SentencePiece)");
    expect_load_error(&(vocab_opts){NULL, -1, -1, -1, "<0xZZ>", 0, 0}, "<0xHH>");
    expect_load_error(&(vocab_opts){NULL, -1, -1, -1, "<0x4>", 0, 0}, "<0xHH>");
    expect_load_error(&(vocab_opts){NULL, -1, -1, -1, NULL, 1, 0}, "tokenizer.ggml.scores");
    expect_load_error(&(vocab_opts){NULL, -1, -1, -1, NULL, 2, 0}, "tokenizer.ggml.scores");
    expect_load_error(&(vocab_opts){NULL, -1, -1, -1, NULL, 0, 5000}, "bos_token_id");
    // no scores: every score 0, as llama.cpp; merges then go leftmost first
    bn_error err = {{0}};
    bn_tokenizer *t = make_vocab(&(vocab_opts){NULL, -1, -1, -1, NULL, 3, 0}, &err);
    assert_non_null(t);
    assert_true(bn_tokenizer_token_score(t, BC) == 0.0f);
    EXPECT(t, "abc", false, false, SABC);
    bn_tokenizer_free(t);
}

// Valid UTF-8 (spaces, NUL, 2- to 4-byte characters with and without tokens)
// decodes back to itself. Arbitrary bytes always tokenize and decode, but need
// not come back: llama.cpp groups a symbol by its lead byte after spaces became
// U+2581, so a broken character just before a space takes part of the U+2581
// into its byte fallback, and that decodes as U+2581 bytes. A long text stays
// fast (one heap of pairs per fragment).
static void test_roundtrip(void **state) {
    (void)state;
    bn_tokenizer *t = vocab_default();
    // no y: text after the user-defined xy gets a second space prefix (llama.cpp)
    static const char *const chars[] = {"a", "b", "c", "d", "e", "f", " ", "x", "\n", "\t",
                                        "\xC3\xA9", "\xE2\x9C\x93", "\xF0\x9F\x98\x80", "<", "s"};
    enum { N_CHARS = sizeof chars / sizeof chars[0] };
    uint64_t r = 12345;
    char buf[1100];
    for (int iter = 0; iter < 4000; iter++) {
        bool valid = iter % 2 == 0;
        size_t len = 0, want = (size_t)(iter % 257);
        while (len < want) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            unsigned x = (unsigned)(r >> 33);
            if (valid) {
                const char *c = x % 17 == 0 ? "" : chars[x % N_CHARS];
                size_t cl = x % 17 == 0 ? 1 : strlen(c); // "" is a NUL byte
                memcpy(buf + len, c, cl);
                len += cl;
            } else {
                buf[len++] = (char)(x >> 8);
            }
        }
        int32_t *ids;
        size_t n;
        bn_error err = {{0}};
        assert_int_equal(bn_tokenize(t, buf, len, false, false, &ids, &n, &err), 0);
        char *back;
        size_t blen;
        assert_int_equal(bn_detokenize(t, ids, n, &back, &blen, &err), 0);
        if (valid && (blen != len || memcmp(back, buf, len)))
            fail_msg("iteration %d does not round-trip", iter);
        free(back);
        free(ids);
    }
    size_t big = 1 << 20;
    char *text = malloc(big);
    assert_non_null(text);
    for (size_t i = 0; i < big; i++) text[i] = "abc def "[i % 8];
    int32_t *ids;
    size_t n;
    bn_error err = {{0}};
    assert_int_equal(bn_tokenize(t, text, big, true, false, &ids, &n, &err), 0);
    // BOS, ▁abc ▁ de f per "abc def " (the prefix and each last space start ▁abc), a last ▁
    assert_int_equal(n, 1 + big / 8 * 4 + 1);
    free(ids);
    free(text);
    bn_tokenizer_free(t);
}

// ---- the sentencepiece reference --------------------------------------------------------
typedef struct ref_case {
    char *text;
    size_t len;
    int32_t *ids;
    size_t n;
    char *dec;
    size_t dec_len;
} ref_case;

static uint32_t take_u32(const char **p, const char *end) {
    assert_true(end - *p >= 4);
    uint32_t v;
    memcpy(&v, *p, 4);
    *p += 4;
    return v;
}

static ref_case *load_cases(const char *path, size_t *n_cases) {
    size_t size = 0;
    char *data = bn_read_file(path, &size);
    if (!data) fail_msg("cannot read %s", path);
    const char *p = data, *end = data + size;
    assert_true(size >= 12 && memcmp(p, "BNSPMREF", 8) == 0);
    p += 8;
    size_t n = take_u32(&p, end);
    ref_case *c = calloc(n, sizeof *c);
    assert_non_null(c);
    for (size_t i = 0; i < n; i++) {
        c[i].len = take_u32(&p, end);
        assert_true((size_t)(end - p) >= c[i].len);
        c[i].text = malloc(c[i].len + 1);
        memcpy(c[i].text, p, c[i].len);
        p += c[i].len;
        c[i].n = take_u32(&p, end);
        assert_true((size_t)(end - p) >= 4 * c[i].n);
        c[i].ids = malloc(4 * c[i].n + 4);
        memcpy(c[i].ids, p, 4 * c[i].n);
        p += 4 * c[i].n;
        c[i].dec_len = take_u32(&p, end);
        assert_true((size_t)(end - p) >= c[i].dec_len);
        c[i].dec = malloc(c[i].dec_len + 1);
        memcpy(c[i].dec, p, c[i].dec_len);
        p += c[i].dec_len;
    }
    assert_true(p == end);
    free(data);
    *n_cases = n;
    return c;
}

static void free_cases(ref_case *c, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(c[i].text);
        free(c[i].ids);
        free(c[i].dec);
    }
    free(c);
}

// Encodes every case as llama.cpp does for a prompt (BOS, no special parsing)
// and decodes sentencepiece's ids without BOS; returns the mismatches.
static int run_cases(const bn_tokenizer *t, const ref_case *c, size_t n, const char *what,
                     size_t *n_roundtrip) {
    int bad = 0;
    *n_roundtrip = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t *ids;
        size_t n_ids;
        bn_error err = {{0}};
        assert_int_equal(bn_tokenize(t, c[i].text, c[i].len, bn_tokenizer_add_bos(t), false, &ids,
                                     &n_ids, &err), 0);
        if (n_ids != c[i].n || memcmp(ids, c[i].ids, 4 * n_ids) != 0) {
            bad++;
            fprintf(stderr, "%s: case %zu \"%.*s\" encodes differently\n  ours:", what, i,
                    (int)c[i].len, c[i].text);
            for (size_t k = 0; k < n_ids; k++) fprintf(stderr, " %d", ids[k]);
            fprintf(stderr, "\n  sentencepiece:");
            for (size_t k = 0; k < c[i].n; k++) fprintf(stderr, " %d", c[i].ids[k]);
            fprintf(stderr, "\n");
        }
        free(ids);
        char *s;
        size_t len;
        assert_int_equal(bn_detokenize(t, c[i].ids + 1, c[i].n - 1, &s, &len, &err), 0);
        if (len != c[i].dec_len || memcmp(s, c[i].dec, len) != 0) {
            bad++;
            fprintf(stderr, "%s: case %zu decodes to \"%.*s\", sentencepiece \"%.*s\"\n", what, i,
                    (int)len, s, (int)c[i].dec_len, c[i].dec);
        }
        if (len == c[i].len && memcmp(s, c[i].text, len) == 0) (*n_roundtrip)++;
        free(s);
    }
    return bad;
}

static void test_reference(void **state) {
    (void)state;
    const char *dir = getenv("BITNET_SPM_REFERENCE");
    if (!dir || !*dir) {
        fprintf(stderr, "SKIP: BITNET_SPM_REFERENCE is not set: tests/spm_reference.py writes it "
                        "in the Python tests' venv (-DBITNET_PYTHON_TESTS=ON)\n");
        skip();
    }
    char vocab[4096], cases[4096];
    snprintf(vocab, sizeof vocab, "%s/vocab.gguf", dir);
    snprintf(cases, sizeof cases, "%s/cases.bin", dir);
    size_t n;
    ref_case *c = load_cases(cases, &n);
    bn_tokenizer *t;
    bn_error err = {{0}};
    if (bn_tokenizer_from_model(vocab, &t, &err)) fail_msg("%s: %s", vocab, err.msg);
    assert_true(bn_tokenizer_is_spm(t));
    int32_t n_vocab = bn_tokenizer_n_vocab(t);
    size_t rt;
    int bad = run_cases(t, c, n, "vocab.gguf", &rt);
    size_t n_ids = 0;
    for (size_t i = 0; i < n; i++) n_ids += c[i].n;
    fprintf(stderr, "sentencepiece reference: %zu cases (%zu ids), %d mismatches; %zu decode back "
                    "to their text\n", n, n_ids, bad, rt);
    assert_int_equal(bad, 0);
    assert_true(n >= 200);
    bn_tokenizer_free(t);

    // make-model --vocab copies the vocabulary into a model file: same results
    char model[64];
    snprintf(model, sizeof model, "/tmp/bn_spm_model_%d.gguf", (int)getpid());
    bn_synth_config cfg;
    assert_int_equal(bn_synth_preset("tiny-bitnet", &cfg, &err), 0);
    cfg.vocab_path = vocab;
    cfg.n_vocab = (uint32_t)n_vocab + 3; // padded with CONTROL fillers
    if (bn_synth_model_write(&cfg, model, &err)) fail_msg("make-model: %s", err.msg);
    assert_int_equal(bn_tokenizer_from_model(model, &t, &err), 0);
    remove(model);
    assert_true(bn_tokenizer_is_spm(t));
    assert_int_equal(bn_tokenizer_n_vocab(t), n_vocab + 3);
    assert_true(bn_tokenizer_add_space_prefix(t));
    assert_int_equal(bn_tokenizer_unk(t), 0);
    bad = run_cases(t, c, n, "make-model", &rt);
    assert_int_equal(bad, 0);
    bn_tokenizer_free(t);
    free_cases(c, n);
}

// No argument: the rules. "reference": the sentencepiece comparison
// (CTest's test_tokenizer_spm_reference).
int main(int argc, char **argv) {
    const struct CMUnitTest rules[] = {
        cmocka_unit_test(test_merges),      cmocka_unit_test(test_empty),
        cmocka_unit_test(test_spaces),      cmocka_unit_test(test_byte_fallback),
        cmocka_unit_test(test_special),     cmocka_unit_test(test_decode),
        cmocka_unit_test(test_loader_errors), cmocka_unit_test(test_roundtrip),
    };
    const struct CMUnitTest reference[] = {cmocka_unit_test(test_reference)};
    if (argc > 1 && !strcmp(argv[1], "reference")) return cmocka_run_group_tests(reference, NULL, NULL);
    return cmocka_run_group_tests(rules, NULL, NULL);
}
