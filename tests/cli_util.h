// cli_util.h - running the bitnet-gpu binary (BITNET_CLI, set by CTest) from a
// cmocka test and checking what a user would see: the exit status, stdout, and
// exactly one `error:` line on stderr for a failure.
#ifndef BN_CLI_UTIL_H
#define BN_CLI_UTIL_H

#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

typedef struct {
    int status; // exit code
    char out[1 << 16];
    char err[1 << 14];
} cli_result;

// Runs `bitnet-gpu ARGS` (args already shell-quoted, and may redirect: stdin is
// /dev/null unless they say otherwise) capturing stdout and stderr.
static inline void run_cli(const char *args, cli_result *r) {
    const char *cli = getenv("BITNET_CLI");
    assert_non_null(cli);
    char err_path[] = "/tmp/bn_cli_err_XXXXXX";
    int fd = mkstemp(err_path);
    assert_true(fd >= 0);
    close(fd);
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "'%s' </dev/null %s 2>'%s'", cli, args, err_path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(r->out, 1, sizeof r->out - 1, p);
    r->out[n] = 0;
    int st = pclose(p);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    FILE *f = fopen(err_path, "r");
    n = f ? fread(r->err, 1, sizeof r->err - 1, f) : 0;
    r->err[n] = 0;
    if (f) fclose(f);
    unlink(err_path);
}

static inline int count_lines_starting(const char *s, const char *prefix) {
    int n = 0;
    for (const char *l = s; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        n += strncmp(l, prefix, strlen(prefix)) == 0;
    return n;
}

// Runs `bitnet-gpu ARGS` and expects exit `status` (stderr shown when not); the
// caller frees the result.
static inline cli_result *run_expect(const char *args, int status) {
    cli_result *r = malloc(sizeof *r);
    assert_non_null(r);
    run_cli(args, r);
    if (r->status != status)
        fprintf(stderr, "args: %s\nstatus %d (want %d)\nstderr: %s\n", args, r->status, status, r->err);
    assert_int_equal(r->status, status);
    return r;
}

// A failure: exit `status`, one `error:` line containing needle, no blank line.
static inline void expect_error(const char *args, int status, const char *needle) {
    cli_result *r = run_expect(args, status);
    const bool blank = r->err[0] == '\n' || strstr(r->err, "\n\n");
    if (!strstr(r->err, needle) || count_lines_starting(r->err, "error:") != 1 || blank)
        fprintf(stderr, "args: %s\nstderr: %s\n", args, r->err);
    assert_non_null(strstr(r->err, needle));
    assert_int_equal(count_lines_starting(r->err, "error:"), 1);
    assert_false(blank);
    free(r);
}

#endif
