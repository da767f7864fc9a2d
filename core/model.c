// model.c - maps a validated GGUF onto a ternary model family (docs/architecture.md: The GGUF
// file, I2_S, Model families).
//
// Hyperparameters come from `<arch>.*` keys and are sanity-checked before any tensor
// is looked at, so shape errors below can name both the tensor and the expectation.
// Weights stay in the map; only norms stored as F16/BF16 (or misaligned F32) are
// copied, because backends index norms as float arrays, and TQ1_0/TQ2_0
// projections, repacked to I2_S so both backends run one weight layout.
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "i2s.h"
#include "ternary_repack.h"

// Upper bounds far above any BitNet model (2B-4T: 2560 / 30 / 6912 / 20 heads /
// 128256 vocab / 4096 context) that keep size arithmetic in range.
#define MAX_EMBD (1u << 16)
#define MAX_FF (1u << 18)
#define MAX_LAYER 1024u
#define MAX_HEAD 1024u
#define MAX_VOCAB (1u << 22)
#define MAX_CTX (1u << 24)
#define DEFAULT_ROPE_BASE 10000.0f // llama.cpp's default when the key is absent

// Buffers owned by the model: tensor names, converted norm weights and the I2_S
// repacks of TQ tensors.
typedef struct {
    void **ptrs;
    size_t n, cap;
} owned_list;

static void *own(bn_model *m, void *p) {
    if (!p) return NULL;
    owned_list *o = m->owned_;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        void **ptrs = realloc(o->ptrs, cap * sizeof *ptrs);
        if (!ptrs) {
            free(p);
            return NULL;
        }
        o->ptrs = ptrs;
        o->cap = cap;
    }
    o->ptrs[o->n++] = p;
    return p;
}

void bn_model_free(bn_model *m) {
    if (!m) return;
    owned_list *o = m->owned_;
    if (o) {
        for (size_t i = 0; i < o->n; i++) free(o->ptrs[i]);
        free(o->ptrs);
        free(o);
    }
    free(m->layers);
    bn_gguf_close(m->gguf);
    free(m);
}

// ---- hyperparameters ------------------------------------------------------------

static int get_u32_arch(const bn_gguf *g, const char *arch, const char *suffix, uint32_t *out,
                        bool required, bn_error *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (bn_gguf_find_key(g, key) < 0 && !required) return 1;
    return bn_gguf_get_u32(g, key, out, err);
}

static int get_f32_arch(const bn_gguf *g, const char *arch, const char *suffix, float *out,
                        bool required, bn_error *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (bn_gguf_find_key(g, key) < 0 && !required) return 1;
    return bn_gguf_get_f32(g, key, out, err);
}

static int check_range(const char *what, uint32_t v, uint32_t max, bn_error *err) {
    if (v == 0 || v > max)
        return bn_errorf(err, "model: %s = %u is out of range [1, %u]", what, v, max);
    return 0;
}

// What general.architecture names (model.h): the family and its graph flags.
static const bn_family_info FAMILIES[] = {
    {"bitnet-b1.58", BN_FAMILY_BITNET_B158, true, false, true},
    {"bitnet-25", BN_FAMILY_BITNET_B158, true, false, true},
    {"bitnet", BN_FAMILY_BITNET, true, true, true},
    {"llama", BN_FAMILY_LLAMA, false, true, false},
};

const bn_family_info *bn_family_find(const char *arch, size_t len) {
    for (size_t i = 0; i < sizeof FAMILIES / sizeof FAMILIES[0]; i++)
        if (bn_gguf_str_eq((bn_gguf_str){arch, len}, FAMILIES[i].arch)) return &FAMILIES[i];
    return NULL;
}

const char *bn_family_names(char *buf, size_t n) {
    size_t used = 0;
    buf[0] = 0;
    for (size_t i = 0; i < sizeof FAMILIES / sizeof FAMILIES[0] && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? ", " : "", FAMILIES[i].arch);
    return buf;
}

