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
        {"bench -m x.gguf --temp 0.5", "sampling flags (--temp, --top-k, ...) only with --concurrency"},
        {"bench -m x.gguf --chat", "bench does not use --chat"},
        {"bench -m x.gguf -f prompt.txt", "bench does not use -f"},
        {"bench -m x.gguf --seed 3", "sampling flags (--temp, --top-k, ...) only with --concurrency"},
        {"generate -m x.gguf -p hi -r 3", "generate does not use -r"},
        {"bench -m x.gguf --no-cpu-start", "bench does not use --no-cpu-start"}, // bench times one backend
        {"serve -m x.gguf --no-cpu-start", "serve does not use --no-cpu-start"},
        {"generate -m x.gguf -p hi --no-cpu-start=1", "error: --no-cpu-start does not take a value"},
        {"generate -m x.gguf -p hi --system 'be brief'", "--system needs --chat"},
        {"generate -m x.gguf -p hi --logprobs 2", "--logprobs needs --json"},
        {"generate -m x.gguf -p hi --json --logprobs 21", "--logprobs expects an integer in 0..20"},
        {"chat -m x.gguf --logprobs 2", "chat does not use --logprobs"},
        // Other usage errors: exit 2 too, wherever they are found.
        {"generate -m x.gguf -p hi --backend gpu", "--backend expects one of auto|cpu|cuda|reference"},
        {"generate -m x.gguf -p hi --cpu-kernels sse", "--cpu-kernels expects"},
        {"generate -m x.gguf -p hi --lm-head q4", "--lm-head expects"},
        {"generate -m x.gguf -p hi -t 0", "-t expects an integer"},
        {"generate -m x.gguf -p hi -c", "-c needs a value"},
        {"generate -m x.gguf -p hi -f prompt.txt", "-p and -f both give the prompt"},
        {"generate -m x.gguf", "generate needs a prompt"},
        {"generate -m x.gguf -p hi stray", "unknown argument 'stray'"},
        {"generate -m x.gguf -p hi --logit-bias 5", "--logit-bias expects TOKEN_ID+BIAS"},
        {"generate -m x.gguf -p hi -l 5+inf", "-l expects TOKEN_ID+BIAS"},
        {"generate -m x.gguf -p hi -l x+1", "-l expects TOKEN_ID+BIAS"},
        {"generate -m x.gguf -p hi --chat-template chatml", "--chat-template expects one of bitnet|llama3|falcon3"},
        {"generate -m x.gguf -p hi --chat-template llama3", "--chat-template needs --chat"},
        {"perplexity -m x.gguf -f t.txt --chat-template llama3", "perplexity does not use --chat-template"},
        {"generate -m x.gguf -p hi -l 5-1e39", "-l expects TOKEN_ID+BIAS"}, // overflows: not a ban
        {"generate -m x.gguf -p hi --frequency-penalty x", "--frequency-penalty expects a number"},
        {"bench -m x.gguf -r 0", "-r expects an integer in 1..1000"},
        // --flag=VALUE: the same checks as with the value apart.
        {"generate -m x.gguf -p hi --greedy=1", "error: --greedy does not take a value"},
        {"generate -m x.gguf -p hi --json=yes", "error: --json does not take a value"},
        {"generate -m x.gguf -p hi --top-k=-1", "--top-k expects an integer"},
        {"generate -m x.gguf -p hi --bogus=3", "unknown flag '--bogus'"},
        {"bench -m x.gguf --temp=0.5", "sampling flags (--temp, --top-k, ...) only with --concurrency"},
        {"tokenize -p hi", "give exactly one of -m MODEL and --tokenizer FILE"},
        {"inspect", "no model file given"},
        {"make-model", "-o FILE is required"},
        {"nonsense-command", "nonsense-command"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) expect_error(cases[i][0], 2, cases[i][1]);
}

