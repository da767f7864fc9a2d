// cli.c - flag parsing shared by generate, chat and bench.
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static int parse_int(const char *flag, const char *s, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "error: %s expects an integer in %ld..%ld, got '%s'\n", flag, lo, hi, s);
        return 2;
    }
    *out = (int)v;
    return 0;
}

static int parse_float(const char *flag, const char *s, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v)) {
        fprintf(stderr, "error: %s expects a number, got '%s'\n", flag, s);
        return 2;
    }
    *out = v;
    return 0;
}

static int parse_u64(const char *flag, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-') {
        fprintf(stderr, "error: %s expects a non-negative integer, got '%s'\n", flag, s);
        return 2;
    }
    *out = v;
    return 0;
}

void bn_print_run_usage(const char *cmd, const char *synopsis) {
    printf("usage: bitnet-gpu %s %s\n\n"
           "  -m, --model FILE       GGUF model (I2_S BitNet b1.58)\n"
           "  -p, --prompt TEXT      prompt text\n"
           "  -f, --file FILE        read the prompt from FILE (- for stdin)\n"
           "  -n, --n-predict N      tokens to generate (generate: 128; chat: until the turn ends)\n"
           "  --greedy               greedy decoding (same as --temp 0)\n"
           "  --temp T --top-k K --top-p P --min-p P --repeat-penalty R --seed S\n"
           "                         sampling (defaults 0.8, 40, 0.95, 0.05, 1.0, 42)\n"
           "  --backend B            auto (default), cpu or cuda\n"
           "  -t, --threads N        CPU threads (default: physical cores)\n"
           "  -c, --ctx N            context length (default: the model's)\n"
           "  --tokenizer FILE       use a tokenizer.json instead of the GGUF vocabulary\n"
           "  --lm-head q8|f16       int8 LM head (faster, approximate) or exact f16 (default)\n"
           "  --cpu-kernels K        auto, scalar, avx2, avx512\n"
           "  --chat                 wrap the prompt in the 2B-4T chat template\n"
           "  --system TEXT          system prompt for --chat and chat\n"
           "  --no-bos               do not add the BOS token\n"
           "  --json                 print one JSON object at the end\n",
           cmd, synopsis);
}

int bn_parse_run_flags(int argc, char **argv, bn_run_flags *f, bool *help) {
    *f = (bn_run_flags){.n_predict = -1, .sampling = bn_sampling_default()};
    f->session.backend = "auto";
    *help = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        // Flags without a value.
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            *help = true;
            return 0;
        }
        if (!strcmp(a, "--greedy")) { f->sampling.temperature = 0; continue; }
        if (!strcmp(a, "--json")) { f->json = true; continue; }
        if (!strcmp(a, "--chat")) { f->chat = true; continue; }
        if (!strcmp(a, "--no-bos")) { f->no_bos = true; continue; }
        // Flags with a value.
        if (i + 1 >= argc) {
            fprintf(stderr, "error: unknown flag or missing value: '%s'\n", a);
            return 2;
        }
        const char *v = argv[++i];
        int rc = 0;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) f->model = v;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) f->prompt = v;
        else if (!strcmp(a, "-f") || !strcmp(a, "--file")) f->prompt_file = v;
        else if (!strcmp(a, "--system")) f->system = v;
        else if (!strcmp(a, "--tokenizer")) f->tokenizer = v;
        else if (!strcmp(a, "--backend")) f->session.backend = v;
        else if (!strcmp(a, "--cpu-kernels")) f->session.cpu_kernels = v;
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) rc = parse_int(a, v, 0, INT_MAX, &f->n_predict);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) rc = parse_int(a, v, 1, 1024, &f->session.n_threads);
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) rc = parse_int(a, v, 1, INT_MAX, &f->session.n_ctx);
        else if (!strcmp(a, "--temp")) rc = parse_float(a, v, &f->sampling.temperature);
        else if (!strcmp(a, "--top-k")) rc = parse_int(a, v, 0, INT_MAX, &f->sampling.top_k);
        else if (!strcmp(a, "--top-p")) rc = parse_float(a, v, &f->sampling.top_p);
        else if (!strcmp(a, "--min-p")) rc = parse_float(a, v, &f->sampling.min_p);
        else if (!strcmp(a, "--repeat-penalty")) rc = parse_float(a, v, &f->sampling.repeat_penalty);
        else if (!strcmp(a, "--repeat-last-n")) rc = parse_int(a, v, 0, INT_MAX, &f->sampling.repeat_last_n);
        else if (!strcmp(a, "--seed")) rc = parse_u64(a, v, &f->sampling.seed);
        else if (!strcmp(a, "--lm-head")) {
            if (strcmp(v, "q8") && strcmp(v, "f16")) {
                fprintf(stderr, "error: --lm-head expects q8 or f16, got '%s'\n", v);
                return 2;
            }
            f->session.lm_head_q8 = !strcmp(v, "q8");
        } else {
            fprintf(stderr, "error: unknown flag '%s'\n", a);
            return 2;
        }
        if (rc) return rc;
    }
    bn_error err;
    if (bn_sampling_validate(&f->sampling, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 2;
    }
    return 0;
}

int bn_read_prompt_file(const char *path, char **out) {
    enum { MAX_PROMPT = 64 << 20 };
    *out = NULL;
    const bool use_stdin = !strcmp(path, "-");
    FILE *fp = use_stdin ? stdin : fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "error: cannot open prompt file '%s': %s\n", path, strerror(errno));
        return 1;
    }
    size_t n = 0, cap = 0;
    char *buf = NULL;
    const char *why = NULL;
    for (;;) {
        if (cap - n < 2) { // room for one more byte and the NUL
            if (cap > MAX_PROMPT) {
                why = "it is larger than 64 MiB";
                break;
            }
            const size_t bigger_cap = cap ? cap * 2 : 4096;
            char *bigger = realloc(buf, bigger_cap);
            if (!bigger) {
                why = "out of memory";
                break;
            }
            buf = bigger;
            cap = bigger_cap;
        }
        const size_t got = fread(buf + n, 1, cap - 1 - n, fp);
        n += got;
        if (got == 0) {
            if (ferror(fp)) why = strerror(errno);
            break;
        }
    }
    if (!use_stdin) fclose(fp);
    if (!why && n > MAX_PROMPT) why = "it is larger than 64 MiB";
    if (!why && memchr(buf, 0, n)) why = "it contains a NUL byte: it is not text";
    if (why) {
        fprintf(stderr, "error: cannot use prompt file '%s': %s\n", path, why);
        free(buf);
        return 1;
    }
    buf[n] = 0;
    *out = buf;
    return 0;
}

uint64_t bn_peak_rss_bytes(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)ru.ru_maxrss * 1024; // Linux reports KiB
}
