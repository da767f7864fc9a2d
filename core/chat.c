// chat.c - builds 2B-4T chat prompts (format in chat.h).
#include <stdlib.h>
#include <string.h>

#include "chat.h"

static const char BOS_TEXT[] = "<|begin_of_text|>";
static const char EOT_TEXT[] = "<|eot_id|>";
static const char GEN_PROMPT[] = "Assistant: ";

static const char *role_name(const char *role) {
    if (!role) return NULL;
    if (!strcmp(role, "system")) return "System";
    if (!strcmp(role, "user")) return "User";
    if (!strcmp(role, "assistant")) return "Assistant";
    return NULL;
}

// "Role: content" into a fresh buffer.
static char *role_line(const bn_chat_message *m, size_t *len, bn_error *err) {
    const char *name = role_name(m->role);
    if (!name) {
        bn_errorf(err, "chat: unknown role \"%s\" (system, user or assistant)", m->role ? m->role : "(null)");
        return NULL;
    }
    const char *c = m->content ? m->content : "";
    size_t nl = strlen(name), cl = strlen(c);
    char *s = malloc(nl + 2 + cl + 1);
    if (!s) {
        bn_errorf(err, "chat: out of memory");
        return NULL;
    }
    memcpy(s, name, nl);
    memcpy(s + nl, ": ", 2);
    memcpy(s + nl + 2, c, cl + 1);
    *len = nl + 2 + cl;
    return s;
}

int bn_chat_format(const bn_chat_message *msgs, size_t n, bool add_bos, bool add_generation_prompt,
                   char **out, size_t *len, bn_error *err) {
    *out = NULL;
    *len = 0;
    size_t cap = sizeof BOS_TEXT + sizeof GEN_PROMPT + 1;
    for (size_t i = 0; i < n; i++) // "Assistant: " is the longest role prefix
        cap += sizeof GEN_PROMPT + (msgs[i].content ? strlen(msgs[i].content) : 0) + sizeof EOT_TEXT;
    char *s = malloc(cap);
    if (!s) return bn_errorf(err, "chat: out of memory");
    size_t o = 0;
    if (add_bos) {
        memcpy(s, BOS_TEXT, sizeof BOS_TEXT - 1);
        o = sizeof BOS_TEXT - 1;
    }
    for (size_t i = 0; i < n; i++) {
        size_t l;
        char *line = role_line(&msgs[i], &l, err);
        if (!line) {
            free(s);
            return -1;
        }
        memcpy(s + o, line, l);
        o += l;
        free(line);
        memcpy(s + o, EOT_TEXT, sizeof EOT_TEXT - 1);
        o += sizeof EOT_TEXT - 1;
    }
    if (add_generation_prompt) {
        memcpy(s + o, GEN_PROMPT, sizeof GEN_PROMPT - 1);
        o += sizeof GEN_PROMPT - 1;
    }
    s[o] = 0;
    *out = s;
    *len = o;
    return 0;
}

typedef struct id_buf {
    int32_t *ids;
    size_t n, cap;
} id_buf;

static int append(id_buf *b, const int32_t *ids, size_t n, bn_error *err) {
    if (b->n + n > b->cap) {
        size_t cap = 2 * (b->n + n) + 16;
        int32_t *p = realloc(b->ids, cap * sizeof *p);
        if (!p) return bn_errorf(err, "chat: out of memory");
        b->ids = p;
        b->cap = cap;
    }
    if (n) memcpy(b->ids + b->n, ids, n * sizeof *ids);
    b->n += n;
    return 0;
}

// Plain text (no special tokens parsed) appended as ids.
static int append_text(const bn_tokenizer *t, id_buf *b, const char *text, size_t len, bn_error *err) {
    int32_t *ids;
    size_t n;
    if (bn_tokenize(t, text, len, false, false, &ids, &n, err)) return -1;
    int rc = append(b, ids, n, err);
    free(ids);
    return rc;
}

int bn_chat_tokens(const bn_tokenizer *t, const bn_chat_message *msgs, size_t n, bool add_bos,
                   bool add_generation_prompt, int32_t **ids, size_t *n_ids, bn_error *err) {
    *ids = NULL;
    *n_ids = 0;
    int32_t bos = bn_tokenizer_bos(t), eot = bn_tokenizer_eot(t);
    if (add_bos && bos < 0) return bn_errorf(err, "chat: the vocabulary has no BOS token");
    if (eot < 0) return bn_errorf(err, "chat: the vocabulary has no <|eot_id|> token");
    id_buf b = {0};
    int rc = add_bos ? append(&b, &bos, 1, err) : 0;
    for (size_t i = 0; !rc && i < n; i++) {
        size_t l;
        char *line = role_line(&msgs[i], &l, err);
        rc = line ? append_text(t, &b, line, l, err) : -1;
        free(line);
        if (!rc) rc = append(&b, &eot, 1, err);
    }
    if (!rc && add_generation_prompt) rc = append_text(t, &b, GEN_PROMPT, sizeof GEN_PROMPT - 1, err);
    if (!rc && !b.ids && !(b.ids = malloc(sizeof *b.ids))) // never NULL on success
        rc = bn_errorf(err, "chat: out of memory");
    if (rc) {
        free(b.ids);
        return -1;
    }
    *ids = b.ids;
    *n_ids = b.n;
    return 0;
}
