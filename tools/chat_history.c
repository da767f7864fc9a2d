// chat_history.c - a chat's exchanges, and its prompt without the oldest (chat_history.h).
#include <stdlib.h>
#include <string.h>

#include "chat_history.h"
#include "error.h"

int bn_chat_history_add(bn_chat_history *h, const char *user, const char *reply, size_t reply_len) {
    if (h->n + 2 > h->cap) {
        const size_t cap = 2 * h->cap + 8;
        char **grown = realloc(h->text, cap * sizeof *grown);
        if (!grown) return -1;
        h->text = grown;
        h->cap = cap;
    }
    char *u = strdup(user), *r = malloc(reply_len + 1);
    if (!u || !r) {
        free(u);
        free(r);
        return -1;
    }
    if (reply_len) memcpy(r, reply, reply_len);
    r[reply_len] = 0;
    h->text[h->n++] = u;
    h->text[h->n++] = r;
    return 0;
}

void bn_chat_history_drop(bn_chat_history *h, size_t n) {
    const size_t k = 2 * n < h->n ? 2 * n : h->n;
    if (!k) return; // (text may be NULL)
    for (size_t i = 0; i < k; i++) free(h->text[i]);
    memmove(h->text, h->text + k, (h->n - k) * sizeof *h->text);
    h->n -= k;
}

void bn_chat_history_clear(bn_chat_history *h) {
    bn_chat_history_drop(h, h->n);
    free(h->text);
    *h = (bn_chat_history){0};
}

int bn_chat_history_prompt(const bn_chat_history *h, const bn_engine *e, const char *system, size_t drop,
                           const char *user, int32_t **ids, size_t *n_ids, bn_error *err) {
    const size_t first = 2 * drop < h->n ? 2 * drop : h->n;
    bn_chat_message *m = malloc((h->n - first + 2) * sizeof *m);
    if (!m) return bn_errorf(err, "out of memory");
    size_t n = 0;
    if (system && *system) m[n++] = (bn_chat_message){"system", system};
    for (size_t i = first; i < h->n; i++) m[n++] = (bn_chat_message){i % 2 ? "assistant" : "user", h->text[i]};
    m[n++] = (bn_chat_message){"user", user};
    const int rc = bn_engine_chat_prompt(e, m, n, ids, n_ids, err);
    free(m);
    return rc;
}