// llama.cpp applies RoPE frequency factors (a rope_freqs tensor) and scaling
// keys that these backends do not: refuse such a model rather than run it wrong.
static int check_rope_extras(const bn_gguf *g, const char *arch, bn_error *err) {
    if (bn_gguf_find_tensor(g, "rope_freqs.weight") >= 0)
        return bn_errorf(err, "model: RoPE frequency factors (rope_freqs.weight) are not "
                         "supported");
    char key[96];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    bn_error ignore = {{0}};
    bn_gguf_str type;
    if (bn_gguf_find_key(g, key) >= 0 && bn_gguf_get_str(g, key, &type, &ignore) == 0 &&
        !bn_gguf_str_eq(type, "none"))
        return bn_errorf(err, "model: RoPE scaling '%.*s' is not supported",
                         (int)(type.len < 32 ? type.len : 32), type.data);
    return 0;
}

static int read_hparams(const bn_gguf *g, const char *arch, bn_hparams *hp, bn_error *err) {
    memset(hp, 0, sizeof *hp);
    if (check_rope_extras(g, arch, err)) return -1;
    if (get_u32_arch(g, arch, "context_length", &hp->n_ctx_train, true, err) < 0 ||
        get_u32_arch(g, arch, "embedding_length", &hp->n_embd, true, err) < 0 ||
        get_u32_arch(g, arch, "block_count", &hp->n_layer, true, err) < 0 ||
        get_u32_arch(g, arch, "feed_forward_length", &hp->n_ff, true, err) < 0 ||
        get_u32_arch(g, arch, "attention.head_count", &hp->n_head, true, err) < 0)
        return -1;
    int rc = get_u32_arch(g, arch, "attention.head_count_kv", &hp->n_head_kv, false, err);
    if (rc < 0) return -1;
    if (rc > 0) hp->n_head_kv = hp->n_head;
    if (get_f32_arch(g, arch, "attention.layer_norm_rms_epsilon", &hp->norm_eps, true, err) < 0)
        return -1;
    rc = get_f32_arch(g, arch, "rope.freq_base", &hp->rope_base, false, err);
    if (rc < 0) return -1;
    if (rc > 0) hp->rope_base = DEFAULT_ROPE_BASE;

    if (check_range("context_length", hp->n_ctx_train, MAX_CTX, err) ||
        check_range("embedding_length", hp->n_embd, MAX_EMBD, err) ||
        check_range("block_count", hp->n_layer, MAX_LAYER, err) ||
        check_range("feed_forward_length", hp->n_ff, MAX_FF, err) ||
        check_range("attention.head_count", hp->n_head, MAX_HEAD, err) ||
        check_range("attention.head_count_kv", hp->n_head_kv, MAX_HEAD, err))
        return -1;
    if (hp->n_embd % hp->n_head)
        return bn_errorf(err, "model: head_count %u does not divide embedding_length %u",
                         hp->n_head, hp->n_embd);
    if (hp->n_head % hp->n_head_kv)
        return bn_errorf(err, "model: head_count_kv %u does not divide head_count %u",
                         hp->n_head_kv, hp->n_head);
    hp->head_dim = hp->n_embd / hp->n_head;
    if (hp->head_dim % 2)
        return bn_errorf(err, "model: head dimension %u is odd (RoPE rotates pairs)",
                         hp->head_dim);
    if (hp->n_embd % BN_I2S_BLOCK || hp->n_ff % BN_I2S_BLOCK)
        return bn_errorf(err, "model: embedding_length %u and feed_forward_length %u must be "
                         "multiples of %d (I2_S block)", hp->n_embd, hp->n_ff, BN_I2S_BLOCK);
    rc = get_u32_arch(g, arch, "rope.dimension_count", &hp->n_rot, false, err);
    if (rc < 0) return -1;
    if (rc > 0) hp->n_rot = hp->head_dim;
    if (hp->n_rot == 0 || hp->n_rot > hp->head_dim || hp->n_rot % 2)
        return bn_errorf(err, "model: rope.dimension_count %u must be even and in [2, %u]",
                         hp->n_rot, hp->head_dim);
    if (!(hp->norm_eps > 0) || !isfinite(hp->norm_eps) || hp->norm_eps > 1.0f)
        return bn_errorf(err, "model: attention.layer_norm_rms_epsilon %g must be in (0, 1]",
                         (double)hp->norm_eps);
    if (!(hp->rope_base > 0) || !isfinite(hp->rope_base))
        return bn_errorf(err, "model: rope.freq_base %g must be positive and finite",
                         (double)hp->rope_base);
    return 0;
}

