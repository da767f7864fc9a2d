// synth_model.c - deterministic synthetic ternary GGUF files of each model family
// (devtools.h; docs/architecture.md: Model families).
//
// Keys, key types, key order and tensor order mirror the official-format files
// (checked against fixtures/tiny-a/tiny-a.gguf, written by bitnet.cpp's tools).
//
// Determinism: each tensor has its own splitmix64 stream keyed by (seed, tensor
// name), and every float is made with integer arithmetic plus at most one
// IEEE-exact operation (a multiply, a division by a power of two, sqrtf), so no
// libm function or FMA contraction can change a byte between machines.
//
// Scales (why activations stay sane): bitlinear normalizes its input to int8, so
// a ternary matrix with p(0) = 1/3 multiplies an rms-1 input of width K by about
// sqrt(2K/3); the I2_S scale 1/sqrt(2K/3) makes every projection roughly
// rms-preserving. Norm weights are 1 +- 0.1, so each block adds O(1) to the
// residual stream. The embedding std is 3/sqrt(hidden): the tied LM head then
// gives logits with std ~3, a clear top-1 for greedy-decoding parity checks.
// A calm model (bn_synth_config.calm) scales the O and down projections by
// calm_factor, so each block adds ~1/50 of the embedding's rms instead of O(1).
#include "devtools.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "gguf_write.h"
#include "i2s.h"
#include "model.h"
#include "tokenizer/token_bytes.h"
#include "tokenizer/tokenizer.h"
#include "weights_file.h"

#define DEFAULT_ARCH "bitnet-b1.58"
#define FILE_TYPE_I2_S 40  // llama_ftype of bitnet.cpp's I2_S files
#define QUANT_VERSION 2    // general.quantization_version in current ggml files
#define N_SPECIAL 256      // Llama-3 reserves its last 256 ids for special tokens
#define CHUNK (1u << 20)   // bytes generated per write

// ---- presets and validation ------------------------------------------------

// Published shapes (each model's config.json). Falcon3 and Llama 3 keep their
// own output head; the BitNet models tie it to the embedding.
static const struct preset {
    const char *name, *arch;
    uint32_t n_embd, n_ff, n_layer, n_head, n_head_kv, n_ctx, n_vocab;
    float rope_base, norm_eps;
    bool untied_head;
} PRESETS[] = {
    {"tiny", NULL, 256, 768, 2, 4, 2, 512, 0, 500000.0f, 1e-5f, false},
    {"tiny-bitnet", "bitnet", 256, 768, 2, 4, 2, 512, 0, 10000.0f, 1e-5f, false},
    {"tiny-llama", "llama", 256, 768, 2, 4, 2, 512, 0, 500000.0f, 1e-5f, true},
    {"2b-4t", NULL, 2560, 6912, 30, 20, 5, 4096, 128256, 500000.0f, 1e-5f, false},
    {"bitnet-0.7b", "bitnet", 1536, 4096, 24, 16, 16, 2048, 32002, 10000.0f, 1e-5f, false},
    {"falcon3-1b", "llama", 2048, 8192, 18, 8, 4, 8192, 131072, 1000042.0f, 1e-6f, true},
    {"falcon3-3b", "llama", 3072, 9216, 22, 12, 4, 32768, 131072, 1000042.0f, 1e-6f, true},
    {"falcon3-7b", "llama", 3072, 23040, 28, 12, 4, 32768, 131072, 1000042.0f, 1e-6f, true},
    {"falcon3-10b", "llama", 3072, 23040, 40, 12, 4, 32768, 131072, 1000042.0f, 1e-6f, true},
    {"llama3-8b-1.58", "llama", 4096, 14336, 32, 32, 8, 8192, 128256, 500000.0f, 1e-5f, true},
};

int bn_synth_preset(const char *preset, bn_synth_config *cfg, bn_error *err) {
    const size_t n = sizeof PRESETS / sizeof PRESETS[0];
    for (size_t i = 0; i < n; i++) {
        const struct preset *p = &PRESETS[i];
        if (strcmp(preset, p->name)) continue;
        *cfg = (bn_synth_config){.n_embd = p->n_embd, .n_ff = p->n_ff, .n_layer = p->n_layer,
                                 .n_head = p->n_head, .n_head_kv = p->n_head_kv,
                                 .n_ctx = p->n_ctx, .n_vocab = p->n_vocab,
                                 .rope_base = p->rope_base, .norm_eps = p->norm_eps, .seed = 1,
                                 .arch = p->arch, .untied_head = p->untied_head};
        return 0;
    }
    char names[256] = "";
    for (size_t i = 0; i < n; i++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                 PRESETS[i].name);
    return bn_errorf(err, "unknown preset '%s' (%s)", preset, names);
}

