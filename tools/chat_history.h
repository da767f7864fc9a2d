// chat_history.h - what a `bitnet-gpu chat` conversation said, kept so that one
// that outgrows the context goes on without its oldest exchanges (as chat UIs
// over llama.cpp's server do), rather than asking for /reset.
#ifndef BN_CHAT_HISTORY_H
#define BN_CHAT_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "bitnet.h"

typedef struct bn_chat_history {
    char **text; // user, assistant, user, assistant, ... (each malloc'd)
    size_t n, cap;
} bn_chat_history;

// One exchange: the user's message and the reply's text. -1 when memory is short
// (the history is then as before).
int bn_chat_history_add(bn_chat_history *h, const char *user, const char *reply, size_t reply_len);
// Forgets the oldest n exchanges.
void bn_chat_history_drop(bn_chat_history *h, size_t n);
void bn_chat_history_clear(bn_chat_history *h);
static inline size_t bn_chat_history_exchanges(const bn_chat_history *h) { return h->n / 2; }

// The ids of the whole conversation in the model's chat format, from its start
// (BOS, system when not NULL), without its first `drop` exchanges, ending with
// user's message and the reply's opening (bn_engine_chat_prompt).
int bn_chat_history_prompt(const bn_chat_history *h, const bn_engine *e, const char *system, size_t drop,
                           const char *user, int32_t **ids, size_t *n_ids, bn_error *err);

#endif
