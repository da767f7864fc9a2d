// test_tokenizer_malformed.c - broken tokenizer.json files and broken GGUF
// vocabularies must fail with one clear error (and no crash under ASan).
//
// Each case starts from a small valid vocabulary written here from scratch:
// the 256 GPT-2 byte-level tokens (ids 0..255), "Ġa" (256), "ab" (257) and
// the special "<|x|>" (258), with merges "Ġ a" and "a b".
#include "test_util.h"

#include <stdbool.h>
#include <unistd.h>

#include "gguf_builder.h"
#include "tokenizer/tokenizer.h"

// GPT-2 bytes_to_unicode(), written out as in the original Python.
static void byte_token(int b, char out[3]) {
    int cp = b, n = 0;
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    if (!printable) {
        for (int c = 0; c < b; c++)
            if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))) n++;
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = 0;
    }
}

// ---- tokenizer.json -----------------------------------------------------------------
static char tmpdir[256];

static int setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/bn_tok_malformed_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char p[512];
    snprintf(p, sizeof p, "%s/tokenizer.json", tmpdir);
    unlink(p);
    snprintf(p, sizeof p, "%s/tokenizer_config.json", tmpdir);
    unlink(p);
    rmdir(tmpdir);
    return 0;
}

typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

static void put(sbuf *b, const char *s) {
    size_t l = strlen(s);
    if (b->n + l + 1 > b->cap) {
        b->cap = 2 * (b->n + l + 1);
        b->s = realloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, l + 1);
    b->n += l;
}

static void put_json_str(sbuf *b, const char *s) {
    put(b, "\"");
    for (; *s; s++) {
        char c[3] = {*s, 0, 0};
        if (*s == '"' || *s == '\\') c[0] = '\\', c[1] = *s;
        put(b, c);
    }
    put(b, "\"");
}

// What to break in the generated tokenizer.json.
typedef struct variant {
    const char *model_type;   // NULL: omit the field
    bool no_model, no_vocab, no_merges, no_pre;
    int skip_byte;            // 1 + a byte whose token is left out (0: none)
    int gap;                  // shift ids >= 256 up by one (leaves a gap)
    const char *extra_vocab;  // raw JSON appended to the vocab object
    const char *merges;       // raw JSON of the merges array (NULL: the default)
    const char *added;        // raw JSON of added_tokens (NULL: the default)
    const char *regex;        // NULL: the Llama-3 regex
} variant;

static const char *LLAMA3 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| "
    "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+";