static const char *arch_of(const bn_synth_config *c) { return c->arch ? c->arch : DEFAULT_ARCH; }

int bn_synth_validate(const bn_synth_config *c, bn_error *err) {
    const char *arch = arch_of(c);
    char names[64];
    if (!bn_family_find(arch, strlen(arch)))
        return bn_errorf(err, "unknown architecture '%s' (%s)", arch, bn_family_names(names, sizeof names));
    if (c->weight_type && c->weight_type != BN_GGML_TQ1_0 && c->weight_type != BN_GGML_TQ2_0)
        return bn_errorf(err, "weight type %u is not I2_S (0), TQ1_0 (34) or TQ2_0 (35)",
                         c->weight_type);
    if (c->calm && c->weights_path)
        return bn_errorf(err, "calm damps random weights; trained weights (--weights) keep their own scales");
    if (c->weight_type && (c->n_embd % 256 || c->n_ff % 256))
        return bn_errorf(err, "TQ1_0/TQ2_0 blocks are 256 wide: hidden %u and ffn %u must be "
                         "multiples of 256", c->n_embd, c->n_ff);
    // I2_S blocks are 128 elements and never cross a row (docs/architecture.md: I2_S):
    // every K (hidden for q/k/v/o/gate/up, ffn for down) must be a multiple of 128.
    if (c->n_embd == 0 || c->n_embd % 128)
        return bn_errorf(err, "hidden size %u must be a positive multiple of 128", c->n_embd);
    if (c->n_ff == 0 || c->n_ff % 128)
        return bn_errorf(err, "ffn size %u must be a positive multiple of 128", c->n_ff);
    if (c->n_layer == 0 || c->n_layer > 1024)
        return bn_errorf(err, "layer count %u must be in 1..1024", c->n_layer);
    if (c->n_head == 0 || c->n_embd % c->n_head)
        return bn_errorf(err, "%u heads do not divide hidden size %u", c->n_head, c->n_embd);
    if ((c->n_embd / c->n_head) % 2)
        return bn_errorf(err, "head_dim %u must be even (rope rotates pairs)",
                         c->n_embd / c->n_head);
    if (c->n_head_kv == 0 || c->n_head % c->n_head_kv)
        return bn_errorf(err, "%u kv heads do not divide %u heads", c->n_head_kv, c->n_head);
    if (c->n_ctx == 0) return bn_errorf(err, "context length must be positive");
    if (!(c->rope_base > 0) || !(c->norm_eps > 0))
        return bn_errorf(err, "rope base and norm epsilon must be positive");
    // token ids are int32 throughout the runtime; 2^24 is far above any real vocabulary
    if (c->n_vocab > (1u << 24))
        return bn_errorf(err, "vocabulary size %u is too large", c->n_vocab);
    return 0;
}

// ---- deterministic random numbers ------------------------------------------

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// One stream per tensor, keyed by its name (FNV-1a), so a tensor's bytes do not
// depend on which tensors come before it.
static rng rng_for(uint64_t seed, const char *name) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *p = name; *p; p++) h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    uint64_t s = seed;
    rng r = {splitmix64(&s) ^ h};
    return r;
}

// f32 -> f16, round to nearest even (F. Giesen's float_to_half_fast3_rtne): integer
// operations plus one exact float add for subnormals.
static uint16_t f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = u & 0x80000000u;
    u ^= sign;
    uint16_t o;
    if (u >= (127u + 16) << 23) { // too large for f16: inf (or NaN)
        o = u > 255u << 23 ? 0x7e00 : 0x7c00;
    } else if (u < 113u << 23) { // f16 subnormal: let the FPU round at 2^-24
        uint32_t magic_u = ((127u - 15) + (23 - 10) + 1) << 23;
        float magic, t;
        memcpy(&magic, &magic_u, 4);
        memcpy(&t, &u, 4);
        t += magic;
        uint32_t tu;
        memcpy(&tu, &t, 4);
        o = (uint16_t)(tu - magic_u);
    } else {
        uint32_t mant_odd = (u >> 13) & 1;
        u += ((uint32_t)(15 - 127) << 23) + 0xfff + mant_odd;
        o = (uint16_t)(u >> 13);
    }
    return (uint16_t)(o | (sign >> 16));
}

// ---- the vocabulary ----------------------------------------------------------

