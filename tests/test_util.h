// test_util.h - shared helpers for the cmocka tests.
//
// Fixtures are reference data produced outside this project (../shared/fixtures,
// see its README). They are never copied into the repository: tests find them
// through BITNET_FIXTURES (set by CTest from the CMake option of the same name)
// and skip, saying so, when they are absent.
#ifndef BN_TEST_UTIL_H
#define BN_TEST_UTIL_H

#include <fnmatch.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "bitnet.h"

// CTest shows a test as skipped only when it exits 77 (SKIP_RETURN_CODE, set for
// every test); cmocka's exit status is just the number of failures, so a test
// executable whose tests all skipped would pass as "100% tests passed". So each
// skip() is counted, and an executable that failed nothing but skipped something
// exits 77: CTest lists it under "did not run". A failure still exits 1, and the
// test's log says which of its tests ran.
static int bn_tests_skipped;
#undef skip
#define skip() (bn_tests_skipped++, _skip(__FILE__, __LINE__))

static inline int bn_tests_exit_status(int n_failed, size_t n_tests) {
    if (n_failed) return 1;
    if (!bn_tests_skipped) return 0;
    fprintf(stderr, "SKIPPED %d of %zu tests: exit 77, so CTest shows this executable as skipped\n",
            bn_tests_skipped, n_tests);
    return 77;
}
// BITNET_TEST_FILTER=PATTERN (cmocka's * and ?) runs only the matching tests of
// an executable: gpu-check.sh runs test_cuda's decode attention alone under
// racecheck, test-aarch64.sh test_parity's token-by-token goldens alone under qemu.
// A pattern that matches none of them fails (exit 1), so a renamed test cannot
// leave such a run empty and passing.
static inline int bn_tests_filter_from_env(const struct CMUnitTest *tests, size_t n) {
    const char *filter = getenv("BITNET_TEST_FILTER");
    if (!filter) return 0;
    cmocka_set_test_filter(filter);
    for (size_t i = 0; i < n; i++)
        if (fnmatch(filter, tests[i].name, 0) == 0) return 0;
    fprintf(stderr, "BITNET_TEST_FILTER=%s matches none of this executable's tests\n", filter);
    return 1;
}
#undef cmocka_run_group_tests
#define cmocka_run_group_tests(tests, setup, teardown)                                    \
    (bn_tests_filter_from_env(tests, sizeof(tests) / sizeof((tests)[0]))                  \
         ? 1                                                                              \
         : bn_tests_exit_status(_cmocka_run_group_tests(#tests, tests, sizeof(tests) / sizeof((tests)[0]), \
                                                        setup, teardown),                \
                                sizeof(tests) / sizeof((tests)[0])))

// One greedy step of a reference run (bitnet.cpp's golden files, the trained
// model's Python reference): the top-1 minus top-2 logit and the top 10.
typedef struct bn_ref_step {
    float margin;
    int32_t top_id[10];
    float top_logit[10];
} bn_ref_step;

// Full path of a fixture file in buf, or NULL when it does not exist.
static inline const char *bn_fixture_path(const char *rel, char *buf, size_t n) {
    const char *dir = getenv("BITNET_FIXTURES");
    if (!dir || !*dir) dir = "../shared/fixtures";
    snprintf(buf, n, "%s/%s", dir, rel);
    struct stat st;
    return stat(buf, &st) == 0 ? buf : NULL;
}

