// serve_reply.h - JSON the server sends back: completion objects, stream chunks,
// errors (the bn_api_* functions of serve_api.h), and text made safe for JSON.
#ifndef BN_SERVE_REPLY_H
#define BN_SERVE_REPLY_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "serve_api.h"

// A JSON string of len bytes of generated text: invalid UTF-8 and NUL bytes
// (which cJSON cannot carry) become U+FFFD, so the document is always valid.
cJSON *bn_text_json(const char *text, size_t len);

// /tokenize's with_pieces entry {"id", "piece"}: the piece a string when it is
// valid UTF-8, else its bytes as numbers (as llama.cpp does).
cJSON *bn_piece_json(const bn_engine *e, int32_t id);

// o printed compact (malloc'd; NULL when memory is short), and deleted.
char *bn_print_taken(cJSON *o);

// A chat message's text: content a string, or an array of {"type": "text",
// "text"} parts joined; absent or null is "". NULL with *ok false when it is
// neither (NULL with *ok true: out of memory). malloc'd.
char *bn_message_text(const cJSON *content, bool *ok);

#endif