// Merges of the built-in vocabulary (vocabulary form; "\xC4\xA0" is 'Ġ', the
// byte-level form of a space). Each result is a token right after the bytes.
static const char *const builtin_merges[][2] = {
    {"\xC4\xA0", "t"}, {"h", "e"},  {"i", "n"},          {"\xC4\xA0", "a"},
    {"e", "r"},        {"o", "n"},  {"\xC4\xA0t", "he"}, {"r", "e"},
    {"\xC4\xA0", "s"}, {"a", "n"},  {"\xC4\xA0", "o"},   {"\xC4\xA0", "w"},
    {"o", "r"},        {"e", "n"},  {"\xC4\xA0", "c"},   {"i", "s"},
};
#define N_BUILTIN_MERGES (sizeof builtin_merges / sizeof builtin_merges[0])
#define N_BUILTIN_NATURAL (256 + N_BUILTIN_MERGES + N_SPECIAL)

uint32_t bn_synth_builtin_vocab_size(uint32_t n_vocab) {
    return n_vocab ? n_vocab : (uint32_t)N_BUILTIN_NATURAL;
}

typedef struct vocab {
    bn_tokenizer *tok; // NULL: built-in
    uint32_t n_src;    // ids below come from the source; the rest are fillers
    uint32_t n_vocab;
    int32_t bos, eos, eot;
    bool add_bos;
    const char *chat_template;
    bool spm; // a SentencePiece source ("llama"): scores, no merges, space prefix
} vocab;

// Llama-3's special tokens, in its order (tokenizer.json added_tokens).
static size_t special_token(uint32_t i, char *out, size_t cap) {
    static const char *const named[] = {
        "<|begin_of_text|>", "<|end_of_text|>", NULL, NULL, NULL, NULL,
        "<|start_header_id|>", "<|end_header_id|>", NULL, "<|eot_id|>",
    };
    if (i < sizeof named / sizeof named[0] && named[i]) return (size_t)snprintf(out, cap, "%s", named[i]);
    // reserved_special_token_N numbers the unnamed slots in order
    uint32_t n = 0;
    for (uint32_t k = 0; k < i; k++)
        if (k >= sizeof named / sizeof named[0] || !named[k]) n++;
    return (size_t)snprintf(out, cap, "<|reserved_special_token_%u|>", n);
}

// Text and type of token id; buf (>= 64 bytes) holds generated text.
static const char *vocab_token(const vocab *v, uint32_t id, char *buf, size_t *len,
                               int32_t *type) {
    if (v->tok && id < v->n_src) {
        *type = bn_tokenizer_token_type(v->tok, (int32_t)id);
        return bn_tokenizer_token_text(v->tok, (int32_t)id, len);
    }
    if (!v->tok && id >= v->n_vocab - N_SPECIAL) {
        *type = BN_TOKEN_TYPE_CONTROL;
        *len = special_token(id - (v->n_vocab - N_SPECIAL), buf, 64);
        return buf;
    }
    if (!v->tok && id < 256) {
        *type = BN_TOKEN_TYPE_NORMAL;
        *len = bn_tok_byte_level_text((int)id, buf); // GPT-2 bytes_to_unicode
        return buf;
    }
    if (!v->tok && id < 256 + N_BUILTIN_MERGES) {
        const char *const *m = builtin_merges[id - 256];
        *type = BN_TOKEN_TYPE_NORMAL;
        *len = (size_t)snprintf(buf, 64, "%s%s", m[0], m[1]);
        return buf;
    }
    // unused ids up to n_vocab: CONTROL, so no text ever encodes to them
    *type = BN_TOKEN_TYPE_CONTROL;
    *len = (size_t)snprintf(buf, 64, "<|filler_%u|>", id);
    return buf;
}

static size_t vocab_n_merges(const vocab *v) {
    return v->tok ? bn_tokenizer_n_merges(v->tok) : N_BUILTIN_MERGES;
}

static const char *vocab_merge(const vocab *v, size_t i, char *buf, size_t *len) {
    if (v->tok) return bn_tokenizer_merge(v->tok, i, len);
    *len = (size_t)snprintf(buf, 64, "%s %s", builtin_merges[i][0], builtin_merges[i][1]);
    return buf;
}

static bool is_gguf_file(const char *path) {
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    if (!f) return false;
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    return n == 4 && !memcmp(magic, "GGUF", 4);
}

