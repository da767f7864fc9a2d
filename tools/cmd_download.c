// cmd_download.c - `bitnet-gpu download [REPO] [FILE] [-o DIR]`: fetch a model
// file from the Hugging Face hub (default: BitNet b1.58 2B-4T's GGUF into models/).
//
// The bytes go to DIR/FILE.part, appended to across interruptions (HTTP Range)
// and runs; only when the hub's SHA-256 matches is the file renamed to its final
// name, so that name never holds a partial or corrupt download. HF_TOKEN is sent
// as a bearer token (gated repositories); HF_ENDPOINT points at a mirror.
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "clock.h"
#include "commands.h"
#include "default_model.h"
#include "error.h"
#include "hub.h"
#include "http.h"
#include "io.h"
#include "sha256.h"

#define MAX_ATTEMPTS 5 // per run, each after one that made progress

typedef struct {
    const char *repo, *file, *dir, *revision;
    bool json;
} options;

static void usage(FILE *f) {
    fprintf(f,
            "usage: bitnet-gpu download [REPO [FILE]] [-o DIR] [--revision REV] [--json]\n"
            "  Downloads FILE of the Hugging Face model repository REPO into DIR\n"
            "  (default: " BN_HUB_DEFAULT_REPO " " BN_HUB_DEFAULT_FILE " into " BN_DOWNLOAD_DIR "/),\n"
            "  resuming an interrupted download and checking the SHA-256 the hub publishes.\n"
            "  Prints the file's path (--json: one JSON object); progress on a terminal.\n"
            "  HF_TOKEN: access token for gated or private repositories.\n"
            "  HF_ENDPOINT: the hub's address (default https://huggingface.co), for a mirror.\n");
}

// REPO is owner/name and FILE a relative path, both of the hub's characters: they
// go into a URL and FILE's last part into a local path unescaped.
static bool safe_name(const char *s, bool is_repo) {
    int slashes = 0;
    if (!*s || *s == '/' || s[strlen(s) - 1] == '/' || strstr(s, "//")) return false;
    for (const char *p = s; *p; p++) {
        if (*p == '/') slashes++;
        else if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+", *p))
            return false;
        if ((p == s || p[-1] == '/') && p[0] == '.' && (p[1] == '.' || p[1] == '/' || !p[1]))
            return false; // "." and ".." segments (and names starting "..")
    }
    return is_repo ? slashes == 1 : true;
}

