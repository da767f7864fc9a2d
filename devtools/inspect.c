// inspect.c - describes a validated model file as text or JSON (docs/inspect.md).
//
// Validation is the loader's and the tokenizer's own: a file that inspect accepts
// is one that generate can load. The JSON schema is stable (keys are only ever
// added); the text form is for people and may change.
#include "devtools.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "gguf.h"
#include "model.h"
#include "tokenizer/tokenizer.h"

#define INSPECT_SCHEMA_VERSION 1

// ggml type numbers stop well below this; used to total bytes per type.
#define MAX_TYPE 64

typedef struct {
    bool present;     // the file embeds a vocabulary (tokenizer.ggml.model)
    char model[32];   // tokenizer.ggml.model
    char pre[64];     // tokenizer.ggml.pre ("" when absent)
    int32_t n_vocab, bos, eos, eot;
    size_t n_merges;
    bool add_bos, has_chat_template;
} tok_summary;

typedef struct {
    uint64_t bytes, params;
    uint64_t bytes_by_type[MAX_TYPE];
    uint64_t count_by_type[MAX_TYPE];
    bool values_checked; // every F32/F16/BF16 value found finite (check_values)
} totals;

// Copies a GGUF string key into buf ("" when absent or not a string).
static void str_key(const bn_gguf *g, const char *key, char *buf, size_t n) {
    bn_gguf_str s;
    buf[0] = 0;
    if (bn_gguf_find_key(g, key) >= 0 && bn_gguf_get_str(g, key, &s, NULL) == 0)
        snprintf(buf, n, "%.*s", (int)(s.len < n ? s.len : n - 1), s.data);
}

static int summarize_tokenizer(const bn_model *m, tok_summary *ts, bn_error *err) {
    memset(ts, 0, sizeof *ts);
    const bn_gguf *g = m->gguf;
    if (bn_gguf_find_key(g, "tokenizer.ggml.model") < 0) return 0; // none embedded
    bn_tokenizer *t;
    if (bn_tokenizer_from_gguf(g, &t, err) != 0) return -1;
    ts->present = true;
    str_key(g, "tokenizer.ggml.model", ts->model, sizeof ts->model);
    str_key(g, "tokenizer.ggml.pre", ts->pre, sizeof ts->pre);
    ts->n_vocab = bn_tokenizer_n_vocab(t);
    ts->n_merges = bn_tokenizer_n_merges(t);
    ts->bos = bn_tokenizer_bos(t);
    ts->eos = bn_tokenizer_eos(t);
    ts->eot = bn_tokenizer_eot(t);
    ts->add_bos = bn_tokenizer_add_bos(t);
    ts->has_chat_template = bn_tokenizer_chat_template(t) != NULL;
    bn_tokenizer_free(t);
    // A token id past the embedding rows would read outside token_embd.
    if ((uint32_t)ts->n_vocab > m->hp.n_vocab)
        return bn_errorf(err, "inspect: the tokenizer has %d tokens but the model only %u "
                         "embedding rows", ts->n_vocab, m->hp.n_vocab);
    return 0;
}

static void sum_tensors(const bn_gguf *g, totals *tt) {
    memset(tt, 0, sizeof *tt);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const bn_gguf_tensor *t = &g->tensors[i];
        tt->bytes += t->nbytes;
        tt->params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]; // validated: no overflow
        if (t->type < MAX_TYPE) {
            tt->bytes_by_type[t->type] += t->nbytes;
            tt->count_by_type[t->type]++;
        }
    }
}

// ---- JSON ------------------------------------------------------------------------------

static cJSON *str_or_null(const char *s) { return s && *s ? cJSON_CreateString(s) : cJSON_CreateNull(); }