static int vocab_open(const bn_synth_config *c, vocab *v, bn_error *err) {
    *v = (vocab){.bos = -1, .eos = -1, .eot = -1};
    if (!c->vocab_path) {
        if (c->n_vocab && c->n_vocab < N_BUILTIN_NATURAL)
            return bn_errorf(err, "vocabulary size %u is below the built-in vocabulary's %u",
                             c->n_vocab, (unsigned)N_BUILTIN_NATURAL);
        v->n_vocab = bn_synth_builtin_vocab_size(c->n_vocab);
        v->n_src = v->n_vocab;
        v->bos = (int32_t)(v->n_vocab - N_SPECIAL);     // <|begin_of_text|>
        v->eos = (int32_t)(v->n_vocab - N_SPECIAL + 1); // <|end_of_text|>
        v->eot = (int32_t)(v->n_vocab - N_SPECIAL + 9); // <|eot_id|>
        v->add_bos = true;
        return 0;
    }
    if (is_gguf_file(c->vocab_path)) {
        bn_gguf *g;
        if (bn_gguf_open(c->vocab_path, &g, err)) return -1;
        int rc = bn_tokenizer_from_gguf(g, &v->tok, err);
        bn_gguf_close(g);
        if (rc) return -1;
    } else if (bn_tokenizer_from_json(c->vocab_path, &v->tok, err)) {
        return -1;
    }
    v->n_src = (uint32_t)bn_tokenizer_n_vocab(v->tok);
    if (c->n_vocab && c->n_vocab < v->n_src) {
        bn_tokenizer_free(v->tok);
        v->tok = NULL;
        return bn_errorf(err, "vocabulary size %u is below the %u tokens of %s", c->n_vocab,
                         v->n_src, c->vocab_path);
    }
    v->n_vocab = c->n_vocab ? c->n_vocab : v->n_src;
    v->bos = bn_tokenizer_bos(v->tok);
    v->eos = bn_tokenizer_eos(v->tok);
    v->eot = bn_tokenizer_eot(v->tok);
    v->add_bos = bn_tokenizer_add_bos(v->tok);
    v->chat_template = bn_tokenizer_chat_template(v->tok);
    v->spm = bn_tokenizer_is_spm(v->tok);
    return 0;
}

static int write_vocab_kvs(bn_gguf_writer *w, const vocab *v, bn_error *err) {
    char buf[64];
    size_t len;
    int32_t type;
    // A SentencePiece vocabulary is written as llama.cpp's convert script does:
    // model "llama", its scores, no merges, unk id and add_space_prefix.
    if (v->spm ? bn_gguf_writer_kv_str(w, "tokenizer.ggml.model", "llama", err)
               : (bn_gguf_writer_kv_str(w, "tokenizer.ggml.model", "gpt2", err) ||
                  bn_gguf_writer_kv_str(w, "tokenizer.ggml.pre", "llama-bpe", err)))
        return -1;
    if (bn_gguf_writer_begin_array(w, "tokenizer.ggml.tokens", BN_GGUF_STRING, v->n_vocab, err))
        return -1;
    for (uint32_t id = 0; id < v->n_vocab; id++) {
        const char *s = vocab_token(v, id, buf, &len, &type);
        if (!s) return bn_errorf(err, "vocabulary has no text for token %u", id);
        if (bn_gguf_writer_array_str(w, s, len, err)) return -1;
    }
    // scores are unused by BPE (the official files carry zeros); fillers score 0
    if (bn_gguf_writer_begin_array(w, "tokenizer.ggml.scores", BN_GGUF_FLOAT32, v->n_vocab, err))
        return -1;
    for (uint32_t id = 0; id < v->n_vocab; id++) {
        float score = v->spm && id < v->n_src ? bn_tokenizer_token_score(v->tok, (int32_t)id) : 0.0f;
        if (bn_gguf_writer_array_elem(w, &score, err)) return -1;
    }
    if (bn_gguf_writer_begin_array(w, "tokenizer.ggml.token_type", BN_GGUF_INT32, v->n_vocab,
                                   err))
        return -1;
    for (uint32_t id = 0; id < v->n_vocab; id++) {
        vocab_token(v, id, buf, &len, &type);
        if (bn_gguf_writer_array_elem(w, &type, err)) return -1;
    }
    size_t n_merges = vocab_n_merges(v);
    if (!v->spm &&
        bn_gguf_writer_begin_array(w, "tokenizer.ggml.merges", BN_GGUF_STRING, n_merges, err))
        return -1;
    for (size_t i = 0; !v->spm && i < n_merges; i++) {
        const char *s = vocab_merge(v, i, buf, &len);
        if (!s) return bn_errorf(err, "vocabulary has no merge %zu", i);
        if (bn_gguf_writer_array_str(w, s, len, err)) return -1;
    }
    if (v->spm) {
        int32_t unk = bn_tokenizer_unk(v->tok);
        if ((unk >= 0 && bn_gguf_writer_kv_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)unk, err)) ||
            bn_gguf_writer_kv_bool(w, "tokenizer.ggml.add_space_prefix",
                                   bn_tokenizer_add_space_prefix(v->tok), err))
            return -1;
    }
    if (v->bos >= 0 && bn_gguf_writer_kv_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos, err))
        return -1;
    if (v->eos >= 0) {
        if (bn_gguf_writer_kv_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos, err) ||
            bn_gguf_writer_kv_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)v->eos, err))
            return -1;
    }
    if (v->eot >= 0 && v->eot != v->eos &&
        bn_gguf_writer_kv_u32(w, "tokenizer.ggml.eot_token_id", (uint32_t)v->eot, err))
        return -1;
    if (v->chat_template && bn_gguf_writer_kv_str(w, "tokenizer.chat_template", v->chat_template, err))
        return -1;
    return 0;
}

