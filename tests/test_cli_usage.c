// test_cli_usage.c - the bitnet-gpu command line's contract with a user: a flag
// a command does not use is an error, every usage error exits 2, llama.cpp's
// spellings work, -t is capped at the CPUs there are, stdin works wherever a
// file does, a failed write is a failed run, and the output says which CPU
// kernels ran.
#include <cjson/cJSON.h>
#include <stdbool.h>

#include "cli_util.h"

// A flag a command does not use is a usage error, as every other one: exit 2.
// Parsing fails before any model is opened, so these need no fixture.
static void test_usage_errors_exit_2(void **state) {
    (void)state;
    static const char *cases[][2] = {
        {"chat -m x.gguf -f prompt.txt", "chat does not use -f"},
        {"chat -m x.gguf --json", "chat does not use --json"},
        {"chat -m x.gguf --chat", "chat does not use --chat"},
        {"chat -m x.gguf --no-bos", "chat does not use --no-bos"},
        {"bench -m x.gguf --backend cpu", "bench does not use --backend"},
        {"bench -m x.gguf --temp 0.5", "bench does not use --temp"},
        {"bench -m x.gguf --chat", "bench does not use --chat"},
        {"bench -m x.gguf -f prompt.txt", "bench does not use -f"},
        {"bench -m x.gguf --seed 3", "bench does not use --seed"},
        {"generate -m x.gguf -p hi -r 3", "generate does not use -r"},
        {"generate -m x.gguf -p hi --system 'be brief'", "--system needs --chat"},
        // Other usage errors: exit 2 too, wherever they are found.
        {"generate -m x.gguf -p hi --backend gpu", "--backend expects one of auto|cpu|cuda"},
        {"generate -m x.gguf -p hi --cpu-kernels sse", "--cpu-kernels expects"},
        {"generate -m x.gguf -p hi --lm-head q4", "--lm-head expects"},
        {"generate -m x.gguf -p hi -t 0", "-t expects an integer"},
        {"generate -m x.gguf -p hi -c", "-c needs a value"},
        {"generate -m x.gguf -p hi -f prompt.txt", "-p and -f both give the prompt"},
        {"generate -m x.gguf", "generate needs a prompt"},
        {"generate -p hi", "generate needs -m MODEL"},
        {"generate -m x.gguf -p hi stray", "unknown argument 'stray'"},
        {"bench -m x.gguf -r 0", "-r expects an integer in 1..1000"},
        {"tokenize -p hi", "give exactly one of -m MODEL and --tokenizer FILE"},
        {"inspect", "no model file given"},
        {"make-model", "-o FILE is required"},
        {"nonsense-command", "nonsense-command"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) expect_error(cases[i][0], 2, cases[i][1]);
}

// Runs a generation and returns its --json result (the caller deletes it).
static cJSON *generate_json(const char *model, const char *extra, cli_result *r) {
    char args[9000];
    snprintf(args, sizeof args, "generate -m '%s' -p '2+2=' --json %s", model, extra);
    run_cli(args, r);
    if (r->status) fprintf(stderr, "args: %s\nstderr: %s\n", args, r->err);
    assert_int_equal(r->status, 0);
    cJSON *j = cJSON_Parse(r->out);
    assert_non_null(j);
    return j;
}

static void test_llama_cpp_spellings(void **state) {
    (void)state;
    BN_REQUIRE_FIXTURE(model, "tiny-a/tiny-a.gguf");
    cli_result *r = malloc(sizeof *r);
    cJSON *ours = generate_json(model, "-n 3 -c 64 --seed 7 --temp 0.9", r);
    cJSON *theirs = generate_json(model, "--n-predict 3 --ctx-size 64 -s 7 --temp 0.9 -ngl 99", r);
    assert_non_null(strstr(r->err, "note: -ngl is accepted for llama.cpp's sake and ignored"));
    assert_non_null(strstr(r->err, "context 64"));
    char *a = cJSON_PrintUnformatted(cJSON_GetObjectItem(ours, "generated_ids"));
    char *b = cJSON_PrintUnformatted(cJSON_GetObjectItem(theirs, "generated_ids"));
    assert_string_equal(a, b);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(theirs, "generated_ids")), 3);
    free(a);
    free(b);
    cJSON_Delete(ours);
    cJSON_Delete(theirs);
    free(r);
}

