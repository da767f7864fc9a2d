// http.h - the few HTTP requests `bitnet-gpu download` makes, over libcurl:
// a HEAD for a file's metadata, a small GET for JSON, and a resumable download
// into a .part file.
#ifndef BN_HTTP_H
#define BN_HTTP_H

#include <stdbool.h>
#include <stdint.h>

#include "bitnet.h"

// What a response said that the hub's clients look at; strings are empty and
// sizes -1 when the header was not sent.
typedef struct bn_http_response {
    long status;
    char location[2048];
    char linked_etag[160]; // X-Linked-Etag: an LFS file's SHA-256, quoted
    char etag[160];
    char error_code[64];   // X-Error-Code: RepoNotFound, EntryNotFound, GatedRepo, ...
    int64_t linked_size;   // X-Linked-Size: the LFS file's size
    int64_t content_length;
} bn_http_response;

// Once per process, before any request.
int bn_http_init(bn_error *err);

// HEAD url, not following redirects (the hub answers an LFS file's resolve URL
// with a redirect that carries its metadata). token: sent as a bearer token to
// url's host only; NULL for none.
int bn_http_head(const char *url, const char *token, bn_http_response *r, bn_error *err);

// GET url, following redirects, into a malloc'd NUL-terminated body (at most 16 MiB).
int bn_http_get(const char *url, const char *token, bn_http_response *r, char **body,
                bn_error *err);

// One attempt at downloading url to the end of the file at `path` (created if
// absent): a file already holding n bytes asks for "Range: bytes=n-". A server
// that sends the whole file instead (200) gets it written from the start.
typedef struct bn_fetch {
    const char *url, *token, *path;
    int64_t total;  // the file's size when known (progress and ETA), else -1
    bool progress;  // redraw a progress line on stderr (bytes, rate, ETA)
    int64_t start;  // out: the size of `path` when this attempt started
    int64_t got;    // out: bytes this attempt wrote
    bool retry;     // out, on failure: the network failed, another attempt may do
} bn_fetch;

// 0 when the server sent the rest of the file; -1 with err set otherwise.
int bn_http_fetch(bn_fetch *f, bn_error *err);

#endif