// vocab_size may be absent (the official 2B-4T file has none): fall back to the
// tokenizer's token list, then to token_embd's row count.
static int read_vocab(const bn_gguf *g, const char *arch, uint32_t embd_rows, bn_hparams *hp,
                      bn_error *err) {
    int rc = get_u32_arch(g, arch, "vocab_size", &hp->n_vocab, false, err);
    if (rc < 0) return -1;
    if (rc > 0) {
        int64_t k = bn_gguf_find_key(g, "tokenizer.ggml.tokens");
        if (k >= 0 && g->kv[k].value.type == BN_GGUF_ARRAY &&
            g->kv[k].value.arr.count <= UINT32_MAX)
            hp->n_vocab = (uint32_t)g->kv[k].value.arr.count;
        else
            hp->n_vocab = embd_rows;
    }
    return check_range("vocab_size", hp->n_vocab, MAX_VOCAB, err);
}

// ---- tensors ----------------------------------------------------------------------

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { // subnormal: renormalise
            int e = -1;
            do {
                man <<= 1;
                e++;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

// any16 / any32: whether any of n 16- or 32-bit words has all the bits of mask;
// a loop with no early exit over words of one width, which the compiler vectorizes.
#define ANY_MASKED(name, word)                                   \
    static bool name(const uint8_t *p, uint64_t n, word mask) {  \
        uint32_t bad = 0;                                        \
        for (uint64_t i = 0; i < n; i++) {                       \
            word u;                                              \
            memcpy(&u, p + sizeof u * i, sizeof u);              \
            bad |= (u & mask) == mask;                           \
        }                                                        \
        return bad;                                              \
    }
ANY_MASKED(any16, uint16_t)
ANY_MASKED(any32, uint32_t)
#undef ANY_MASKED

// The first element of F32, F16 or BF16 data that is not finite (its exponent
// bits all ones), or -1: blocks of 4096 tested at once, and only a block that
// holds one walked to find it.
static int64_t first_nonfinite(const uint8_t *data, uint32_t type, uint64_t n) {
    const bool f32 = type == BN_GGML_F32;
    const uint32_t mask = f32 ? 0x7f800000u : type == BN_GGML_F16 ? 0x7c00u : 0x7f80u;
    const size_t size = f32 ? 4 : 2;
    for (uint64_t b0 = 0; b0 < n; b0 += 4096) {
        const uint64_t m = n - b0 < 4096 ? n - b0 : 4096;
        const uint8_t *p = data + b0 * size;
        if (!(f32 ? any32(p, m, mask) : any16(p, m, (uint16_t)mask))) continue;
        for (uint64_t i = 0;; i++)
            if (f32 ? any32(p + i * 4, 1, mask) : any16(p + i * 2, 1, (uint16_t)mask)) return (int64_t)(b0 + i);
    }
    return -1;
}

// The value of element i of F32, F16 or BF16 data.
static float element(const uint8_t *data, uint32_t type, uint64_t i) {
    float f;
    uint16_t h;
    if (type == BN_GGML_F32) {
        memcpy(&f, data + 4 * i, 4);
        return f;
    }
    memcpy(&h, data + 2 * i, 2);
    if (type == BN_GGML_F16) return half_to_float(h);
    const uint32_t bits = (uint32_t)h << 16; // BF16 is the top half of an f32
    memcpy(&f, &bits, 4);
    return f;
}

static int nonfinite_error(const bn_gguf_tensor *t, int64_t i, bn_error *err) {
    const uint64_t ne0 = t->ne[0];
    char where[64] = "";
    if (t->n_dims > 1)
        snprintf(where, sizeof where, " (row %llu, column %llu)", (unsigned long long)((uint64_t)i / ne0),
                 (unsigned long long)((uint64_t)i % ne0));
    return bn_errorf(err, "model: tensor '%.*s' element %lld%s is %g, not a finite number", (int)t->name.len,
                     t->name.data, (long long)i, where, element(t->data, t->type, (uint64_t)i));
}

int bn_model_check_values(const bn_model *m, bn_error *err) {
    const bn_gguf *g = m->gguf;
    for (uint64_t k = 0; k < g->n_tensors; k++) {
        const bn_gguf_tensor *t = &g->tensors[k];
        if (t->type != BN_GGML_F32 && t->type != BN_GGML_F16 && t->type != BN_GGML_BF16) continue;
        const int64_t i = first_nonfinite(t->data, t->type, t->nbytes / (t->type == BN_GGML_F32 ? 4 : 2));
        if (i >= 0) return nonfinite_error(t, i, err);
    }
    return 0;
}

typedef enum { KIND_NORM, KIND_I2S, KIND_EMBD } tensor_kind;

static const char *kind_types(tensor_kind k) {
    return k == KIND_I2S ? "I2_S, TQ1_0 or TQ2_0" : "F32, F16 or BF16";
}

// Looks up `name`, checks its type for `kind` and its shape [ne0, ne1] (ne1 = 1 for
// vectors), and fills out. optional: a missing tensor returns 1 with out zeroed.
static int map_tensor(bn_model *m, const char *name, tensor_kind kind, uint64_t ne0, uint64_t ne1,
                      bool optional, bn_tensor *out, bn_error *err) {
    memset(out, 0, sizeof *out);
    const bn_gguf *g = m->gguf;
    int64_t i = bn_gguf_find_tensor(g, name);
    if (i < 0) {
        if (optional) return 1;
        return bn_errorf(err, "model: missing tensor '%s'", name);
    }
    const bn_gguf_tensor *t = &g->tensors[i];
    bool type_ok = kind == KIND_I2S ? (t->type == BN_GGML_I2_S || t->type == BN_GGML_TQ1_0 ||
                                       t->type == BN_GGML_TQ2_0)
                                    : (t->type == BN_GGML_F32 || t->type == BN_GGML_F16 ||
                                       t->type == BN_GGML_BF16);
    if (!type_ok)
        return bn_errorf(err, "model: tensor '%s' has type %s (%u), expected %s", name,
                         bn_ggml_type_name(t->type), t->type, kind_types(kind));
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1)
        return bn_errorf(err, "model: tensor '%s' has shape [%llu, %llu, %llu, %llu], expected "
                         "[%llu, %llu]", name, (unsigned long long)t->ne[0],
                         (unsigned long long)t->ne[1], (unsigned long long)t->ne[2],
                         (unsigned long long)t->ne[3], (unsigned long long)ne0,
                         (unsigned long long)ne1);
    char *copy = own(m, strdup(name));
    if (!copy) return bn_errorf(err, "model: out of memory");
    out->name = copy;
    out->type = t->type;
    out->ne0 = t->ne[0];
    out->ne1 = t->ne[1];
    out->nbytes = t->nbytes;
    out->data = t->data;
    out->scale = 1.0f;
    out->out_scale = 1.0f;

    if (kind == KIND_I2S && t->type != BN_GGML_I2_S) {
        // llama.cpp's ternary types become I2_S here, so backends see one layout.
        uint8_t *i2s = NULL;
        if (bn_tq_to_i2s(name, t->type, t->data, t->nbytes, ne0, ne1, &i2s, &out->scale, err))
            return -1;
        if (!own(m, i2s)) return bn_errorf(err, "model: out of memory");
        out->type = BN_GGML_I2_S;
        out->act_block = BN_TQ_BLOCK;
        out->data = i2s;
        out->nbytes = bn_i2s_nbytes(ne0 * ne1);
    } else if (kind == KIND_I2S) {
        // The tail after the 2-bit codes starts with the float32 scale (i2s.h).
        const uint64_t n = ne0 * ne1;
        memcpy(&out->scale, t->data + bn_i2s_nbytes(n) - BN_I2S_TAIL, sizeof(float));
        if (!isfinite(out->scale))
            return bn_errorf(err, "model: tensor '%s' has a non-finite scale", name);
    } else if (kind == KIND_NORM) {
        // Norms are small, so every load checks them (the embedding waits for
        // bn_model_check_values: a pass over all of it would slow every start).
        const int64_t bad = first_nonfinite(t->data, t->type, ne0);
        if (bad >= 0) return nonfinite_error(t, bad, err);
        if (t->type == BN_GGML_F32 && ((uintptr_t)t->data % _Alignof(float)) == 0) {
            out->f32 = (const float *)t->data;
        } else {
            float *f = own(m, malloc(ne0 * sizeof *f));
            if (!f) return bn_errorf(err, "model: out of memory");
            for (uint64_t k = 0; k < ne0; k++) f[k] = element(t->data, t->type, k);
            out->f32 = f;
        }
    }
    return 0;
}

// The `bitnet` family may store a second per-tensor scale beside a weight
// (blk.N.attn_q.scale, one float) that multiplies its output: kept apart as
// out_scale, not folded into the weight's scale: bitnet.cpp multiplies the matmul
// output by it (a separate ggml_mul), and (acc / s * w) * t is not always the
// float (acc / s) * (w * t).
static int read_out_scale(bn_model *m, const char *weight_name, bn_tensor *w, bn_error *err) {
    char name[64];
    snprintf(name, sizeof name, "%.*s.scale", (int)(strlen(weight_name) - strlen(".weight")),
             weight_name);
    int64_t i = bn_gguf_find_tensor(m->gguf, name);
    if (i < 0) return 0;
    const bn_gguf_tensor *t = &m->gguf->tensors[i];
    if (t->type != BN_GGML_F32 || t->ne[0] != 1 || t->ne[1] != 1 || t->ne[2] != 1 || t->ne[3] != 1)
        return bn_errorf(err, "model: tensor '%s' must be one F32 value", name);
    float s;
    memcpy(&s, t->data, sizeof s);
    if (!isfinite(s)) return bn_errorf(err, "model: tensor '%s' is not finite", name);
    w->out_scale = s;
    return 0;
}

static int map_layer(bn_model *m, uint32_t il, bn_layer *l, bn_error *err) {
    const bn_hparams *hp = &m->hp;
    const uint64_t E = hp->n_embd, F = hp->n_ff, KV = (uint64_t)hp->n_head_kv * hp->head_dim;
    struct {
        const char *suffix;
        tensor_kind kind;
        uint64_t ne0, ne1;
        bn_tensor *dst;
    } spec[] = {
        {"attn_norm", KIND_NORM, E, 1, &l->attn_norm},
        {"attn_sub_norm", KIND_NORM, E, 1, &l->attn_sub_norm},
        {"ffn_norm", KIND_NORM, E, 1, &l->ffn_norm},
        {"ffn_sub_norm", KIND_NORM, F, 1, &l->ffn_sub_norm},
        {"attn_q", KIND_I2S, E, E, &l->wq},
        {"attn_k", KIND_I2S, E, KV, &l->wk},
        {"attn_v", KIND_I2S, E, KV, &l->wv},
        {"attn_output", KIND_I2S, E, E, &l->wo},
        {"ffn_gate", KIND_I2S, E, F, &l->w_gate},
        {"ffn_up", KIND_I2S, E, F, &l->w_up},
        {"ffn_down", KIND_I2S, F, E, &l->w_down},
    };
    for (size_t i = 0; i < sizeof spec / sizeof spec[0]; i++) {
        const bool sub_norm = spec[i].dst == &l->attn_sub_norm || spec[i].dst == &l->ffn_sub_norm;
        if (sub_norm && !hp->sub_norms) continue; // llama: not part of the graph
        char name[64];
        snprintf(name, sizeof name, "blk.%u.%s.weight", il, spec[i].suffix);
        if (map_tensor(m, name, spec[i].kind, spec[i].ne0, spec[i].ne1, false, spec[i].dst,
                       err) != 0)
            return -1;
        if (spec[i].kind == KIND_I2S && m->family == BN_FAMILY_BITNET &&
            read_out_scale(m, name, spec[i].dst, err) != 0)
            return -1;
    }
    return 0;
}

int bn_model_from_gguf(bn_gguf *g, bn_model **out, bn_error *err) {
    *out = NULL;
    bn_gguf_str arch;
    if (bn_gguf_get_str(g, "general.architecture", &arch, err) != 0) return -1;
    const bn_family_info *fam = bn_family_find(arch.data, arch.len);
    char names[64];
    if (!fam)
        return bn_errorf(err, "model: unsupported architecture '%.*s' (expected %s with ternary weights)",
                         (int)(arch.len < 64 ? arch.len : 64), arch.data, bn_family_names(names, sizeof names));

    bn_model *m = calloc(1, sizeof *m);
    if (!m) return bn_errorf(err, "model: out of memory");
    m->owned_ = calloc(1, sizeof(owned_list));
    if (!m->owned_) {
        free(m);
        return bn_errorf(err, "model: out of memory");
    }
    memcpy(m->arch, arch.data, arch.len); // < sizeof m->arch: a name in FAMILIES
    m->family = fam->family;
    m->gguf = g;

    int rc = read_hparams(g, m->arch, &m->hp, err);
    m->hp.sub_norms = fam->sub_norms;
    m->hp.ffn_silu = fam->ffn_silu;
    m->hp.rope_neox = fam->rope_neox;
    if (rc == 0) {
        int64_t te = bn_gguf_find_tensor(g, "token_embd.weight");
        uint64_t rows = te >= 0 ? g->tensors[te].ne[1] : 0;
        rc = read_vocab(g, m->arch, rows <= UINT32_MAX ? (uint32_t)rows : 0, &m->hp, err);
    }
    const bn_hparams *hp = &m->hp;
    if (rc == 0)
        rc = map_tensor(m, "token_embd.weight", KIND_EMBD, hp->n_embd, hp->n_vocab, false,
                        &m->tok_embd, err);
    if (rc == 0)
        rc = map_tensor(m, "output_norm.weight", KIND_NORM, hp->n_embd, 1, false,
                        &m->output_norm, err);
    if (rc == 0) {
        rc = map_tensor(m, "output.weight", KIND_EMBD, hp->n_embd, hp->n_vocab, true, &m->output,
                        err);
        if (rc > 0) { // no output.weight: the LM head is tied to the embedding
            m->output = m->tok_embd;
            m->output_tied = true;
            rc = 0;
        }
    }
    if (rc == 0) {
        m->layers = calloc(hp->n_layer, sizeof *m->layers);
        if (!m->layers) rc = bn_errorf(err, "model: out of memory");
    }
    for (uint32_t il = 0; rc == 0 && il < hp->n_layer; il++)
        rc = map_layer(m, il, &m->layers[il], err);
    // Backends quantize a layer's input once for all the matrices that read it.
    for (uint32_t il = 0; rc == 0 && il < hp->n_layer; il++) {
        const bn_tensor *w[BN_LAYER_TERNARY];
        bn_layer_ternary(&m->layers[il], w);
        for (int i = 0; rc == 0 && i < BN_LAYER_TERNARY; i++)
            if (w[i]->act_block != m->layers[0].wq.act_block)
                rc = bn_errorf(err, "model: '%s' and '%s' mix I2_S with TQ1_0/TQ2_0 weights",
                               m->layers[0].wq.name, w[i]->name);
    }
    if (rc != 0) {
        m->gguf = NULL; // ownership passes only on success
        bn_model_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

int bn_model_load(const char *path, bn_model **out, bn_error *err) {
    *out = NULL;
    bn_gguf *g;
    if (bn_gguf_open(path, &g, err) != 0) return -1;
    if (bn_model_from_gguf(g, out, err) != 0) {
        bn_error_prefix(err, path);
        bn_gguf_close(g);
        return -1;
    }
    return 0;
}
