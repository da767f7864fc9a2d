// regex_reply.h - a reply held to a regular expression, whole: vLLM's
// guided_regex and guided_choice (`serve`), a batch request's bn_request.regex.
// The expression is json_regex.h's (ECMA-262, the subset it names) over the
// reply's UTF-8 bytes, matched from the reply's first byte to its last, as
// vLLM matches it; a token whose bytes would leave no way to finish a match is
// masked before sampling, as json_mask.h masks a JSON reply's rows, and the
// reply ends as soon as nothing can follow what it has matched.
#ifndef BN_REGEX_REPLY_H
#define BN_REGEX_REPLY_H

#include <stdbool.h>
#include <stdint.h>

#include "bitnet.h"
#include "json_regex.h"

// Masks of this many states are kept a reply (a state's mask is a bit a token).
#define BN_REGEX_REPLY_MASKS 16

typedef struct bn_regex_reply {
    bn_regex *rx;
    uint32_t state;  // after the reply's bytes so far
    int32_t n_vocab;
    size_t words;    // of a mask
    uint64_t *masks; // [BN_REGEX_REPLY_MASKS][words]
    uint32_t kept[BN_REGEX_REPLY_MASKS]; // the state each mask is of (BN_REGEX_DEAD: none)
    int next_kept;   // the mask replaced next
} bn_regex_reply;

// Compiles pattern for whole replies (bn_regex_compile_whole: every top-level
// alternative anchored at both ends, so its own "^" and "$" change nothing). 0,
// or -1 and err (the expression's error, with its offset).
int bn_regex_reply_init(bn_regex_reply *r, const char *pattern, int32_t n_vocab, bn_error *err);
void bn_regex_reply_free(bn_regex_reply *r);

// The empty reply again, for the next one (the masks kept stay good).
static inline void bn_regex_reply_restart(bn_regex_reply *r) { r->state = 0; }

// Gives -inf to every token of row[0..n_vocab) that cannot continue the reply:
// one whose bytes lead the automaton nowhere, a special token, and an
// end-of-generation token unless the reply may end here. Returns how many are
// left (0: none; the caller ends the reply).
int bn_regex_reply_mask(bn_regex_reply *r, const bn_engine *e, float *row);

// Reads a token the mask kept. Returns whether the reply is now whole: it
// matches, and no byte can follow.
bool bn_regex_reply_feed(bn_regex_reply *r, const bn_engine *e, int32_t id);

#endif
