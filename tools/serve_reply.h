// serve_reply.h - JSON the server sends back: completion objects, stream chunks,
// errors (the bn_api_* functions of serve_api.h). Text made safe for JSON is
// json_text.h's.
#ifndef BN_SERVE_REPLY_H
#define BN_SERVE_REPLY_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "json_text.h"
#include "serve_api.h"

// /tokenize's with_pieces entry {"id", "piece"}: the piece a string when it is
// valid UTF-8, else its bytes as numbers (as llama.cpp does).
cJSON *bn_piece_json(const bn_engine *e, int32_t id);

// A chat logprobs entry {"token", "logprob", "bytes"} (OpenAI's shape; also what
// `generate --json --logprobs` prints, with the id).
cJSON *bn_logprob_entry_json(const bn_engine *e, int32_t id, float logprob);

#endif