static char *write_json(const variant *v) {
    sbuf b = {0};
    put(&b, "{\"added_tokens\":");
    put(&b, v->added ? v->added : "[{\"id\":258,\"content\":\"<|x|>\",\"special\":true}]");
    put(&b, ",\"normalizer\":null,");
    if (!v->no_pre) {
        put(&b, "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"");
        put(&b, v->regex ? v->regex : LLAMA3);
        put(&b, "\"},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\"}]},");
    }
    if (!v->no_model) {
        put(&b, "\"model\":{");
        if (v->model_type) {
            put(&b, "\"type\":");
            put_json_str(&b, v->model_type);
            put(&b, ",");
        }
        put(&b, "\"ignore_merges\":true");
        if (!v->no_vocab) {
            put(&b, ",\"vocab\":{");
            bool first = true;
            for (int i = 0; i < 256; i++) {
                if (i + 1 == v->skip_byte) continue;
                char tok[3], num[32];
                byte_token(i, tok);
                if (!first) put(&b, ",");
                first = false;
                put_json_str(&b, tok);
                snprintf(num, sizeof num, ":%d", i);
                put(&b, num);
            }
            char num[64];
            snprintf(num, sizeof num, ",\"\xC4\xA0" "a\":%d,\"ab\":%d", 256 + v->gap, 257 + v->gap);
            put(&b, num);
            if (v->extra_vocab) put(&b, v->extra_vocab);
            put(&b, "}");
        }
        if (!v->no_merges) {
            put(&b, ",\"merges\":");
            put(&b, v->merges ? v->merges : "[\"\xC4\xA0 a\",[\"a\",\"b\"]]");
        }
        put(&b, "},");
    }
    put(&b, "\"version\":\"1.0\"}");
    return b.s;
}

static void write_file(const char *name, const char *text) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

// Loads the file and returns the tokenizer (valid case) or checks the error.
static bn_tokenizer *load_text(const char *text, const char *want_err) {
    write_file("tokenizer.json", text);
    char p[512];
    snprintf(p, sizeof p, "%s/tokenizer.json", tmpdir);
    bn_tokenizer *t = (bn_tokenizer *)1;
    bn_error err = {{0}};
    int rc = bn_tokenizer_from_json(p, &t, &err);
    if (!want_err) {
        if (rc) fail_msg("unexpected error: %s", err.msg);
        return t;
    }
    assert_int_equal(rc, -1);
    assert_null(t);
    if (!strstr(err.msg, want_err)) fail_msg("error \"%s\" does not mention \"%s\"", err.msg, want_err);
    assert_null(strchr(err.msg, '\n')); // one line
    return NULL;
}

static bn_tokenizer *load(const variant *v, const char *want_err) {
    char *text = write_json(v);
    bn_tokenizer *t = load_text(text, want_err);
    free(text);
    return t;
}

#define BASE .model_type = "BPE"

static void test_json_valid_base(void **state) {
    (void)state;
    bn_tokenizer *t = load(&(variant){BASE}, NULL);
    assert_int_equal(bn_tokenizer_n_vocab(t), 259);
    assert_int_equal(bn_tokenizer_n_merges(t), 2);
    int32_t *ids;
    size_t n;
    bn_error err = {{0}};
    // " ab": "Ġ a" (rank 0) merges before "a b", leaving "b"; "<|x|>" is
    // special only when asked
    assert_int_equal(bn_tokenize(t, " ab<|x|>", 8, false, true, &ids, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 256); // "Ġa"
    assert_int_equal(ids[1], 'b'); // byte tokens have the byte's value as id here
    assert_int_equal(ids[2], 258);
    free(ids);
    assert_int_equal(bn_tokenize(t, "ab<|x|>", 7, false, false, &ids, &n, &err), 0);
    assert_true(n > 2);
    assert_int_equal(ids[0], 257); // "ab", then "<|x|>" as plain text
    for (size_t i = 1; i < n; i++) assert_true(ids[i] < 256);
    free(ids);
    assert_int_equal(bn_tokenize(t, " a", 2, false, false, &ids, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 256);
    free(ids);
    assert_int_equal(bn_tokenizer_bos(t), -1); // no <|begin_of_text|> in this vocabulary
    assert_int_equal(bn_tokenize(t, "a", 1, true, false, &ids, &n, &err), -1);
    assert_non_null(strstr(err.msg, "BOS"));
    bn_tokenizer_free(t);
}

static void test_json_broken(void **state) {
    (void)state;
    load_text("{\"model\": ", "not valid JSON");
    load_text("[1, 2]", "not a JSON object");
    load_text("", "not valid JSON");
    load(&(variant){BASE, .no_model = true}, "missing \"model\"");
    load(&(variant){BASE, .no_vocab = true}, "model.vocab");
    load(&(variant){BASE, .no_merges = true}, "model.merges");
    load(&(variant){BASE, .no_pre = true}, "pre_tokenizer");
    load(&(variant){.model_type = "WordPiece"}, "WordPiece");
    load(&(variant){BASE, .merges = "[\"\xC4\xA0 zz\"]"}, "right part not in the vocabulary");
    load(&(variant){BASE, .merges = "[\"q b\"]"}, "result not in the vocabulary");
    load(&(variant){BASE, .merges = "[\"ab\"]"}, "merge 0");
    load(&(variant){BASE, .merges = "[\"a b c\"]"}, "merge 0");
    load(&(variant){BASE, .merges = "[[\"a\"]]"}, "merge 0");
    load(&(variant){BASE, .merges = "[7]"}, "merge 0");
    load(&(variant){BASE, .extra_vocab = ",\"zz\":-1"}, "no valid id");
    load(&(variant){BASE, .extra_vocab = ",\"zz\":1e12"}, "no valid id");
    load(&(variant){BASE, .extra_vocab = ",\"zz\":2.5"}, "no valid id");
    load(&(variant){BASE, .extra_vocab = ",\"zz\":\"7\""}, "no valid id");
    load(&(variant){BASE, .extra_vocab = ",\"zz\":100000"}, "gap in ids");
    load(&(variant){BASE, .gap = 1, .added = "[]"}, "gap in ids");
    load(&(variant){BASE, .skip_byte = 'q' + 1, .extra_vocab = ",\"zz\":113"}, "no token for byte 0x71");
    load(&(variant){BASE, .extra_vocab = ",\"zz\":5"}, "defined twice");
    load(&(variant){BASE, .added = "[{\"id\":258,\"content\":\"ab\",\"special\":true}]"}, "duplicate token");
    load(&(variant){BASE, .added = "[{\"id\":5,\"content\":\"<|x|>\",\"special\":true}]"}, "is both");
    load(&(variant){BASE, .added = "[{\"id\":258}]"}, "added_tokens");
    load(&(variant){BASE, .added = "{}"}, "added_tokens");
    load(&(variant){BASE, .regex = "(unclosed"}, "bad split regex");

    bn_tokenizer *t = (bn_tokenizer *)1;
    bn_error err = {{0}};
    assert_int_equal(bn_tokenizer_from_json("/nonexistent/tokenizer.json", &t, &err), -1);
    assert_null(t);
    assert_non_null(strstr(err.msg, "/nonexistent/tokenizer.json"));
}

static void test_json_config(void **state) {
    (void)state;
    variant v = {BASE};
    write_file("tokenizer_config.json", "{\"bos_token\": \"<|x|>\", \"eos_token\": {\"content\": \"ab\"},"
                                        " \"add_bos_token\": false, \"chat_template\": \"T\"}");
    bn_tokenizer *t = load(&v, NULL);
    assert_int_equal(bn_tokenizer_bos(t), 258);
    assert_int_equal(bn_tokenizer_eos(t), 257);
    assert_false(bn_tokenizer_add_bos(t));
    assert_string_equal(bn_tokenizer_chat_template(t), "T");
    assert_true(bn_tokenizer_is_eog(t, 257));
    bn_tokenizer_free(t);
    write_file("tokenizer_config.json", "{\"bos_token\": \"<|nope|>\"}");
    load(&v, "<|nope|>");
    write_file("tokenizer_config.json", "not json");
    load(&v, "tokenizer_config.json");
    char p[512];
    snprintf(p, sizeof p, "%s/tokenizer_config.json", tmpdir);
    unlink(p);
}

// ---- GGUF vocabularies ----------------------------------------------------------------
typedef struct gvariant {
    const char *model;       // tokenizer.ggml.model (NULL: omit)
    const char *pre;         // tokenizer.ggml.pre (NULL: omit)
    bool no_tokens, no_merges, tokens_as_ints;
    int types_count_delta;   // token_type with a wrong count
    int32_t bad_type;        // nonzero: token 7 gets this type
    const char *merge0;      // replaces the first merge
    const char *dup;         // replaces token 257's text
    int64_t bos;             // 1 + tokenizer.ggml.bos_token_id (0: omit)
} gvariant;

static int gguf_load(const gvariant *v, bn_tokenizer **t, bn_error *err) {
    enum { N = 259 };
    char store[N][8];
    const char *toks[N];
    int32_t types[N];
    for (int i = 0; i < 256; i++) {
        byte_token(i, store[i]);
        toks[i] = store[i];
        types[i] = BN_TOKEN_TYPE_NORMAL;
    }
    toks[256] = "\xC4\xA0" "a";
    toks[257] = v->dup ? v->dup : "ab";
    toks[258] = "<|x|>";
    types[256] = types[257] = BN_TOKEN_TYPE_NORMAL;
    types[258] = BN_TOKEN_TYPE_CONTROL;
    if (v->bad_type) types[7] = v->bad_type;
    const char *merges[2] = {v->merge0 ? v->merge0 : "\xC4\xA0 a", "a b"};

    gb_builder b;
    gb_init(&b, 3);
    if (v->model) gb_kv_str(&b, "tokenizer.ggml.model", v->model);
    if (v->pre) gb_kv_str(&b, "tokenizer.ggml.pre", v->pre);
    if (v->tokens_as_ints) gb_kv_arr_i32(&b, "tokenizer.ggml.tokens", types, N);
    else if (!v->no_tokens) gb_kv_arr_str(&b, "tokenizer.ggml.tokens", toks, N);
    gb_kv_arr_i32(&b, "tokenizer.ggml.token_type", types, (uint64_t)(N + v->types_count_delta));
    if (!v->no_merges) gb_kv_arr_str(&b, "tokenizer.ggml.merges", merges, 2);
    if (v->bos) gb_kv_u32(&b, "tokenizer.ggml.bos_token_id", (uint32_t)(v->bos - 1));
    size_t size;
    uint8_t *file = gb_finish(&b, &size);
    bn_gguf *g;
    int rc = bn_gguf_open_memory(file, size, &g, err);
    assert_int_equal(rc, 0);
    rc = bn_tokenizer_from_gguf(g, t, err);
    bn_gguf_close(g);
    free(file);
    gb_free(&b);
    return rc;
}

static void gguf_expect(const gvariant *v, const char *want_err) {
    bn_tokenizer *t = (bn_tokenizer *)1;
    bn_error err = {{0}};
    assert_int_equal(gguf_load(v, &t, &err), -1);
    assert_null(t);
    if (!strstr(err.msg, want_err)) fail_msg("error \"%s\" does not mention \"%s\"", err.msg, want_err);
}

#define GBASE .model = "gpt2"

static void test_gguf_valid_base(void **state) {
    (void)state;
    bn_tokenizer *t;
    bn_error err = {{0}};
    assert_int_equal(gguf_load(&(gvariant){GBASE, .bos = 258 + 1}, &t, &err), 0);
    assert_int_equal(bn_tokenizer_n_vocab(t), 259);
    assert_int_equal(bn_tokenizer_bos(t), 258);
    int32_t *ids;
    size_t n;
    assert_int_equal(bn_tokenize(t, "ab a", 4, true, false, &ids, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 258);
    assert_int_equal(ids[1], 257);
    assert_int_equal(ids[2], 256);
    free(ids);
    bn_tokenizer_free(t);
    assert_int_equal(gguf_load(&(gvariant){GBASE, .pre = "llama-bpe"}, &t, &err), 0);
    bn_tokenizer_free(t);
}

static void test_gguf_broken(void **state) {
    (void)state;
    gguf_expect(&(gvariant){.pre = NULL}, "tokenizer.ggml.model");
    gguf_expect(&(gvariant){.model = "bert"}, "gpt2"); // "llama" is SentencePiece: test_tokenizer_spm
    gguf_expect(&(gvariant){GBASE, .pre = "qwen2"}, "qwen2");
    gguf_expect(&(gvariant){GBASE, .no_tokens = true}, "tokenizer.ggml.tokens");
    gguf_expect(&(gvariant){GBASE, .tokens_as_ints = true}, "tokenizer.ggml.tokens");
    gguf_expect(&(gvariant){GBASE, .no_merges = true}, "tokenizer.ggml.merges");
    gguf_expect(&(gvariant){GBASE, .types_count_delta = -1}, "token_type");
    gguf_expect(&(gvariant){GBASE, .bad_type = 9}, "token_type 9");
    gguf_expect(&(gvariant){GBASE, .merge0 = "x zz"}, "not in the vocabulary");
    gguf_expect(&(gvariant){GBASE, .merge0 = "nospace"}, "is not \"a b\"");
    gguf_expect(&(gvariant){GBASE, .dup = "a"}, "duplicate token");
    gguf_expect(&(gvariant){GBASE, .bos = 259 + 1}, "bos_token_id");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_valid_base), cmocka_unit_test(test_json_broken),
        cmocka_unit_test(test_json_config),     cmocka_unit_test(test_gguf_valid_base),
        cmocka_unit_test(test_gguf_broken),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
