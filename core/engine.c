// engine.c - a loaded model and its tokenizer: the read-only half of the API.
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "chat.h"
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

int bn_engine_same_vocab(const bn_engine *a, const bn_engine *b, bn_error *err) {
    const uint32_t rows_a = a->model->hp.n_vocab, rows_b = b->model->hp.n_vocab;
    const int32_t n_a = bn_tokenizer_n_vocab(a->tok), n_b = bn_tokenizer_n_vocab(b->tok);
    if (rows_a != rows_b || n_a != n_b)
        return bn_errorf(err, "the vocabularies differ: %d tokens in %u logit rows, and %d in %u", (int)n_a,
                         (unsigned)rows_a, (int)n_b, (unsigned)rows_b);
    for (int32_t id = 0; id < n_a; id++) {
        size_t len_a = 0, len_b = 0;
        const char *ta = bn_token_bytes(a->tok, id, &len_a), *tb = bn_token_bytes(b->tok, id, &len_b);
        if (len_a != len_b || (len_a && memcmp(ta, tb, len_a)))
            return bn_errorf(err, "the vocabularies differ: token %d is '%.*s' in one and '%.*s' in the other",
                             (int)id, (int)(len_a < 40 ? len_a : 40), ta ? ta : "", (int)(len_b < 40 ? len_b : 40),
                             tb ? tb : "");
    }
    return 0;
}

bool bn_engine_is_eog(const bn_engine *e, int32_t id) { return bn_tokenizer_is_eog(e->tok, id); }

bool bn_engine_add_bos(const bn_engine *e) { return bn_tokenizer_add_bos(e->tok); }
int32_t bn_engine_bos(const bn_engine *e) { return bn_tokenizer_bos(e->tok); }
int32_t bn_engine_eos(const bn_engine *e) { return bn_tokenizer_eos(e->tok); }
bool bn_engine_space_prefix(const bn_engine *e) {
    return bn_tokenizer_is_spm(e->tok) && bn_tokenizer_add_space_prefix(e->tok);
}

const char *bn_engine_chat_template(const bn_engine *e) {
    return bn_chat_style_name(bn_tokenizer_chat_style(e->tok));
}

const char *bn_engine_chat_template_jinja(const bn_engine *e) {
    const char *t = bn_tokenizer_chat_template(e->tok);
    return bn_chat_template_is(t, bn_tokenizer_chat_style(e->tok)) ? t : NULL;
}

int bn_engine_set_chat_template(bn_engine *e, const char *name, bn_error *err) {
    bn_chat_style style;
    if (bn_chat_style_from_name(name, &style))
        return bn_errorf(err, "chat template '%s': bitnet, llama3 or falcon3", name ? name : "(null)");
    bn_tokenizer_set_chat_style(e->tok, style);
    return 0;
}

int bn_engine_chat_prompt(const bn_engine *e, const bn_chat_message *msgs, size_t n_msgs,
                          int32_t **ids, size_t *n_ids, bn_error *err) {
    return bn_chat_tokens(e->tok, msgs, n_msgs, true, true, ids, n_ids, err);
}

int bn_engine_chat_tokens(const bn_engine *e, const char *system, const char *user, bool first_turn,
                          bool close_previous, int32_t **ids, size_t *n_ids, bn_error *err) {
    bn_chat_message msgs[2];
    size_t n_msgs = 0;
    if (first_turn && system && *system) msgs[n_msgs++] = (bn_chat_message){"system", system};
    msgs[n_msgs++] = (bn_chat_message){"user", user};
    int32_t *turn;
    size_t n;
    if (bn_chat_tokens(e->tok, msgs, n_msgs, first_turn, true, &turn, &n, err)) return -1;
    if (close_previous) { // bn_chat_tokens has checked that the vocabulary has the end of turn
        int32_t *grown = realloc(turn, (n + 1) * sizeof *turn);
        if (!grown) {
            free(turn);
            return bn_errorf(err, "out of memory");
        }
        turn = grown;
        memmove(turn + 1, turn, n * sizeof *turn);
        turn[0] = bn_chat_end_token(e->tok);
        n++;
    }
    *ids = turn;
    *n_ids = n;
    return 0;
}

int bn_engine_detokenize(const bn_engine *e, const int32_t *ids, size_t n, char **text,
                         size_t *len, bn_error *err) {
    return bn_detokenize(e->tok, ids, n, text, len, err);
}

int bn_engine_check_ids(const bn_engine *e, const int32_t *ids, size_t n, bn_error *err) {
    const int32_t n_vocab = (int32_t)e->model->hp.n_vocab;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= n_vocab)
            return bn_errorf(err, "token id %d is outside the vocabulary (0..%d)", ids[i], n_vocab - 1);
    return 0;
}
