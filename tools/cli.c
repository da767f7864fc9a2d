// cli.c - flag parsing shared by generate, chat, bench and serve: one table says each
// flag's spellings (ours and llama.cpp's), what it sets, which commands take it
// and its help line, so parsing, "this command does not take X" and --help agree.
// A long flag's value may follow it or be joined to it (--ctx-size=64), as getopt
// takes it; short flags take theirs as the next argument only.
// The other commands parse with getopt_long through bn_getopt, and every parser
// reports a mistake with the same helpers, in the same words.
#define _GNU_SOURCE // sched_getaffinity
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h" // BN_BACKEND_CHOICES: the registry's list of backend names

typedef enum {
    SWITCH,   // bool, no value
    GREEDY,   // no value: temperature 0
    STRING,   // const char *
    CHOICE,   // const char *, one of `choices`
    INT,      // int in lo..hi
    FLOAT,    // finite float
    U64,      // non-negative integer
    IGNORED,  // an integer, accepted for llama.cpp's sake and ignored with a note
    BIAS,     // TOKEN_ID+BIAS or TOKEN_ID-BIAS (llama.cpp's), one more each time
} flag_kind;

typedef struct {
    const char *names[4]; // spellings, ours first, then llama.cpp's; NULL-terminated
    unsigned group;       // BN_FLAGS_*; 0: every command
    flag_kind kind;
    size_t offset;        // in bn_run_flags
    uint64_t lo, hi;      // INT, IGNORED, U64
    const char *choices;  // CHOICE: "a|b|c"
    const char *arg;      // the value in --help ("" for none)
    const char *help;
} flag_def;

