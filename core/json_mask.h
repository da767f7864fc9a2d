// json_mask.h - which tokens of an engine's vocabulary can continue a JSON text
// that a schema accepts (json_schema.h): the mask a json_object or json_schema
// request's rows of logits get before sampling (batch.c).
#ifndef BN_JSON_MASK_H
#define BN_JSON_MASK_H

#include <stdint.h>

#include "bitnet.h"
#include "json_schema.h"

// What is known of each token before any text: bytes, kind, first byte.
typedef struct bn_json_vocab {
    int32_t n;
    uint8_t *kind;  // [n] BN_JSON_NEVER (special, no bytes), BN_JSON_END (end of
                    // generation: fits where the text may end), BN_JSON_PLAIN (fits
                    // anywhere inside a string), BN_JSON_CHECK
    uint8_t *first; // [n] the first byte
    uint8_t *blank; // [n] the whitespace bytes it begins with (at most 255)
    uint8_t *lead;  // [n] the first byte after the leading whitespace (0: all whitespace)
    uint8_t *lead2; // [n] and the byte after that (0: none)
    uint32_t longest; // bytes of the longest token: how far one token reaches
    bool *pair;     // [2][256][256] scratch: which byte pairs fit, filled per row
    void *states;   // scratch: the automaton's states a row needs (json_mask.c)
    void *groups;   // the tokens grouped by those bytes (json_mask.c)
    void *cache;    // the masks of the states met last (json_mask.c)
    uint64_t hits, misses; // rows the cache answered, rows worked out
} bn_json_vocab;
enum { BN_JSON_NEVER, BN_JSON_END, BN_JSON_PLAIN, BN_JSON_CHECK };
#define BN_JSON_MASK_CACHE 256

int bn_json_vocab_init(bn_json_vocab *v, const bn_engine *e, bn_error *err);
void bn_json_vocab_free(bn_json_vocab *v);

// Gives -inf to every token of row[0..v->n) whose bytes s refuses (and to the
// BN_JSON_NEVER ones, and the BN_JSON_END ones unless the text may end here).
// Returns how many are left. Uses v's scratch and cache (a hit writes to it
// too): one row at a time per vocab.
// The masks of the last BN_JSON_MASK_CACHE states met are kept, by state key
// (json_schema.h): a string's characters, a number's digits, and every slot
// that shares a compiled schema meet the same states again and again.
int bn_json_mask_row(bn_json_vocab *v, const bn_engine *e, const bn_json_state *s, float *row);

// Drops the kept masks (a benchmark's cold rows).
void bn_json_mask_forget(bn_json_vocab *v);
// A batch's rows masked from the cache and worked out, so far (0 before its
// first JSON request).
void bn_batch_json_counts(const bn_batch *b, uint64_t *hits, uint64_t *misses);

// Reads token id's bytes into s (a token the mask kept). Returns whether the
// value is now whole and closed, where the request ends.
bool bn_json_state_feed_token(bn_json_state *s, const bn_engine *e, int32_t id);

#endif