// A generation on tiny-a whose stderr says `note`; its --json result (the caller
// deletes it).
static cJSON *generate_noting(const char *extra, const char *note) {
    BN_REQUIRE_FIXTURE(model, "tiny-a/tiny-a.gguf");
    cli_result *r = malloc(sizeof *r);
    cJSON *j = generate_json(model, extra, r);
    if (!strstr(r->err, note)) fprintf(stderr, "no '%s' in:\n%s", note, r->err);
    assert_non_null(strstr(r->err, note));
    free(r);
    return j;
}

// More threads than CPUs only wait for each other: -t is capped, with a note.
static void test_threads_capped(void **state) {
    (void)state;
    cJSON_Delete(generate_noting("-n 2 --greedy -t 1000", "note: -t 1000 is more than the"));
}

// The kernel set that ran is on stderr and in the JSON.
static void test_cpu_kernels_reported(void **state) {
    (void)state;
    cJSON *j = generate_noting("-n 2 --greedy --backend cpu --cpu-kernels scalar", "CPU kernels scalar");
    assert_string_equal(cJSON_GetObjectItem(j, "cpu_kernels")->valuestring, "scalar");
    cJSON_Delete(j);
}

// Text to a full disk or a closed stdout is a failure with one error line.
static void test_write_errors_fail(void **state) {
    (void)state;
    BN_REQUIRE_FIXTURE(model, "tiny-a/tiny-a.gguf");
    char args[9000];
    static const char *outputs[] = {">/dev/full", ">&-"};
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof args, "generate -m '%s' -p hi -n 4 --greedy %s", model, outputs[i]);
        expect_error(args, 1, "writing the generated text failed");
        snprintf(args, sizeof args, "generate -m '%s' -p hi -n 4 --greedy --json %s", model, outputs[i]);
        expect_error(args, 1, "writing to standard output failed");
        snprintf(args, sizeof args, "tokenize -m '%s' -p hi %s", model, outputs[i]);
        expect_error(args, 1, "writing to standard output failed");
        snprintf(args, sizeof args, "inspect '%s' %s", model, outputs[i]);
        expect_error(args, 1, "writing to standard output failed");
    }
}

// `tokenize -f -` reads stdin, as `generate -f -` does.
static void test_tokenize_reads_stdin(void **state) {
    (void)state;
    BN_REQUIRE_FIXTURE(model, "tiny-a/tiny-a.gguf");
    char path[] = "/tmp/bn_cli_text_XXXXXX";
    int fd = mkstemp(path);
    assert_true(write(fd, "hello world", 11) == 11);
    close(fd);
    char args[9000];
    snprintf(args, sizeof args, "tokenize -m '%s' -f - <'%s'", model, path);
    cli_result *from_stdin = run_expect(args, 0);
    snprintf(args, sizeof args, "tokenize -m '%s' -p 'hello world'", model);
    cli_result *from_flag = run_expect(args, 0);
    unlink(path);
    assert_string_equal(from_stdin->out, from_flag->out);
    assert_true(strlen(from_flag->out) > 1);
    free(from_stdin);
    free(from_flag);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_errors_exit_2),
        cmocka_unit_test(test_llama_cpp_spellings),
        cmocka_unit_test(test_threads_capped),
        cmocka_unit_test(test_cpu_kernels_reported),
        cmocka_unit_test(test_write_errors_fail),
        cmocka_unit_test(test_tokenize_reads_stdin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