static char *report_json(const char *path, const bn_model *m, const tok_summary *ts,
                         const totals *tt, bn_error *err) {
    const bn_gguf *g = m->gguf;
    const bn_hparams *hp = &m->hp;
    cJSON *j = cJSON_CreateObject();
    char name[256];
    str_key(g, "general.name", name, sizeof name);
    cJSON_AddNumberToObject(j, "schema_version", INSPECT_SCHEMA_VERSION);
    cJSON_AddStringToObject(j, "file", path);
    cJSON_AddNumberToObject(j, "file_bytes", (double)g->size);
    cJSON_AddNumberToObject(j, "gguf_version", g->version);
    cJSON_AddNumberToObject(j, "alignment", (double)g->alignment);
    cJSON_AddNumberToObject(j, "n_kv", (double)g->n_kv);
    cJSON_AddStringToObject(j, "architecture", m->arch);
    cJSON *gr = cJSON_AddObjectToObject(j, "graph");
    cJSON_AddBoolToObject(gr, "sub_norms", hp->sub_norms);
    cJSON_AddStringToObject(gr, "ffn_act", hp->ffn_silu ? "silu" : "relu_sqr");
    cJSON_AddStringToObject(gr, "rope", hp->rope_neox ? "neox" : "pairwise");
    cJSON_AddItemToObject(j, "name", str_or_null(name));

    cJSON *h = cJSON_AddObjectToObject(j, "hparams");
    cJSON_AddNumberToObject(h, "n_vocab", hp->n_vocab);
    cJSON_AddNumberToObject(h, "n_ctx_train", hp->n_ctx_train);
    cJSON_AddNumberToObject(h, "n_embd", hp->n_embd);
    cJSON_AddNumberToObject(h, "n_layer", hp->n_layer);
    cJSON_AddNumberToObject(h, "n_ff", hp->n_ff);
    cJSON_AddNumberToObject(h, "n_head", hp->n_head);
    cJSON_AddNumberToObject(h, "n_head_kv", hp->n_head_kv);
    cJSON_AddNumberToObject(h, "head_dim", hp->head_dim);
    cJSON_AddNumberToObject(h, "n_rot", hp->n_rot);
    cJSON_AddNumberToObject(h, "rope_base", hp->rope_base);
    cJSON_AddNumberToObject(h, "norm_eps", hp->norm_eps);
    cJSON_AddBoolToObject(j, "output_tied", m->output_tied);

    if (ts->present) {
        cJSON *t = cJSON_AddObjectToObject(j, "tokenizer");
        cJSON_AddStringToObject(t, "model", ts->model);
        cJSON_AddItemToObject(t, "pre", str_or_null(ts->pre));
        cJSON_AddNumberToObject(t, "vocab_size", ts->n_vocab);
        cJSON_AddNumberToObject(t, "merges", (double)ts->n_merges);
        cJSON_AddNumberToObject(t, "bos_id", ts->bos);
        cJSON_AddNumberToObject(t, "eos_id", ts->eos);
        cJSON_AddNumberToObject(t, "eot_id", ts->eot);
        cJSON_AddBoolToObject(t, "add_bos", ts->add_bos);
        cJSON_AddBoolToObject(t, "has_chat_template", ts->has_chat_template);
    } else {
        cJSON_AddNullToObject(j, "tokenizer");
    }

    cJSON *arr = cJSON_AddArrayToObject(j, "tensors");
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const bn_gguf_tensor *t = &g->tensors[i];
        cJSON *o = cJSON_CreateObject();
        char tn[256];
        snprintf(tn, sizeof tn, "%.*s", (int)(t->name.len < 255 ? t->name.len : 255), t->name.data);
        cJSON_AddStringToObject(o, "name", tn);
        cJSON_AddStringToObject(o, "type", bn_ggml_type_name(t->type));
        cJSON *shape = cJSON_AddArrayToObject(o, "shape");
        for (uint32_t d = 0; d < t->n_dims; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->ne[d]));
        cJSON_AddNumberToObject(o, "bytes", (double)t->nbytes);
        cJSON_AddNumberToObject(o, "offset", (double)(g->data_offset + t->offset));
        if (t->type == BN_GGML_I2_S) {
            float s;
            memcpy(&s, t->data + t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3] / 4, 4);
            cJSON_AddNumberToObject(o, "scale", s);
        }
        cJSON_AddItemToArray(arr, o);
    }

    cJSON *to = cJSON_AddObjectToObject(j, "totals");
    cJSON_AddNumberToObject(to, "tensor_count", (double)g->n_tensors);
    cJSON_AddNumberToObject(to, "bytes", (double)tt->bytes);
    cJSON_AddNumberToObject(to, "params", (double)tt->params);
    cJSON *bt = cJSON_AddObjectToObject(to, "bytes_by_type");
    for (uint32_t ty = 0; ty < MAX_TYPE; ty++)
        if (tt->count_by_type[ty])
            cJSON_AddNumberToObject(bt, bn_ggml_type_name(ty), (double)tt->bytes_by_type[ty]);
    if (tt->values_checked) cJSON_AddTrueToObject(to, "values_finite");

    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    if (!s) {
        bn_errorf(err, "inspect: out of memory");
        return NULL;
    }
    // Hand back memory from our malloc, whatever allocator cJSON was built with.
    size_t n = strlen(s);
    char *out = malloc(n + 2);
    if (out) {
        memcpy(out, s, n);
        out[n] = '\n';
        out[n + 1] = 0;
    } else {
        bn_errorf(err, "inspect: out of memory");
    }
    cJSON_free(s);
    return out;
}

// ---- text ------------------------------------------------------------------------------

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap <= b->len + (size_t)n) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