// Use inside a test: skips it with a clear message when the fixture is missing,
// or fails when BITNET_REQUIRE_FIXTURES=1 (scripts/gpu-check.sh: on a GPU machine
// a missing fixture must not pass as a skip).
#define BN_REQUIRE_FIXTURE(var, rel)                                                   \
    char var##_buf[4096];                                                              \
    const char *var = bn_fixture_path(rel, var##_buf, sizeof var##_buf);               \
    if (!var) {                                                                        \
        const char *req_ = getenv("BITNET_REQUIRE_FIXTURES");                          \
        if (req_ && strcmp(req_, "1") == 0)                                            \
            fail_msg("fixture %s not found (BITNET_REQUIRE_FIXTURES=1)", rel);         \
        fprintf(stderr, "SKIP: fixture %s not found (set BITNET_FIXTURES)\n", rel);    \
        skip();                                                                        \
    }

// Use inside a test that needs a GPU: why is NULL when the probe (a backend's
// probe, bn_cuda_probe_device) found a usable device, else the reason. Skips the
// test, printing skip_fmt, or fails with fail_fmt when BITNET_REQUIRE_GPU=1
// (scripts/gpu-check.sh: on a GPU machine no GPU must not pass as a skip). Both
// formats take why as their one %s.
#define BN_REQUIRE_GPU(why, fail_fmt, skip_fmt)                                        \
    do {                                                                               \
        const char *why_ = (why);                                                      \
        if (why_) {                                                                    \
            const char *req_ = getenv("BITNET_REQUIRE_GPU");                           \
            if (req_ && strcmp(req_, "1") == 0) fail_msg(fail_fmt, why_);              \
            fprintf(stderr, skip_fmt, why_);                                           \
            skip();                                                                    \
        }                                                                              \
    } while (0)

#ifdef BN_SOURCE_DIR
// A file the repository ships (models/, tests/data/, tests/golden/), under
// $BITNET_SOURCE_DIR when set (a copy of the tree elsewhere, as on the GPU
// machine: scripts/gpu-check.sh), else the source tree the test was built from.
static inline const char *bn_shipped_path(const char *rel, char *buf, size_t n) {
    const char *root = getenv("BITNET_SOURCE_DIR");
    snprintf(buf, n, "%s/%s", root && *root ? root : BN_SOURCE_DIR, rel);
    return buf;
}

// The model that ships with the project (models/bitnet-austen-6m.gguf) as an
// engine; NULL, with the reason on stderr, where it does not load.
static inline bn_engine *bn_shipped_engine(void) {
    char path[4096];
    bn_engine *e;
    bn_error err;
    if (!bn_engine_load(bn_shipped_path("models/bitnet-austen-6m.gguf", path, sizeof path), NULL, &e, &err)) return e;
    fprintf(stderr, "the shipped model: %s\n", err.msg);
    return NULL;
}
#endif

// A new empty file /tmp/bn_test_TAG_PID_XXXXXX; its path is in buf.
static inline char *bn_tmp_path(char *buf, size_t n, const char *tag) {
    snprintf(buf, n, "/tmp/bn_test_%s_%d_XXXXXX", tag, (int)getpid());
    int fd = mkstemp(buf);
    assert_true(fd >= 0);
    close(fd);
    return buf;
}

// Reads a whole file (malloc'd, NUL-terminated); NULL on failure.
static inline char *bn_read_file(const char *path, size_t *len) {
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = sz >= 0 ? malloc((size_t)sz + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[sz] = 0;
        if (len) *len = (size_t)sz;
    }
    return buf;
}

// Cases a Python reference wrote (tests/*_reference.py) into the file that
// env_var names (CTest sets it when the Python tests are on; unset, the test
// skips, saying so): lines "K HEX", K one letter, HEX the case's bytes.
typedef struct bn_reference {
    FILE *f;
    const char *script; // for messages
    char *line, *bytes; // the line read, and its bytes (NUL after them)
    size_t n, max;      // bytes in it, and the most a line may hold
    char kind;          // its letter
} bn_reference;

static inline void bn_reference_open(bn_reference *r, const char *env_var, const char *script, size_t max) {
    const char *path = getenv(env_var);
    if (!path || !*path) {
        fprintf(stderr, "SKIP: %s is not set (CTest sets it when the Python tests are on)\n", env_var);
        skip();
    }
    *r = (bn_reference){.f = fopen(path, "r"), .script = script, .line = malloc(2 * max + 4),
                        .bytes = malloc(max + 1), .max = max};
    if (!r->f) fail_msg("cannot read %s (written by tests/%s)", path, script);
}

// The next line into r (false at the end of the file).
static inline bool bn_reference_next(bn_reference *r) {
    if (!fgets(r->line, (int)(2 * r->max + 4), r->f)) return false;
    const size_t len = strcspn(r->line + 2, "\n");
    if (r->line[1] != ' ' || len % 2 || len / 2 > r->max) fail_msg("a malformed line in %s's file", r->script);
    r->kind = r->line[0];
    r->n = len / 2;
    for (size_t i = 0; i < r->n; i++) {
        const char hi = r->line[2 + 2 * i], lo = r->line[3 + 2 * i];
        r->bytes[i] = (char)((hi <= '9' ? hi - '0' : hi - 'a' + 10) << 4 | (lo <= '9' ? lo - '0' : lo - 'a' + 10));
    }
    r->bytes[r->n] = 0;
    return true;
}

static inline void bn_reference_close(bn_reference *r) {
    fclose(r->f);
    free(r->line);
    free(r->bytes);
}

// How many scenarios a randomized test runs, BITNET_RANDOM_SCENARIOS (default
// n), and from which seed, BITNET_RANDOM_SEED (default 1): to run more, or to
// replay the one that failed.
static inline int bn_random_scenarios(int n, uint64_t *first_seed) {
    const char *count = getenv("BITNET_RANDOM_SCENARIOS"), *seed = getenv("BITNET_RANDOM_SEED");
    *first_seed = seed ? strtoull(seed, NULL, 10) : 1;
    return count ? atoi(count) : n;
}

// Deterministic test RNG (xorshift64*), so random-shape tests are reproducible.
static inline uint64_t bn_test_rand(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

#endif