#define AT(field) offsetof(bn_run_flags, field)
static const flag_def flags[] = {
    {{"-m", "--model"}, 0, STRING, AT(model), 0, 0, NULL, "FILE",
     "GGUF model (a ternary model of a family the README lists; without -m: $BITNET_MODEL, else "
     "models/ggml-model-i2_s.gguf, else the 6M model that ships with bitnet-gpu)"},
    {{"-p", "--prompt"}, BN_FLAGS_PROMPT, STRING, AT(prompt), 0, 0, NULL, "TEXT", "prompt text"},
    {{"-f", "--file"}, BN_FLAGS_FILE, STRING, AT(prompt_file), 0, 0, NULL, "FILE",
     "read the prompt from FILE (- for stdin)"},
    {{"-n", "--n-predict"}, BN_FLAGS_PREDICT, INT, AT(n_predict), 0, INT_MAX, NULL, "N",
     "tokens to generate (generate: 128; chat: until the turn ends; bench: 4, 16 with --concurrency; serve: "
     "a request's max_tokens when it gives none, 0 the context's end; without -n OpenAI's 16 / the context's end)"},
    {{"-r", "--reps"}, BN_FLAGS_REPS, INT, AT(reps), 1, 1000, NULL, "N",
     "runs per backend (default 1; the first is cold, the table gives the best warm ones)"},
    {{"--greedy"}, BN_FLAGS_SAMPLING, GREEDY, 0, 0, 0, NULL, "", "greedy decoding (same as --temp 0)"},
    {{"--temp"}, BN_FLAGS_SAMPLING, FLOAT, AT(sampling.temperature), 0, 0, NULL, "T", "temperature (default 0.8)"},
    {{"--top-k"}, BN_FLAGS_SAMPLING, INT, AT(sampling.top_k), 0, INT_MAX, NULL, "K", "top-k (default 40; 0: off)"},
    {{"--top-p"}, BN_FLAGS_SAMPLING, FLOAT, AT(sampling.top_p), 0, 0, NULL, "P", "top-p (default 0.95; 1: off)"},
    {{"--min-p"}, BN_FLAGS_SAMPLING, FLOAT, AT(sampling.min_p), 0, 0, NULL, "P", "min-p (default 0.05; 0: off)"},
    {{"--repeat-penalty"}, BN_FLAGS_SAMPLING, FLOAT, AT(sampling.repeat_penalty), 0, 0, NULL, "R",
     "repetition penalty (default 1: off)"},
    {{"--repeat-last-n"}, BN_FLAGS_SAMPLING, INT, AT(sampling.repeat_last_n), 0, INT_MAX, NULL, "N",
     "tokens the penalties look back at (default 64)"},
    {{"--frequency-penalty"}, BN_FLAGS_SAMPLING, FLOAT, AT(sampling.frequency_penalty), 0, 0, NULL, "F",
     "taken off a token's logit per time it is in that window (default 0: off)"},
    {{"--presence-penalty"}, BN_FLAGS_SAMPLING, FLOAT, AT(sampling.presence_penalty), 0, 0, NULL, "P",
     "taken off the logit of every token in that window (default 0: off)"},
    {{"--logit-bias", "-l"}, BN_FLAGS_SAMPLING, BIAS, AT(logit_bias), 0, 0, NULL, "ID(+|-)B",
     "add B to (or take it from) token ID's logit; again for more tokens; ID-inf bans it"},
    {{"-s", "--seed"}, BN_FLAGS_SAMPLING, U64, AT(sampling.seed), 0, UINT64_MAX, NULL, "S",
     "random seed (default 42; serve: each request draws its own)"},
    {{"--backend"}, BN_FLAGS_BACKEND, CHOICE, AT(session.backend), 0, 0, BN_BACKEND_CHOICES, "B",
     "auto (default), cpu, cuda, or reference (the readable scalar forward pass: slow)"},
    {{"-ngl", "--n-gpu-layers", "--gpu-layers"}, BN_FLAGS_BACKEND, IGNORED, 0, 0, INT_MAX, NULL, "N",
     "accepted and ignored: the whole model runs on the --backend device"},
    {{"-t", "--threads"}, 0, INT, AT(session.n_threads), 1, 1024, NULL, "N",
     "CPU threads (default: physical cores; at most the CPUs available)"},
    {{"-c", "--ctx-size", "--ctx"}, 0, INT, AT(session.n_ctx), 1, INT_MAX, NULL, "N",
     "context length (default: the model's; perplexity: 512, its chunk)"},
    {{"--tokenizer"}, 0, STRING, AT(tokenizer), 0, 0, NULL, "FILE",
     "use a tokenizer.json instead of the GGUF vocabulary"},
    {{"--lm-head"}, 0, CHOICE, AT(lm_head), 0, 0, "q8|f16", "q8|f16",
     "int8 LM head (faster, approximate) or exact f16 (default)"},
    {{"--cpu-kernels"}, 0, CHOICE, AT(session.cpu_kernels), 0, 0, "auto|scalar|avx2|avx512|amx|neon", "K",
     "CPU kernel set: auto, scalar, avx2, avx512, amx (x86-64), neon (AArch64) (or $BITNET_CPU_KERNELS)"},
    {{"--chat-template"}, BN_FLAGS_TEMPLATE, CHOICE, AT(chat_template), 0, 0, "bitnet|llama3|falcon3", "NAME",
     "the chat format instead of the one the model file names: bitnet (2B-4T's), llama3 or falcon3"},
    {{"--chat"}, BN_FLAGS_CHAT, SWITCH, AT(chat), 0, 0, NULL, "", "wrap the prompt in the model's chat template"},
    {{"--system"}, BN_FLAGS_SYSTEM, STRING, AT(system), 0, 0, NULL, "TEXT",
     "system prompt (generate: with --chat)"},
    {{"--no-bos"}, BN_FLAGS_BOS, SWITCH, AT(no_bos), 0, 0, NULL, "", "do not add the BOS token"},
    {{"--json"}, BN_FLAGS_JSON, SWITCH, AT(json), 0, 0, NULL, "", "print one JSON document on stdout"},
    {{"--json-schema", "-j"}, BN_FLAGS_JSON_SCHEMA, STRING, AT(json_schema), 0, 0, NULL, "SCHEMA",
     "hold each reply to this JSON Schema (its text, or @FILE; '{\"type\":\"object\"}': any object)"},
    {{"--regex"}, BN_FLAGS_REGEX, STRING, AT(regex), 0, 0, NULL, "PATTERN",
     "hold each reply to this regular expression, matched whole (ECMA-262: core/json_regex.h)"},
    {{"--logprobs"}, BN_FLAGS_LOGPROBS, INT, AT(logprobs), 0, BN_TOP_LOGPROBS_MAX, NULL, "N",
     "with --json: each generated token's log-probability and its N likeliest alternatives' (0..20)"},
    {{"--lookup"}, BN_FLAGS_LOOKUP, INT, AT(lookup), 0, 32, NULL, "N",
     "prompt lookup decoding: draft up to N tokens a step from where the text's last few tokens came "
     "before, verified in one pass (the same tokens; fewer passes where the text repeats; default 0: off)"},
    {{"--model-draft", "-md"}, BN_FLAGS_DRAFT, STRING, AT(model_draft), 0, 0, NULL, "FILE",
     "speculative decoding: a smaller model with the same vocabulary drafts tokens, verified in one pass "
     "(the same tokens; fewer passes where it guesses right)"},
    {{"--draft-max", "--draft", "--draft-n"}, BN_FLAGS_LOOKUP, INT, AT(draft), 0, 32, NULL, "N",
     "tokens drafted a step at most: by -md's model (default 16), else by prompt lookup (as --lookup N)"},
    {{"--draft-p-min"}, BN_FLAGS_DRAFT, FLOAT, AT(draft_p_min), 0, 0, NULL, "P",
     "-md: stop a draft before a step whose likeliest token the draft model gives less than P (0..1, default 0.75)"},
    {{"--host"}, BN_FLAGS_SERVE, STRING, AT(host), 0, 0, NULL, "ADDR",
     "address to listen on (default 127.0.0.1; 0.0.0.0: every interface)"},
    {{"--port"}, BN_FLAGS_SERVE, INT, AT(port), 0, 65535, NULL, "N", "TCP port (default 8080; 0: any free one)"},
    {{"--parallel", "-np"}, BN_FLAGS_SERVE, INT, AT(parallel), 1, 1024, NULL, "N",
     "requests generated at once, batched (default 4); -c is the context of each"},
    {{"--api-key"}, BN_FLAGS_SERVE, STRING, AT(api_key), 0, 0, NULL, "KEY",
     "require \"Authorization: Bearer KEY\" on every request"},
    {{"--alias", "-a"}, BN_FLAGS_SERVE, STRING, AT(alias), 0, 0, NULL, "NAME",
     "the model's name in /v1/models and every response (default: the file's name)"},
    {{"--timeout"}, BN_FLAGS_SERVE, INT, AT(timeout), 1, 86400, NULL, "S",
     "close a connection idle for S seconds while it sends a request (default 30)"},
    {{"--no-cpu-start"}, BN_FLAGS_CPU_START, SWITCH, AT(no_cpu_start), 0, 0, NULL, "",
     "with a GPU backend, wait for it instead of starting on the CPU while it opens"},
    {{"--concurrency"}, BN_FLAGS_CONCURRENCY, STRING, AT(concurrency), 0, 0, NULL, "N,N,...",
     "aggregate tokens/s with this many streams batched, e.g. 1,4,16,64"},
    {{"--chunks"}, BN_FLAGS_PERPLEXITY, INT, AT(chunks), 1, INT_MAX, NULL, "N",
     "score at most N chunks of -c tokens (default: all the text has)"},
    {{"-b", "--batch-size"}, BN_FLAGS_PERPLEXITY, INT, AT(batch), 1, 65536, NULL, "N",
     "tokens one forward pass takes (default 128; its rows of logits are held at once)"},
};
#define N_FLAGS (sizeof flags / sizeof flags[0])