static char *report_text(const char *path, const bn_model *m, const tok_summary *ts,
                         const totals *tt, bn_error *err) {
    const bn_gguf *g = m->gguf;
    const bn_hparams *hp = &m->hp;
    sbuf b = {0};
    char name[256];
    str_key(g, "general.name", name, sizeof name);
    sb_printf(&b, "file          %s\n", path);
    sb_printf(&b, "format        GGUF v%u, %zu bytes, %llu keys, alignment %llu\n", g->version,
              g->size, (unsigned long long)g->n_kv, (unsigned long long)g->alignment);
    sb_printf(&b, "architecture  %s%s%s%s\n", m->arch, *name ? " (" : "", name, *name ? ")" : "");
    sb_printf(&b, "hparams       vocab %u, context %u, hidden %u, layers %u, ffn %u\n",
              hp->n_vocab, hp->n_ctx_train, hp->n_embd, hp->n_layer, hp->n_ff);
    sb_printf(&b, "              heads %u, kv heads %u, head dim %u, rope dims %u, "
              "rope base %g, rms eps %g\n", hp->n_head, hp->n_head_kv, hp->head_dim, hp->n_rot,
              (double)hp->rope_base, (double)hp->norm_eps);
    sb_printf(&b, "graph         %s, %s gate, %s RoPE\n",
              hp->sub_norms ? "sub-norms" : "no sub-norms",
              hp->ffn_silu ? "silu(g)*up" : "relu(g)^2*up", hp->rope_neox ? "NEOX" : "pairwise");
    sb_printf(&b, "lm head       %s\n", m->output_tied ? "tied to token_embd" : "output.weight");
    if (ts->present) {
        sb_printf(&b, "tokenizer     %s%s%s%s, %d tokens, %zu merges\n", ts->model,
                  *ts->pre ? " (pre " : "", ts->pre, *ts->pre ? ")" : "", ts->n_vocab,
                  ts->n_merges);
        sb_printf(&b, "              bos %d, eos %d, eot %d, add_bos %s, chat template %s\n",
                  ts->bos, ts->eos, ts->eot, ts->add_bos ? "yes" : "no",
                  ts->has_chat_template ? "yes" : "no");
    } else {
        sb_printf(&b, "tokenizer     none embedded (use --tokenizer tokenizer.json)\n");
    }

    int w = 4;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].name.len > (uint64_t)w) w = (int)(g->tensors[i].name.len < 64 ? g->tensors[i].name.len : 64);
    sb_printf(&b, "\n%-*s  %-6s  %-24s  %12s\n", w, "tensor", "type", "shape", "bytes");
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const bn_gguf_tensor *t = &g->tensors[i];
        char shape[96];
        int n = snprintf(shape, sizeof shape, "[");
        for (uint32_t d = 0; d < t->n_dims; d++)
            n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%llu", d ? ", " : "",
                          (unsigned long long)t->ne[d]);
        snprintf(shape + n, sizeof shape - (size_t)n, "]");
        sb_printf(&b, "%-*.*s  %-6s  %-24s  %12llu\n", w, (int)(t->name.len < 64 ? t->name.len : 64),
                  t->name.data, bn_ggml_type_name(t->type), shape, (unsigned long long)t->nbytes);
    }
    sb_printf(&b, "\ntotals        %llu tensors, %llu bytes (%.2f MiB), %llu parameters\n",
              (unsigned long long)g->n_tensors, (unsigned long long)tt->bytes,
              (double)tt->bytes / (1024.0 * 1024.0), (unsigned long long)tt->params);
    for (uint32_t ty = 0; ty < MAX_TYPE; ty++)
        if (tt->count_by_type[ty])
            sb_printf(&b, "  %-6s      %llu tensor%s, %llu bytes\n", bn_ggml_type_name(ty),
                      (unsigned long long)tt->count_by_type[ty],
                      tt->count_by_type[ty] == 1 ? "" : "s",
                      (unsigned long long)tt->bytes_by_type[ty]);
    if (tt->values_checked) sb_printf(&b, "values        every F32, F16 and BF16 value is finite\n");
    if (b.oom) {
        free(b.p);
        bn_errorf(err, "inspect: out of memory");
        return NULL;
    }
    return b.p;
}

char *bn_inspect_report(const char *path, int json, bool check_values, bn_error *err) {
    bn_model *m;
    if (bn_model_load(path, &m, err) != 0) return NULL;
    if (check_values && bn_model_check_values(m, err) != 0) {
        bn_error_prefix(err, path);
        bn_model_free(m);
        return NULL;
    }
    tok_summary ts;
    if (summarize_tokenizer(m, &ts, err) != 0) {
        bn_error_prefix(err, path);
        bn_model_free(m);
        return NULL;
    }
    totals tt;
    sum_tensors(m->gguf, &tt);
    tt.values_checked = check_values;
    char *r = json ? report_json(path, m, &ts, &tt, err) : report_text(path, m, &ts, &tt, err);
    bn_model_free(m);
    return r;
}
