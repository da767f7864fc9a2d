// hub.c - a file's download URL, size and SHA-256 from the hub (see hub.h).
#include "hub.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "http.h"

// An ETag as the hub sends it ("<sha256>", or W/"..." from a proxy) -> the
// SHA-256 in lowercase when it is one (a git blob's id is 40 digits, not 64).
static bool etag_sha256(const char *etag, char out[65]) {
    if (!strncmp(etag, "W/", 2)) etag += 2;
    if (*etag == '"') etag++;
    for (int i = 0; i < 64; i++)
        if (!isxdigit((unsigned char)etag[i])) return false;
    if (etag[64] != '"' && etag[64] != 0) return false;
    for (int i = 0; i < 64; i++) out[i] = (char)tolower((unsigned char)etag[i]);
    out[64] = 0;
    return true;
}

static int not_found(const bn_http_response *r, const char *endpoint, const char *repo,
                     const char *revision, const char *file, bn_error *err) {
    if (!strcmp(r->error_code, "RepoNotFound"))
        return bn_errorf(err, "%s has no repository %s (or it is private: set HF_TOKEN)", endpoint, repo);
    if (!strcmp(r->error_code, "RevisionNotFound"))
        return bn_errorf(err, "%s has no revision '%s'", repo, revision);
    return bn_errorf(err, "%s has no file %s at revision '%s' (HTTP 404%s%s)", repo, file, revision,
                     *r->error_code ? ", " : "", r->error_code);
}

// The file's entry in the tree API's listing of its directory: lfs.oid, size.
static void from_tree_api(const char *endpoint, const char *repo, const char *revision,
                          const char *file, const char *token, bn_hub_file *out) {
    char url[4096];
    const char *slash = strrchr(file, '/');
    int n = snprintf(url, sizeof url, "%s/api/models/%s/tree/%s", endpoint, repo, revision);
    if (slash) snprintf(url + n, sizeof url - (size_t)n, "/%.*s", (int)(slash - file), file);
    bn_http_response r;
    bn_error ignored;
    char *body = NULL;
    if (bn_http_get(url, token, &r, &body, &ignored) || r.status != 200) {
        free(body);
        return;
    }
    cJSON *list = cJSON_Parse(body), *entry;
    free(body);
    cJSON_ArrayForEach(entry, list) {
        const cJSON *path = cJSON_GetObjectItem(entry, "path");
        if (!cJSON_IsString(path) || strcmp(path->valuestring, file)) continue;
        const cJSON *lfs = cJSON_GetObjectItem(entry, "lfs");
        const cJSON *oid = cJSON_GetObjectItem(lfs, "oid"), *size = cJSON_GetObjectItem(lfs, "size");
        if (cJSON_IsString(oid) && etag_sha256(oid->valuestring, out->sha256)) out->sha_from = "the tree API";
        if (cJSON_IsNumber(size) && out->size < 0) out->size = (int64_t)size->valuedouble;
    }
    cJSON_Delete(list);
}

// A revision in a URL is one path segment: "refs/pr/1" -> "refs%2Fpr%2F1".
static void revision_segment(const char *revision, char *out, size_t cap) {
    size_t n = 0;
    for (const char *p = revision; *p && n + 4 < cap; p++) {
        if (*p == '/') n += (size_t)snprintf(out + n, cap - n, "%%2F");
        else out[n++] = *p;
    }
    out[n] = 0;
}

int bn_hub_lookup(const char *endpoint, const char *repo, const char *revision_name,
                  const char *file, const char *token, bn_hub_file *out, bn_error *err) {
    *out = (bn_hub_file){.size = -1};
    char revision[256];
    revision_segment(revision_name, revision, sizeof revision);
    if ((size_t)snprintf(out->url, sizeof out->url, "%s/%s/resolve/%s/%s", endpoint, repo, revision,
                         file) >= sizeof out->url)
        return bn_errorf(err, "the URL for %s/%s is too long", repo, file);
    bn_http_response r;
    // A renamed repository answers with a redirect within the hub (a relative
    // Location): follow those; an LFS file's redirect to the CDN is the answer.
    for (int hops = 0;; hops++) {
        if (bn_http_head(out->url, token, &r, err)) return bn_error_prefix(err, "cannot reach the hub");
        const bool same_site = r.location[0] == '/';
        if (r.status < 300 || r.status >= 400 || !same_site || *r.linked_etag) break;
        if (hops == 5) return bn_errorf(err, "%s: too many redirects", out->url);
        const char *host = strstr(endpoint, "://"), *path = host ? strchr(host + 3, '/') : NULL;
        const int origin = path ? (int)(path - endpoint) : (int)strlen(endpoint);
        snprintf(out->url, sizeof out->url, "%.*s%s", origin, endpoint, r.location);
    }
    if (r.status == 401 || r.status == 403)
        return bn_errorf(err, "%s/%s: access denied (HTTP %ld%s%s): the repository is gated or "
                              "private; %s",
                         repo, file, r.status, *r.error_code ? ", " : "", r.error_code,
                         token ? "the HF_TOKEN given cannot read it" : "set HF_TOKEN to a token that can read it");
    if (r.status == 404) return not_found(&r, endpoint, repo, revision_name, file, err);
    if (r.status >= 400 || r.status < 200)
        return bn_errorf(err, "%s: HTTP %ld%s%s", out->url, r.status, *r.error_code ? ", " : "",
                         r.error_code);
    if (etag_sha256(r.linked_etag, out->sha256)) out->sha_from = "X-Linked-Etag";
    else if (etag_sha256(r.etag, out->sha256)) out->sha_from = "ETag";
    out->size = r.linked_size >= 0 ? r.linked_size : r.status == 200 ? r.content_length : -1;
    if (!*out->sha256) from_tree_api(endpoint, repo, revision, file, token, out);
    return 0;
}