static const flag_def *find_flag(const char *arg) {
    for (size_t i = 0; i < N_FLAGS; i++)
        for (const char *const *n = flags[i].names; *n; n++)
            if (!strcmp(*n, arg)) return &flags[i];
    return NULL;
}

static bool is_choice(const char *choices, const char *v) {
    const size_t n = strlen(v);
    for (const char *c = choices; c; c = strchr(c, '|') ? strchr(c, '|') + 1 : NULL)
        if (!strncmp(c, v, n) && (c[n] == '|' || c[n] == 0) && n) return true;
    return false;
}

// --logit-bias ID+B / ID-B / ID-inf, as llama.cpp reads it, into f's list.
static int add_logit_bias(const char *a, const char *v, bn_run_flags *f) {
    char *end;
    errno = 0;
    const long id = *v >= '0' && *v <= '9' ? strtol(v, &end, 10) : -1;
    float bias = NAN;
    if (id >= 0 && !errno && id <= INT32_MAX && (*end == '+' || *end == '-')) {
        char *num_end;
        const char *num = end + 1;
        errno = 0;
        bias = strtof(num, &num_end); // "inf" is infinite without ERANGE; 1e39 overflows with it
        if (num_end == num || *num_end || errno || !(isfinite(bias) || (*end == '-' && bias == INFINITY))) bias = NAN;
        else if (*end == '-') bias = -bias;
    }
    if (isnan(bias)) {
        fprintf(stderr, "error: %s expects TOKEN_ID+BIAS or TOKEN_ID-BIAS (-inf bans the token), got '%s'\n", a, v);
        return 2;
    }
    if (f->n_logit_bias == BN_MAX_LOGIT_BIAS) {
        fprintf(stderr, "error: %s: at most %d of them\n", a, BN_MAX_LOGIT_BIAS);
        return 2;
    }
    f->logit_bias[f->n_logit_bias++] = (bn_logit_bias){(int32_t)id, bias};
    f->sampling.logit_bias = f->logit_bias;
    f->sampling.n_logit_bias = (size_t)f->n_logit_bias;
    return 0;
}

