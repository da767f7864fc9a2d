// chat.h - the BitNet b1.58 2B-4T chat format (docs/architecture.md: Tokenizer and chat format):
//
//   <|begin_of_text|>System: SYS<|eot_id|>User: MSG<|eot_id|>Assistant: REPLY<|eot_id|>...Assistant: 
//
// Each message is "Role: content<|eot_id|>" with Role System / User / Assistant
// (content kept as given, not trimmed, as the HF template does); the generation
// prompt is "Assistant: " with its trailing space. A multi-turn chat keeps its
// KV cache, so a later turn omits the BOS part and holds only the new messages
// (typically one user message), after the previous reply and its <|eot_id|>.
#ifndef BN_CHAT_H
#define BN_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "tokenizer.h"

// bn_chat_message (role "system", "user" or "assistant"; NULL content is "") is public: bitnet.h.

// The prompt as text; *out is malloc'd and NUL-terminated. add_bos: begin with
// "<|begin_of_text|>" (first turn). add_generation_prompt: end with "Assistant: ".
// Tokenize the result with parse_special = true and add_bos = false.
int bn_chat_format(const bn_chat_message *msgs, size_t n, bool add_bos, bool add_generation_prompt,
                   char **out, size_t *len, bn_error *err);

// The same prompt as token ids, with message contents encoded as plain text
// (never parsed for special tokens, so a message cannot inject "<|eot_id|>").
int bn_chat_tokens(const bn_tokenizer *t, const bn_chat_message *msgs, size_t n, bool add_bos,
                   bool add_generation_prompt, int32_t **ids, size_t *n_ids, bn_error *err);

#endif