// ---- metadata and tensor list --------------------------------------------------

static int write_kvs(bn_gguf_writer *w, const bn_synth_config *c, const vocab *v, bn_error *err) {
    char name[128];
    if (c->name)
        snprintf(name, sizeof name, "%s", c->name);
    else
        snprintf(name, sizeof name, "bitnet-synthetic-%ux%ux%u-s%llu%s", c->n_embd, c->n_ff,
                 c->n_layer, (unsigned long long)c->seed, c->calm ? "-calm" : "");
    // key order as in the official-format files
    const char *arch = arch_of(c);
    char key[96];
#define KEY(suffix) (snprintf(key, sizeof key, "%s." suffix, arch), key)
    if (bn_gguf_writer_kv_str(w, "general.architecture", arch, err) ||
        bn_gguf_writer_kv_str(w, "general.name", name, err) ||
        bn_gguf_writer_kv_u32(w, KEY("vocab_size"), v->n_vocab, err) ||
        bn_gguf_writer_kv_u32(w, KEY("context_length"), c->n_ctx, err) ||
        bn_gguf_writer_kv_u32(w, KEY("embedding_length"), c->n_embd, err) ||
        bn_gguf_writer_kv_u32(w, KEY("block_count"), c->n_layer, err) ||
        bn_gguf_writer_kv_u32(w, KEY("feed_forward_length"), c->n_ff, err) ||
        bn_gguf_writer_kv_u32(w, KEY("rope.dimension_count"), c->n_embd / c->n_head, err) ||
        bn_gguf_writer_kv_u32(w, KEY("attention.head_count"), c->n_head, err) ||
        bn_gguf_writer_kv_u32(w, KEY("attention.head_count_kv"), c->n_head_kv, err) ||
        bn_gguf_writer_kv_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos, err) ||
        bn_gguf_writer_kv_f32(w, KEY("attention.layer_norm_rms_epsilon"), c->norm_eps, err) ||
        bn_gguf_writer_kv_f32(w, KEY("rope.freq_base"), c->rope_base, err) ||
        bn_gguf_writer_kv_u32(w, "general.file_type", FILE_TYPE_I2_S, err) ||
        write_vocab_kvs(w, v, err) ||
        bn_gguf_writer_kv_u32(w, "general.quantization_version", QUANT_VERSION, err) ||
        (c->calm && bn_gguf_writer_kv_bool(w, BN_SYNTH_CALM_KEY, true, err)))
        return -1;
#undef KEY
    return 0;
}

typedef enum { GEN_EMBD, GEN_NORM, GEN_TERNARY, GEN_SCALE } gen_kind;

typedef struct tensor_spec {
    char name[64];
    uint32_t n_dims;
    uint64_t ne[2];
    uint32_t type;
    gen_kind kind;
    float scale_mul; // ternary weights: times their scale (a power of two, exact)
} tensor_spec;

// A calm model's residual branches (bn_synth_config.calm): the largest power of
// two 2^-k with 2^k >= 32 sqrt(n_embd) / 3, i.e. 9 * 4^k >= 1024 n_embd (in
// integers, so the factor is exact on every machine). Every projection keeps an rms-1 input near rms 1 (top comment), so
// the O and down projections then add about 1/32-1/64 of the embedding's rms
// (3/sqrt(n_embd)) per layer.
static float calm_factor(uint32_t n_embd) {
    float f = 1.0f;
    for (uint64_t p = 9; p < 1024ull * n_embd; p *= 4) f *= 0.5f;
    return f;
}