// Stores one flag's value; 0, or prints the error and returns 2.
static int set_value(const flag_def *d, const char *a, const char *v, bn_run_flags *f) {
    void *p = (char *)f + d->offset;
    switch (d->kind) {
    case STRING: *(const char **)p = v; return 0;
    case CHOICE:
        if (is_choice(d->choices, v)) return *(const char **)p = v, 0;
        fprintf(stderr, "error: %s expects one of %s, got '%s'\n", a, d->choices, v);
        return 2;
    case INT:
    case IGNORED:
    case U64: {
        uint64_t x;
        if (bn_cli_uint(a, v, d->lo, d->hi, &x)) return 2;
        if (d->kind == INT) *(int *)p = (int)x;
        else if (d->kind == U64) *(uint64_t *)p = x;
        else fprintf(stderr, "note: %s is accepted for llama.cpp's sake and ignored: the whole "
                             "model runs on the device --backend picks\n", a);
        return 0;
    }
    case FLOAT: {
        char *end;
        errno = 0;
        float x = strtof(v, &end);
        if (errno || end == v || *end || !isfinite(x)) {
            fprintf(stderr, "error: %s expects a number, got '%s'\n", a, v);
            return 2;
        }
        *(float *)p = x;
        return 0;
    }
    case BIAS: return add_logit_bias(a, v, f);
    case SWITCH:
    case GREEDY: break;
    }
    return 0;
}

