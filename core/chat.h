// chat.h - chat prompts in each supported model family's format
// (docs/architecture.md: Tokenizer and chat format). Three styles; a tokenizer
// loaded from a GGUF file picks one from its tokenizer.chat_template
// (bn_chat_detect_style), any other tokenizer uses the first:
//
// BN_CHAT_STYLE_BITNET (BitNet b1.58 2B-4T; the default: no template or an unknown one)
//   <|begin_of_text|>System: SYS<|eot_id|>User: MSG<|eot_id|>Assistant: REPLY<|eot_id|>...Assistant: 
//   Each message is "Role: content<|eot_id|>", content kept as given (not
//   trimmed); the generation prompt is "Assistant: " with its trailing space.
//
// BN_CHAT_STYLE_LLAMA3 (Llama3-8B-1.58-100B-tokens: Meta-Llama-3-8B-Instruct's template)
//   <|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nSYS<|eot_id|>
//   <|start_header_id|>user<|end_header_id|>\n\nMSG<|eot_id|>...
//   <|start_header_id|>assistant<|end_header_id|>\n\n
//   Content is trimmed of leading and trailing whitespace (Jinja `| trim`,
//   Python's str.strip()). A turn ends with <|eot_id|>.
//
// BN_CHAT_STYLE_FALCON3 (tiiuae Falcon3-*-Instruct(-1.58bit))
//   <|system|>\nSYS\n<|user|>\nMSG\n<|assistant|>\nREPLY<|endoftext|>\n<|user|>\nMSG\n<|assistant|>\n
//   No BOS; content kept as given. An assistant message ends with the end of
//   sequence token <|endoftext|> (the template's eos_token), followed by "\n"
//   unless it is the last message. The generation prompt is "<|assistant|>\n".
//
// A multi-turn chat keeps its KV cache, so a later turn (add_bos false) holds
// only the new messages (typically one user message), after the previous reply
// and its end-of-turn token (bn_chat_end_token); in the Falcon3 style it starts
// with the "\n" that follows that token. The first turn and the later turns,
// with the replies and end-of-turn tokens between them, concatenate to the
// whole conversation's prompt.
#ifndef BN_CHAT_H
#define BN_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "tokenizer/tokenizer.h"

// bn_chat_message (role "system", "user" or "assistant"; NULL content is "") is public: bitnet.h.
// bn_chat_style, bn_chat_detect_style and bn_chat_style_name are in
// tokenizer/tokenizer.h (the tokenizer keeps its model's style).

// The token that ends a turn in the tokenizer's style: <|eot_id|> (bitnet,
// llama3: bn_tokenizer_eot) or the end-of-sequence token (falcon3:
// bn_tokenizer_eos). -1 when the vocabulary has none.
int32_t bn_chat_end_token(const bn_tokenizer *t);

// The prompt as text; *out is malloc'd and NUL-terminated. add_bos: the first
// turn (it begins with "<|begin_of_text|>" in the bitnet and llama3 styles).
// add_generation_prompt: end with the assistant's header. Tokenize the result
// with parse_special = true and add_bos = false.
int bn_chat_format(bn_chat_style style, const bn_chat_message *msgs, size_t n, bool add_bos,
                   bool add_generation_prompt, char **out, size_t *len, bn_error *err);

// The same prompt as token ids, in the tokenizer's style (bn_tokenizer_chat_style),
// with message contents encoded as plain text (never parsed for special tokens,
// so a message cannot inject "<|eot_id|>" or "<|user|>"). For contents without
// special-token text this equals tokenizing bn_chat_format's text with
// parse_special = true.
int bn_chat_tokens(const bn_tokenizer *t, const bn_chat_message *msgs, size_t n, bool add_bos,
                   bool add_generation_prompt, int32_t **ids, size_t *n_ids, bn_error *err);

#endif