// The tensors in file order (docs/architecture.md: The GGUF file). Returns the count; specs may be
// NULL to count only.
static uint32_t tensor_specs(const bn_synth_config *c, uint32_t n_vocab, tensor_spec *specs) {
    uint32_t n = 0;
    uint64_t kv = (uint64_t)c->n_embd / c->n_head * c->n_head_kv;
#define SPEC(kind_, type_, d0, d1, ...)                                                    \
    do {                                                                               \
        if (specs) {                                                                   \
            tensor_spec *s = &specs[n];                                                \
            snprintf(s->name, sizeof s->name, __VA_ARGS__);                            \
            s->kind = kind_, s->type = type_, s->ne[0] = d0, s->ne[1] = d1;            \
            s->scale_mul = 1.0f;                                                       \
            s->n_dims = d1 ? 2 : 1;                                                    \
            if (!d1) s->ne[1] = 1;                                                     \
        }                                                                              \
        n++;                                                                           \
    } while (0)
    const char *arch = arch_of(c);
    const bn_family_info *fam = bn_family_find(arch, strlen(arch)); // bn_synth_validate checked it
    const bool sub_norms = fam->sub_norms, scales = fam->family == BN_FAMILY_BITNET;
    const uint32_t wt = c->weight_type ? c->weight_type : BN_GGML_I2_S;
    // A ternary weight, then (bitnet) its one-float output scale. mul: its scale's
    // factor (a residual branch's last matrix in a calm model, else 1).
    const float branch = c->calm ? calm_factor(c->n_embd) : 1.0f;
#define TERNARY(d0, d1, what, mul)                                                     \
    do {                                                                               \
        SPEC(GEN_TERNARY, wt, d0, d1, "blk.%u." what ".weight", l);                    \
        if (specs) specs[n - 1].scale_mul = mul;                                       \
        if (scales) SPEC(GEN_SCALE, BN_GGML_F32, 1, 0, "blk.%u." what ".scale", l);    \
    } while (0)
    SPEC(GEN_EMBD, BN_GGML_F16, c->n_embd, n_vocab, "token_embd.weight");
    for (uint32_t l = 0; l < c->n_layer; l++) {
        SPEC(GEN_NORM, BN_GGML_F32, c->n_embd, 0, "blk.%u.attn_norm.weight", l);
        TERNARY(c->n_embd, c->n_embd, "attn_q", 1.0f);
        TERNARY(c->n_embd, kv, "attn_k", 1.0f);
        TERNARY(c->n_embd, kv, "attn_v", 1.0f);
        TERNARY(c->n_embd, c->n_embd, "attn_output", branch);
        if (sub_norms) SPEC(GEN_NORM, BN_GGML_F32, c->n_embd, 0, "blk.%u.attn_sub_norm.weight", l);
        SPEC(GEN_NORM, BN_GGML_F32, c->n_embd, 0, "blk.%u.ffn_norm.weight", l);
        TERNARY(c->n_embd, c->n_ff, "ffn_gate", 1.0f);
        TERNARY(c->n_embd, c->n_ff, "ffn_up", 1.0f);
        TERNARY(c->n_ff, c->n_embd, "ffn_down", branch);
        if (sub_norms) SPEC(GEN_NORM, BN_GGML_F32, c->n_ff, 0, "blk.%u.ffn_sub_norm.weight", l);
    }
    SPEC(GEN_NORM, BN_GGML_F32, c->n_embd, 0, "output_norm.weight");
    if (c->untied_head) SPEC(GEN_EMBD, BN_GGML_F16, c->n_embd, n_vocab, "output.weight");
#undef TERNARY
#undef SPEC
    return n;
}

// ---- tensor data -------------------------------------------------------------------

static void put_f32le(uint8_t *p, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(u >> (8 * i));
}

// F16 ~ N(0, std): Irwin-Hall sum of four 16-bit uniforms, centred as an exact
// integer, times one float constant.
static int gen_embd(bn_gguf_writer *w, const tensor_spec *s, rng *r, float std, uint8_t *buf,
                    bn_error *err) {
    // std of 2*sum - 4*65535 for four U{0..65535}: 4*sqrt((65536^2-1)/12)
    const float k = (float)(std / (4.0 * sqrt((65536.0 * 65536.0 - 1.0) / 12.0)));
    uint64_t n = s->ne[0] * s->ne[1];
    while (n) {
        size_t m = n < CHUNK / 2 ? (size_t)n : CHUNK / 2;
        for (size_t i = 0; i < m; i++) {
            uint64_t x = splitmix64(&r->s);
            int32_t sum = (int32_t)(x & 0xFFFF) + (int32_t)((x >> 16) & 0xFFFF) +
                          (int32_t)((x >> 32) & 0xFFFF) + (int32_t)(x >> 48);
            uint16_t h = f32_to_f16((float)(2 * sum - 4 * 65535) * k);
            buf[2 * i] = (uint8_t)h;
            buf[2 * i + 1] = (uint8_t)(h >> 8);
        }
        if (bn_gguf_writer_write(w, buf, 2 * m, err)) return -1;
        n -= m;
    }
    return 0;
}