// The CPUs this process may run on: threads beyond them only wait for each
// other (-t 1000 on 2 CPUs made a 4 ms prefill take 1153 ms).
static int cpus_available(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void print_usage(const char *cmd, unsigned accept, const char *synopsis) {
    printf("usage: bitnet-gpu %s %s\n\n", cmd, synopsis);
    for (size_t i = 0; i < N_FLAGS; i++) {
        const flag_def *d = &flags[i];
        if (d->group && !(accept & d->group)) continue;
        int col = printf("  ");
        for (const char *const *n = d->names; *n; n++) col += printf("%s%s", n == d->names ? "" : ", ", *n);
        col += printf("%s%s", *d->arg ? " " : "", d->arg);
        if (col > 32) { // a long flag: its help on the next line
            putchar('\n');
            col = 0;
        }
        printf("%*s%s\n", 34 - col, "", d->help);
    }
}

int bn_parse_run_flags(const char *cmd, unsigned accept, const char *synopsis, int argc, char **argv,
                       bn_run_flags *f, bool *help) {
    *f = (bn_run_flags){.n_predict = -1, .reps = 1, .chunks = -1, .host = "127.0.0.1", .port = 8080, .parallel = 4,
                        .timeout = 30, .logprobs = -1, .lookup = -1, .draft = -1, .draft_p_min = 0.75f,
                        .sampling = bn_sampling_default()};
    f->session.backend = "auto";
    *help = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            print_usage(cmd, accept, synopsis);
            *help = true;
            return 0;
        }
        // A long flag may carry its value as --name=VALUE, as with getopt_long.
        char name[64];
        const char *eq = a[0] == '-' && a[1] == '-' ? strchr(a, '=') : NULL;
        if (eq && (size_t)(eq - a) < sizeof name) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
            a = name;
        }
        const flag_def *d = find_flag(a);
        if (!d) return bn_cli_unknown(cmd, a[0] == '-', a);
        if (d->group && !(accept & d->group)) {
            fprintf(stderr, "error: %s does not use %s (see bitnet-gpu %s --help)\n", cmd, a, cmd);
            return 2;
        }
        f->sampling_given = f->sampling_given || d->group == BN_FLAGS_SAMPLING;
        f->seed_given = f->seed_given || d->offset == AT(sampling.seed);
        f->draft_p_min_given = f->draft_p_min_given || d->offset == AT(draft_p_min);
        if (eq && (d->kind == SWITCH || d->kind == GREEDY)) {
            fprintf(stderr, "error: %s does not take a value\n", a);
            return 2;
        }
        if (d->kind == SWITCH) {
            *(bool *)((char *)f + d->offset) = true;
        } else if (d->kind == GREEDY) {
            f->sampling.temperature = 0;
        } else if (eq) {
            if (set_value(d, a, eq + 1, f)) return 2;
        } else if (i + 1 >= argc) {
            return bn_cli_needs_value(a);
        } else if (set_value(d, a, argv[++i], f)) {
            return 2;
        }
    }
    if (f->model_draft && f->lookup > 0) {
        fprintf(stderr, "error: --lookup and --model-draft both draft tokens: choose one\n");
        return 2;
    }
    if (!(f->draft_p_min >= 0 && f->draft_p_min <= 1)) {
        fprintf(stderr, "error: --draft-p-min expects a probability in 0..1, got %g\n", (double)f->draft_p_min);
        return 2;
    }
    if (!f->model_draft && f->draft >= 0 && f->lookup >= 0 && f->draft != f->lookup) {
        fprintf(stderr, "error: --lookup %d and --draft-max %d: without --model-draft both set prompt lookup's "
                        "tokens a pass; give one\n", f->lookup, f->draft);
        return 2;
    }
    if (!f->model_draft && f->draft_p_min_given)
        fprintf(stderr, "note: --draft-p-min is for a draft model (--model-draft); prompt lookup ignores it\n");
    if (f->model_draft && f->draft < 0) f->draft = 16;
    if (!f->model_draft && f->draft >= 0) f->lookup = f->draft; // llama-lookup's spelling of --lookup
    if (f->lookup < 0) f->lookup = 0;
    if (f->draft < 0) f->draft = 0;
    f->session.lm_head_q8 = f->lm_head && !strcmp(f->lm_head, "q8");
    // A GPU's start is what the CPU covers; the reference backend is asked for
    // its own arithmetic from the first token.
    f->session.cpu_start = (accept & BN_FLAGS_CPU_START) && !f->no_cpu_start &&
                           (!strcmp(f->session.backend, "auto") || !strcmp(f->session.backend, "cuda"));
    const int cpus = cpus_available();
    if (f->session.n_threads > cpus) {
        fprintf(stderr, "note: -t %d is more than the %d CPUs this process may use; using %d\n",
                f->session.n_threads, cpus, cpus);
        f->session.n_threads = cpus;
    }
    bn_error err;
    if (bn_sampling_validate(&f->sampling, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 2;
    }
    return 0;
}