// make-model, tokenize, inspect and download parse with getopt_long (bn_getopt):
// the same mistakes read as in generate's parser, exit 2, before any file is opened.
static void test_getopt_commands_errors(void **state) {
    (void)state;
    static const char *cases[][2] = {
        {"make-model -o x.gguf --bogus 1", "error: unknown flag '--bogus' (see bitnet-gpu make-model --help)"},
        {"make-model -o x.gguf --hidden", "error: --hidden needs a value"},
        {"make-model -o x.gguf --layers abc", "error: --layers expects an integer in 0..1024, got 'abc'"},
        {"make-model -o x.gguf --seed -1", "error: --seed expects a non-negative integer, got '-1'"},
        {"make-model -o x.gguf stray", "error: unknown argument 'stray' (see bitnet-gpu make-model --help)"},
        {"make-model -o x.gguf --hid 256", "error: unknown flag '--hid'"}, // no GNU abbreviations
        {"make-model -o", "error: -o needs a value"},
        {"tokenize -m x.gguf -p hi --bogus", "error: unknown flag '--bogus' (see bitnet-gpu tokenize --help)"},
        {"tokenize -m x.gguf -p", "error: -p needs a value"},
        {"tokenize -m x.gguf -p hi stray", "error: unknown argument 'stray' (see bitnet-gpu tokenize --help)"},
        {"tokenize -m x.gguf -p hi -- stray", "error: unknown argument 'stray'"},
        {"tokenize -m x.gguf -p hi --json=1", "error: --json does not take a value"},
        {"tokenize -x", "error: unknown flag '-x' (see bitnet-gpu tokenize --help)"},
        {"inspect x.gguf --bogus", "error: unknown flag '--bogus' (see bitnet-gpu inspect --help)"},
        {"inspect -m", "error: -m needs a value"},
        {"inspect x.gguf y.gguf", "error: unknown argument 'y.gguf' (see bitnet-gpu inspect --help)"},
        {"download --frobnicate", "error: unknown flag '--frobnicate' (see bitnet-gpu download --help)"},
        {"download -o", "error: -o needs a value"},
        {"download --revision", "error: --revision needs a value"},
        {"download a/b c d", "error: unknown argument 'd' (see bitnet-gpu download --help)"},
        // the run commands' parser, in the same words
        {"generate -m x.gguf -p hi --bogus", "error: unknown flag '--bogus' (see bitnet-gpu generate --help)"},
        {"generate -m x.gguf -p hi -t +4", "error: -t expects an integer in 1..1024, got '+4'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) expect_error(cases[i][0], 2, cases[i][1]);
    // --help and -h: the usage on stdout, nothing on stderr, exit 0, whatever follows
    static const char *helps[] = {"make-model --help", "make-model -o x -h --bogus", "tokenize -h",
                                  "inspect --help", "download -h", "download a/b --help"};
    for (size_t i = 0; i < sizeof helps / sizeof helps[0]; i++) {
        cli_result *r = run_expect(helps[i], 0);
        char want[64];
        snprintf(want, sizeof want, "usage: bitnet-gpu %.*s ", (int)strcspn(helps[i], " "), helps[i]);
        assert_int_equal(strncmp(r->out, want, strlen(want)), 0);
        assert_string_equal(r->err, "");
        free(r);
    }
}

// Valid combinations: flags in any order, --flag=VALUE, -fVALUE, positional
// arguments anywhere and after "--", under POSIXLY_CORRECT too.
static void test_getopt_commands_accept(void **state) {
    (void)state;
    char path[64], args[512];
    bn_tmp_path(path, sizeof path, "cli_mm");
    snprintf(args, sizeof args, "make-model --layers=1 --seed 3 --output '%s' --preset tiny", path);
    free(run_expect(args, 0));
    snprintf(args, sizeof args, "tokenize --no-bos -p hi --json -m'%s'", path);
    cli_result *a = run_expect(args, 0);
    snprintf(args, sizeof args, "tokenize --model='%s' --prompt hi --no-bos --json", path);
    cli_result *b = run_expect(args, 0);
    assert_string_equal(a->out, b->out);
    assert_non_null(strstr(a->out, "\"ids\":["));
    snprintf(args, sizeof args, "inspect --json '%s'", path);
    cli_result *c = run_expect(args, 0);
    // The same report, the model given each way; the last run has POSIXLY_CORRECT
    // set, which would end a permuting scan at the model.
    static const char *forms[][2] = {{"", " --json"}, {"--json -m ", ""}, {"--json -- ", ""}, {"", " --json"}};
    for (int i = 0; i < 4; i++) {
        if (i == 3) setenv("POSIXLY_CORRECT", "1", 1);
        snprintf(args, sizeof args, "inspect %s'%s'%s", forms[i][0], path, forms[i][1]);
        cli_result *d = run_expect(args, 0);
        assert_string_equal(d->out, c->out);
        free(d);
    }
    unsetenv("POSIXLY_CORRECT");
    unlink(path);
    free(a);
    free(b);
    free(c);
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
    cJSON *joined = generate_json(model, "--n-predict=3 --ctx-size=64 --seed=7 --temp=0.9 --n-gpu-layers=99", r);
    assert_non_null(strstr(r->err, "context 64"));
    char *a = cJSON_PrintUnformatted(cJSON_GetObjectItem(ours, "generated_ids"));
    char *b = cJSON_PrintUnformatted(cJSON_GetObjectItem(theirs, "generated_ids"));
    char *c = cJSON_PrintUnformatted(cJSON_GetObjectItem(joined, "generated_ids"));
    assert_string_equal(a, b);
    assert_string_equal(a, c);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(theirs, "generated_ids")), 3);
    free(a);
    free(b);
    free(c);
    cJSON_Delete(ours);
    cJSON_Delete(theirs);
    cJSON_Delete(joined);
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
        cmocka_unit_test(test_getopt_commands_errors),
        cmocka_unit_test(test_getopt_commands_accept),
        cmocka_unit_test(test_llama_cpp_spellings),
        cmocka_unit_test(test_threads_capped),
        cmocka_unit_test(test_cpu_kernels_reported),
        cmocka_unit_test(test_write_errors_fail),
        cmocka_unit_test(test_tokenize_reads_stdin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