// F32 norm weights in [0.9, 1.1], multiples of 2^-13 (exact in float).
static int gen_norm(bn_gguf_writer *w, const tensor_spec *s, rng *r, uint8_t *buf, bn_error *err) {
    uint64_t n = s->ne[0];
    while (n) {
        size_t m = n < CHUNK / 4 ? (size_t)n : CHUNK / 4;
        for (size_t i = 0; i < m; i++) {
            int32_t d = (int32_t)(splitmix64(&r->s) % 1639) - 819; // +-819/8192 ~ +-0.1
            put_f32le(buf + 4 * i, (float)(8192 + d) / 8192.0f);
        }
        if (bn_gguf_writer_write(w, buf, 4 * m, err)) return -1;
        n -= m;
    }
    return 0;
}

// 1/sqrt(2K/3) keeps the output rms near the input's (see the top comment),
// jittered by +-1/8 in steps of 2^-10 so tensors differ.
static float ternary_scale(uint64_t K, rng *r) {
    int32_t d = (int32_t)(splitmix64(&r->s) % 257) - 128;
    float scale = 1.0f / sqrtf((float)(2 * K) / 3.0f);
    return scale * ((float)(1024 + d) / 1024.0f);
}

// One 256-element block of llama.cpp's TQ2_0 (type 35) or TQ1_0 (34) from 64
// bytes of I2_S codes (the same values) and the block's f16 scale d. TQ2_0:
// byte 32j + m holds elements 128j + m + 32n, n = 0..3, as value + 1 in bits
// 2n+1:2n; d last. TQ1_0: base-3 digits (value + 1), most significant first,
// scaled into a byte (q * 256 + 242) / 243: bytes 0-31 hold elements m + 32n and
// bytes 32-47 elements 160 + m + 16n (n = 0..4), then 4 bytes of elements
// 240 + j + 4n (n = 0..3, times 3 to fill 5 digits); d last.
static size_t tq_block(uint32_t type, const uint8_t *i2s, uint16_t d, uint8_t *out) {
    int8_t v[256];
    for (int i = 0; i < 256; i++) v[i] = (int8_t)(bn_i2s_get(i2s, (uint64_t)i) + 1);
    size_t o = 0;
    if (type == BN_GGML_TQ2_0) {
        for (int j = 0; j < 2; j++)
            for (int m = 0; m < 32; m++) {
                uint8_t q = 0;
                for (int n = 0; n < 4; n++) q |= (uint8_t)(v[128 * j + m + 32 * n] << (2 * n));
                out[o++] = q;
            }
    } else {
        const struct { int first, count, stride, digits; } groups[] = {
            {0, 32, 32, 5}, {160, 16, 16, 5}, {240, 4, 4, 4}};
        for (int g = 0; g < 3; g++)
            for (int m = 0; m < groups[g].count; m++) {
                unsigned q = 0;
                for (int n = 0; n < groups[g].digits; n++)
                    q = q * 3 + (unsigned)v[groups[g].first + m + groups[g].stride * n];
                if (groups[g].digits == 4) q *= 3;
                out[o++] = (uint8_t)((q * 256 + 242) / 243);
            }
    }
    out[o++] = (uint8_t)d;
    out[o++] = (uint8_t)(d >> 8);
    return o;
}

