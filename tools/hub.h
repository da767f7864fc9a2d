// hub.h - what the Hugging Face hub (or a mirror: HF_ENDPOINT) says about one
// file of a model repository: where to download it, its size and its SHA-256.
#ifndef BN_HUB_H
#define BN_HUB_H

#include <stdint.h>

#include "bitnet.h"

typedef struct bn_hub_file {
    char url[4096];     // {endpoint}/{repo}/resolve/{revision}/{file}
    char sha256[65];    // 64 hex digits; "" when the hub publishes none (not an LFS file)
    const char *sha_from; // which answer gave it: "X-Linked-Etag", "ETag", "the tree API"
    int64_t size;       // -1 when unknown
} bn_hub_file;

// Asks `HEAD {resolve url}`: for an LFS file the hub answers with a redirect to
// its CDN that carries X-Linked-Etag (the LFS object id: the file's SHA-256) and
// X-Linked-Size. When that is missing (a mirror, a proxy), asks the tree API
// ({endpoint}/api/models/{repo}/tree/{revision}) for the file's lfs.oid.
// Errors say what to do: a missing repository, file or revision, a gated
// repository without HF_TOKEN.
int bn_hub_lookup(const char *endpoint, const char *repo, const char *revision, const char *file,
                  const char *token, bn_hub_file *out, bn_error *err);

#endif