int bn_cli_unknown(const char *cmd, bool flag, const char *arg) {
    fprintf(stderr, "error: unknown %s '%s' (see bitnet-gpu %s --help)\n", flag ? "flag" : "argument", arg, cmd);
    return 2;
}

int bn_cli_needs_value(const char *flag) {
    fprintf(stderr, "error: %s needs a value\n", flag);
    return 2;
}

int bn_cli_uint(const char *flag, const char *v, uint64_t lo, uint64_t hi, uint64_t *out) {
    // Digits first: strtoull would skip spaces, take a '+' and wrap "-5" around.
    bool ok = *v >= '0' && *v <= '9';
    char *end;
    errno = 0;
    const unsigned long long x = ok ? strtoull(v, &end, 10) : 0;
    ok = ok && !errno && !*end && x >= lo && x <= hi;
    if (ok) {
        *out = x;
        return 0;
    }
    if (lo == 0 && hi == UINT64_MAX)
        fprintf(stderr, "error: %s expects a non-negative integer, got '%s'\n", flag, v);
    else
        fprintf(stderr, "error: %s expects an integer in %llu..%llu, got '%s'\n", flag, (unsigned long long)lo,
                (unsigned long long)hi, v);
    return 2;
}

// The flag getopt_long has just read, as typed: a long one without any "=VALUE"
// (it is the last argument read), a short one by its letter (it may be one of a
// group, -xy).
static const char *flag_read(char **argv, bool is_long, char *buf, size_t size) {
    const char *a = argv[optind - 1];
    if (is_long) snprintf(buf, size, "%.*s", (int)strcspn(a, "="), a);
    else snprintf(buf, size, "-%c", optopt);
    return buf;
}

int bn_getopt(const char *cmd, int argc, char **argv, const char *shortopts, const struct option *longopts) {
    static int rest; // after "--": the index of the next positional argument; 0 before
    if (optind == 0) rest = 0;
    if (rest) {
        if (rest >= argc) return -1;
        optarg = argv[rest++];
        return 1;
    }
    // "-": positional arguments come back in place as 1, not permuted to the end
    // (nor ending the scan under POSIXLY_CORRECT); ":": a missing value comes
    // back as ':', told apart from an unknown flag.
    char opts[64], flag[256];
    snprintf(opts, sizeof opts, "-:%s", shortopts);
    opterr = 0;
    int idx = -1;
    const int c = getopt_long(argc, argv, opts, longopts, &idx);
    if (c == -1 && optind < argc) { // "--": what follows is positional
        rest = optind;
        return bn_getopt(cmd, argc, argv, shortopts, longopts);
    }
    if (c == ':') { // a missing value is always in the last argument
        const bool is_long = argv[optind - 1][1] == '-';
        return bn_cli_needs_value(flag_read(argv, is_long, flag, sizeof flag)), '?';
    }
    if (c == '?' && optopt && (optopt >= 256 || (optopt != ':' && strchr(shortopts, optopt)))) {
        // a flag we have, given a value it does not take ("--json=1")
        fprintf(stderr, "error: %s does not take a value\n", flag_read(argv, true, flag, sizeof flag));
        return '?';
    }
    if (c == '?') // optopt is 0 for a long flag nobody has (or an ambiguous abbreviation)
        return bn_cli_unknown(cmd, true, flag_read(argv, optopt == 0, flag, sizeof flag)), '?';
    if (idx >= 0) { // a long flag: refuse an abbreviation of it (--hid for --hidden)
        const char *a = argv[optind - 1];
        if (optarg == a) a = argv[optind - 2]; // its value was the next argument
        const size_t n = strlen(longopts[idx].name);
        if (strncmp(a + 2, longopts[idx].name, n) || (a[n + 2] && a[n + 2] != '=')) {
            snprintf(flag, sizeof flag, "%.*s", (int)strcspn(a, "="), a);
            return bn_cli_unknown(cmd, true, flag), '?';
        }
    }
    return c;
}
