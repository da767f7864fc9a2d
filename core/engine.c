// engine.c - a loaded model and its tokenizer: the read-only half of the API.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "clock.h"
#include "engine_internal.h"

int bn_engine_load(const char *model_path, const char *tokenizer_json, bn_engine **out,
                   bn_error *err) {
    *out = NULL;
    double t0 = bn_now_ms();
    bn_engine *e = calloc(1, sizeof *e);
    if (!e) return bn_errorf(err, "out of memory");
    if (bn_model_load(model_path, &e->model, err)) goto fail;
    if (tokenizer_json ? bn_tokenizer_from_json(tokenizer_json, &e->tok, err)
                       : bn_tokenizer_from_gguf(e->model->gguf, &e->tok, err))
        goto fail;
    // Ids past the embedding table would read outside it.
    if ((uint32_t)bn_tokenizer_n_vocab(e->tok) > e->model->hp.n_vocab) {
        bn_errorf(err, "tokenizer has %d tokens but the model's embedding has only %u rows",
                  bn_tokenizer_n_vocab(e->tok), e->model->hp.n_vocab);
        goto fail;
    }
    e->load_ms = bn_now_ms() - t0;
    *out = e;
    return 0;
fail:
    bn_engine_free(e);
    return -1;
}

void bn_engine_free(bn_engine *e) {
    if (!e) return;
    bn_tokenizer_free(e->tok);
    bn_model_free(e->model);
    free(e);
}

bn_model_info bn_engine_info(const bn_engine *e) {
    const bn_hparams *hp = &e->model->hp;
    return (bn_model_info){
        .arch = e->model->arch,
        .n_vocab = (int)hp->n_vocab,
        .n_ctx_train = (int)hp->n_ctx_train,
        .n_embd = (int)hp->n_embd,
        .n_layer = (int)hp->n_layer,
        .n_ff = (int)hp->n_ff,
        .n_head = (int)hp->n_head,
        .n_head_kv = (int)hp->n_head_kv,
        .file_bytes = e->model->gguf->size,
    };
}

double bn_engine_load_ms(const bn_engine *e) { return e->load_ms; }

int bn_engine_tokenize(const bn_engine *e, const char *text, bool add_bos, bool parse_special,
                       int32_t **ids, size_t *n_ids, bn_error *err) {
    return bn_tokenize(e->tok, text, strlen(text), add_bos, parse_special, ids, n_ids, err);
}

const char *bn_engine_token_bytes(const bn_engine *e, int32_t id, size_t *len) {
    return bn_token_bytes(e->tok, id, len);
}

bool bn_engine_is_eog(const bn_engine *e, int32_t id) { return bn_tokenizer_is_eog(e->tok, id); }

bool bn_engine_add_bos(const bn_engine *e) { return bn_tokenizer_add_bos(e->tok); }

// A growing token list for building chat prompts.
typedef struct {
    int32_t *ids;
    size_t n, cap;
} id_list;

static int push_ids(id_list *l, const int32_t *ids, size_t n, bn_error *err) {
    if (l->n + n > l->cap) {
        size_t cap = 2 * (l->n + n) + 16;
        int32_t *p = realloc(l->ids, cap * sizeof *p);
        if (!p) return bn_errorf(err, "out of memory");
        l->ids = p;
        l->cap = cap;
    }
    memcpy(l->ids + l->n, ids, n * sizeof *ids);
    l->n += n;
    return 0;
}

static int push_special(id_list *l, int32_t id, const char *name, bn_error *err) {
    if (id < 0) return bn_errorf(err, "the vocabulary has no %s token", name);
    return push_ids(l, &id, 1, err);
}

// "Role: content" as plain text (pre-tokenized as one piece, like the reference).
static int push_text(const bn_engine *e, id_list *l, const char *role, const char *content,
                     bn_error *err) {
    size_t len = strlen(role) + 2 + (content ? strlen(content) : 0);
    char *text = malloc(len + 1);
    if (!text) return bn_errorf(err, "out of memory");
    snprintf(text, len + 1, "%s: %s", role, content ? content : "");
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = bn_tokenize(e->tok, text, len, false, false, &ids, &n, err);
    if (rc == 0) rc = push_ids(l, ids, n, err);
    free(ids);
    free(text);
    return rc;
}

int bn_engine_chat_tokens(const bn_engine *e, const char *system, const char *user, bool first_turn,
                          bool close_previous, int32_t **ids, size_t *n_ids, bn_error *err) {
    id_list l = {0};
    int32_t eot = bn_tokenizer_eot(e->tok);
    int rc = 0;
    if (close_previous) rc = push_special(&l, eot, "<|eot_id|>", err);
    if (!rc && first_turn) rc = push_special(&l, bn_tokenizer_bos(e->tok), "BOS", err);
    if (!rc && first_turn && system && *system) {
        rc = push_text(e, &l, "System", system, err);
        if (!rc) rc = push_special(&l, eot, "<|eot_id|>", err);
    }
    if (!rc) rc = push_text(e, &l, "User", user, err);
    if (!rc) rc = push_special(&l, eot, "<|eot_id|>", err);
    if (!rc) rc = push_text(e, &l, "Assistant", "", err);
    if (rc) {
        free(l.ids);
        return -1;
    }
    *ids = l.ids;
    *n_ids = l.n;
    return 0;
}