// Ternary weights: I2_S is n/4 bytes of 2-bit codes, each byte four iid codes
// uniform over {0b00, 0b01, 0b10} (-1, 0, +1; 0b11 never), then the float32 scale
// and 28 zero bytes (docs/architecture.md: I2_S). The elements are iid, so the
// block interleaving of the format needs no special handling here. TQ1_0/TQ2_0
// hold the same values re-encoded per 256-element block with the scale (rounded
// to f16, drawn first from its own stream) in every block.
static int gen_ternary(bn_gguf_writer *w, const tensor_spec *s, rng *r, uint8_t *buf,
                       bn_error *err) {
    // byte81[v]: the four base-3 digits of v in 0..80 as four 2-bit codes
    uint8_t byte81[81];
    for (int v = 0; v < 81; v++)
        byte81[v] = (uint8_t)((v % 3) << 6 | (v / 3 % 3) << 4 | (v / 9 % 3) << 2 | (v / 27));
    const uint64_t K = s->ne[0];
    const bool tq = s->type != BN_GGML_I2_S;
    uint16_t d = 0;
    if (tq) {
        char name[80];
        snprintf(name, sizeof name, "%s#scale", s->name);
        rng rs = rng_for(r->s, name);
        d = f32_to_f16(ternary_scale(K, &rs) * s->scale_mul);
    }
    uint8_t tq_out[66]; // one TQ block at most
    uint64_t n = s->ne[0] * s->ne[1] / 4;
    while (n) {
        size_t m = n < CHUNK ? (size_t)n : CHUNK; // CHUNK is even; n/4 is even (K % 128 == 0)
        for (size_t i = 0; i < m; i += 2) {
            uint64_t x = splitmix64(&r->s);
            // (u32 * 81) >> 32 maps a 32-bit uniform onto 0..80 (bias < 2^-25)
            buf[i] = byte81[((x & 0xFFFFFFFFu) * 81) >> 32];
            buf[i + 1] = byte81[((x >> 32) * 81) >> 32];
        }
        // TQ: m is a multiple of 64 bytes (K % 256 == 0, and CHUNK), one block each
        for (size_t b = 0; tq && b < m; b += 64)
            if (bn_gguf_writer_write(w, tq_out, tq_block(s->type, buf + b, d, tq_out), err))
                return -1;
        if (!tq && bn_gguf_writer_write(w, buf, m, err)) return -1;
        n -= m;
    }
    if (tq) return 0;
    uint8_t tail[32] = {0};
    put_f32le(tail, ternary_scale(K, r) * s->scale_mul);
    return bn_gguf_writer_write(w, tail, sizeof tail, err);
}

// A `.scale` tensor (bitnet family): one float in [0.75, 1.25], a multiple of 2^-10.
static int gen_scale(bn_gguf_writer *w, rng *r, bn_error *err) {
    uint8_t b[4];
    put_f32le(b, (float)(1024 + (int32_t)(splitmix64(&r->s) % 513) - 256) / 1024.0f);
    return bn_gguf_writer_write(w, b, sizeof b, err);
}

// ---- the whole file ----------------------------------------------------------------

int bn_synth_model_write(const bn_synth_config *c, const char *path, bn_error *err) {
    if (bn_synth_validate(c, err)) return -1;
    vocab v;
    if (vocab_open(c, &v, err)) return -1;
    uint32_t n_tensors = tensor_specs(c, v.n_vocab, NULL);
    tensor_spec *specs = calloc(n_tensors, sizeof *specs);
    uint8_t *buf = malloc(CHUNK);
    bn_gguf_writer *w = NULL;
    bn_weights_file *wf = NULL;
    bool created = false;
    int rc = -1;
    if (!specs || !buf) {
        bn_errorf(err, "out of memory");
        goto done;
    }
    tensor_specs(c, v.n_vocab, specs);
    if (c->weights_path && bn_weights_open(c->weights_path, &wf, err)) goto done;
    if (bn_gguf_writer_open(path, BN_GGUF_DEFAULT_ALIGNMENT, &w, err)) goto done;
    created = true;
    if (write_kvs(w, c, &v, err)) goto done;
    for (uint32_t i = 0; i < n_tensors; i++)
        if (bn_gguf_writer_add_tensor(w, specs[i].name, specs[i].n_dims, specs[i].ne,
                                      specs[i].type, err))
            goto done;
    // the vocabulary is in the metadata buffer now
    if (v.tok) bn_tokenizer_free(v.tok);
    v.tok = NULL;
    float embd_std = (float)(3.0 / sqrt((double)c->n_embd));
    for (uint32_t i = 0; i < n_tensors; i++) {
        const tensor_spec *s = &specs[i];
        rng r = rng_for(c->seed, s->name);
        int e = wf                    ? bn_weights_copy_next(wf, s->name, s->n_dims, s->ne,
                                                             s->type, w, err)
                : s->kind == GEN_EMBD ? gen_embd(w, s, &r, embd_std, buf, err)
                : s->kind == GEN_NORM ? gen_norm(w, s, &r, buf, err)
                : s->kind == GEN_SCALE ? gen_scale(w, &r, err)
                                      : gen_ternary(w, s, &r, buf, err);
        if (e) goto done;
    }
    rc = bn_weights_close(wf, err);
    wf = NULL;
    if (bn_gguf_writer_close(w, rc ? NULL : err)) rc = -1;
    w = NULL;
done:
    if (wf) bn_weights_close(wf, NULL);
    if (w) bn_gguf_writer_close(w, NULL);
    if (rc && created) remove(path); // never leave a half-written model behind
    if (v.tok) bn_tokenizer_free(v.tok);
    free(specs);
    free(buf);
    return rc;
}