static int parse(int argc, char **argv, options *o, bool *help) {
    *o = (options){.repo = BN_HUB_DEFAULT_REPO, .file = BN_HUB_DEFAULT_FILE, .dir = BN_DOWNLOAD_DIR,
                   .revision = "main"};
    enum { REVISION = 256, JSON };
    static const struct option longopts[] = {
        {"output-dir", required_argument, NULL, 'o'}, {"revision", required_argument, NULL, REVISION},
        {"json", no_argument, NULL, JSON},           {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int positional = 0;
    optind = 0; // glibc: a fresh scan (main() may parse more than one command)
    for (int c; (c = bn_getopt("download", argc, argv, "o:h", longopts)) != -1;) {
        switch (c) {
        case 'h': return *help = true, 0;
        case 'o': o->dir = optarg; break;
        case REVISION: o->revision = optarg; break;
        case JSON: o->json = true; break;
        case 1: // REPO, then FILE
            if (positional == 2) return bn_cli_unknown("download", false, optarg);
            *(positional++ ? &o->file : &o->repo) = optarg;
            break;
        default: return 2; // bn_getopt said why
        }
    }
    if (!safe_name(o->repo, true))
        return fprintf(stderr, "error: '%s' is not a repository name like owner/name\n", o->repo), 2;
    if (!safe_name(o->file, false))
        return fprintf(stderr, "error: '%s' is not a file name in a repository\n", o->file), 2;
    if (!safe_name(o->revision, false))
        return fprintf(stderr, "error: '%s' is not a revision name\n", o->revision), 2;
    return 0;
}

static int64_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

static int mkdir_p(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1;; p++) {
        const char c = *p;
        if (c != '/' && c != 0) continue;
        *p = 0;
        if (mkdir(path, 0755) && errno != EEXIST) return -1;
        if (!(*p = c)) return 0;
    }
}

// Downloads into part until it holds the whole file; retries after an
// interruption as long as the last attempt made progress.
static int fetch_all(const bn_hub_file *hub, const char *token, const char *part, bool progress,
                     int64_t *resumed_from, bn_error *err) {
    bn_fetch f = {.url = hub->url, .token = token, .path = part, .total = hub->size, .progress = progress};
    if (hub->size > 0 && file_size(part) > hub->size && truncate(part, 0)) // not this file
        return bn_errorf(err, "%s: %s", part, strerror(errno));
    *resumed_from = file_size(part) > 0 ? file_size(part) : 0;
    for (int attempt = 1; hub->size < 0 || file_size(part) != hub->size; attempt++) {
        if (bn_http_fetch(&f, err) == 0) return 0;
        if (!f.retry || f.got == 0 || attempt == MAX_ATTEMPTS) return -1;
        char have[32];
        bn_format_bytes((double)file_size(part), have, sizeof have);
        fprintf(stderr, "note: %s; resuming at %s (attempt %d of %d)\n", err->msg, have, attempt + 1,
                MAX_ATTEMPTS);
        sleep(1);
    }
    return 0;
}

// The file at path against the hub's size and SHA-256: 0 when it matches (or
// nothing is published), -1 with err saying how it differs.
static int verify(const char *path, const bn_hub_file *hub, char sha[65], bn_error *err) {
    const int64_t size = file_size(path);
    if (hub->size >= 0 && size != hub->size)
        return bn_errorf(err, "%s has %lld bytes, the hub says %lld", path, (long long)size,
                         (long long)hub->size);
    if (bn_sha256_file(path, sha, err)) return -1;
    if (*hub->sha256 && strcmp(sha, hub->sha256))
        return bn_errorf(err, "SHA-256 mismatch for %s: got %s, the hub publishes %s (%s)", path, sha,
                         hub->sha256, hub->sha_from);
    return 0;
}

static void report(const options *o, const char *dest, const bn_hub_file *hub, const char *sha,
                   int64_t resumed_from, bool downloaded, double secs) {
    if (!o->json) {
        printf("%s\n", dest);
        const char *env = getenv("BITNET_MODEL"); // which would come first
        if (!strcmp(o->dir, BN_DOWNLOAD_DIR) && !strcmp(o->file, BN_HUB_DEFAULT_FILE) && !(env && *env))
            fprintf(stderr, "note: from this directory, bitnet-gpu's commands take it without -m "
                            "(bitnet-gpu generate -p TEXT)\n");
        return;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "repo", o->repo);
    cJSON_AddStringToObject(j, "file", o->file);
    cJSON_AddStringToObject(j, "revision", o->revision);
    cJSON_AddStringToObject(j, "path", dest);
    cJSON_AddNumberToObject(j, "bytes", (double)file_size(dest));
    cJSON_AddStringToObject(j, "sha256", sha);
    cJSON_AddBoolToObject(j, "verified", *hub->sha256 != 0);
    cJSON_AddBoolToObject(j, "downloaded", downloaded);
    cJSON_AddNumberToObject(j, "resumed_from", (double)resumed_from);
    cJSON_AddNumberToObject(j, "seconds", secs);
    bn_print_json(j, false);
}

int bn_cmd_download(int argc, char **argv) {
    options o;
    bool help = false;
    int rc = parse(argc, argv, &o, &help);
    if (help) usage(stdout);
    if (help || rc) return rc;
    const double t0 = bn_now_ms();
    const char *endpoint_env = getenv("HF_ENDPOINT"), *token = getenv("HF_TOKEN");
    char endpoint[1024];
    snprintf(endpoint, sizeof endpoint, "%s", endpoint_env && *endpoint_env ? endpoint_env : "https://huggingface.co");
    for (size_t n = strlen(endpoint); n > 0 && endpoint[n - 1] == '/'; n--) endpoint[n - 1] = 0;
    if (token && !*token) token = NULL;
    // Progress only for a person watching; --json and logs stay quiet.
    const bool chatty = !o.json && isatty(STDERR_FILENO);

    const char *base = strrchr(o.file, '/') ? strrchr(o.file, '/') + 1 : o.file;
    char dest[4096], part[4200], sha[65] = "";
    snprintf(dest, sizeof dest, "%s/%s", o.dir, base);
    snprintf(part, sizeof part, "%s.part", dest);
    bn_error err;
    bn_hub_file hub;
    if (bn_http_init(&err) || bn_hub_lookup(endpoint, o.repo, o.revision, o.file, token, &hub, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    if (!*hub.sha256)
        fprintf(stderr, "warning: %s publishes no SHA-256 for %s/%s (not an LFS file): it will not "
                        "be verified\n", endpoint, o.repo, o.file);
    if (file_size(dest) >= 0) { // there already: done if it is the hub's file
        if (verify(dest, &hub, sha, &err)) {
            fprintf(stderr, "error: %s exists and is not the hub's file (%s); remove it to download again\n",
                    dest, err.msg);
            return 1;
        }
        if (chatty) fprintf(stderr, "download: %s is already there and matches the hub\n", dest);
        report(&o, dest, &hub, sha, 0, false, (bn_now_ms() - t0) / 1e3);
        return 0;
    }
    if (mkdir_p(o.dir)) {
        fprintf(stderr, "error: cannot create %s: %s\n", o.dir, strerror(errno));
        return 1;
    }
    if (chatty) {
        char size[32];
        bn_format_bytes((double)hub.size, size, sizeof size);
        fprintf(stderr, "download: %s/%s (%s) -> %s\n", o.repo, o.file, hub.size >= 0 ? size : "size unknown", dest);
    }
    int64_t resumed_from = 0;
    if (fetch_all(&hub, token, part, chatty, &resumed_from, &err)) {
        fprintf(stderr, "error: %s (%s keeps what arrived: run the same command again to resume)\n",
                err.msg, part);
        return 1;
    }
    if (chatty) fprintf(stderr, "download: checking the SHA-256\n");
    if (verify(part, &hub, sha, &err)) {
        unlink(part); // corrupt or another file's bytes: resuming it cannot help
        fprintf(stderr, "error: %s; the download is deleted\n", err.msg);
        return 1;
    }
    if (rename(part, dest)) {
        fprintf(stderr, "error: renaming %s to %s: %s\n", part, dest, strerror(errno));
        return 1;
    }
    if (chatty) fprintf(stderr, "download: done, %s (SHA-256 %s)\n", dest, *hub.sha256 ? "verified" : "not published");
    report(&o, dest, &hub, sha, resumed_from, true, (bn_now_ms() - t0) / 1e3);
    return 0;
}
