// bench_tokenizer.c - tokenizer.json load time and single-thread encode
// throughput on ~1 MB of mixed text (prose, code, non-Latin scripts, numbers,
// emoji), built deterministically from the snippets below.
//
//   bench_tokenizer [--json] [path/to/tokenizer.json]
//                   (default: $BITNET_FIXTURES/llama3/tokenizer.json)
// The last line is a JSON object; with --json it is all of stdout (the table
// goes to stderr).
//
// Targets on the 2-core development machine: load <= 300 ms, encode >= 10 MB/s.
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokenizer/tokenizer.h"

// Single-threaded work: the thread's CPU time equals wall time on an idle
// machine and stays meaningful on a busy one (shared CI, parallel builds).
static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double cpu_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *snippets[] = {
    "The quick brown fox jumps over the lazy dog. ",
    "It was the best of times, it was the worst of times; it was the age of wisdom. ",
    "We'll see what they've done -- I'd say it's fine, isn't it? ",
    "int main(int argc, char **argv) {\n    for (int i = 0; i < argc; i++) printf(\"%s\\n\", argv[i]);\n    return 0;\n}\n",
    "def f(x):\n    return {k: v ** 2 for k, v in x.items() if v > 3.14159}\n\n",
    "    if (ptr == NULL) { return -ENOMEM; }\n\t\t// TODO: handle the error\n",
    "Привет, как дела? Сегодня хорошая погода. ",
    "日本語のテキストも含まれています。東京は日本の首都です。",
    "中文文本：我想在苹果公司工作一千三百一十四天。",
    "مرحبا بالعالم، هذه جملة عربية. ",
    "नमस्ते दुनिया, यह एक हिंदी वाक्य है। ",
    "Ελληνικά: Γειά σου Κόσμε! ",
    "🦙🚀 emoji 😶‍🌫️ and ✅ symbols 👨‍👩‍👧‍👦 ",
    "Numbers: 3.14159, 2718281828, 1,000,000 and 42nd. ",
    "   \n\n  Spaces\t\tand\r\nline breaks   \n",
    "URL: https://example.com/path?query=value&x=1#frag ",
    "Ünïcödé àccénts: naïve café coöperate Straße ",
};

int main(int argc, char **argv) {
    char def[4096];
    const char *path = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = true;
        } else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "usage: %s [--json] [tokenizer.json]\n", argv[0]);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        const char *dir = getenv("BITNET_FIXTURES");
        snprintf(def, sizeof def, "%s/llama3/tokenizer.json", dir && *dir ? dir : "../shared/fixtures");
        path = def;
    }

    // Load: best of 3 (first run also pays for the page cache).
    bn_tokenizer *t = NULL;
    bn_error err = {{0}};
    double load_ms = 1e30, load_cpu = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = now_ms(), c0 = cpu_ms();
        if (bn_tokenizer_from_json(path, &t, &err)) {
            fprintf(stderr, "error: %s\n", err.msg);
            return 1;
        }
        double dt = now_ms() - t0, dc = cpu_ms() - c0;
        load_ms = dt < load_ms ? dt : load_ms;
        load_cpu = dc < load_cpu ? dc : load_cpu;
        if (r < 2) bn_tokenizer_free(t);
    }

    // ~1 MB of text: snippets in a fixed pseudo-random order (LCG).
    const size_t target = 1 << 20;
    char *text = malloc(target + 512);
    size_t len = 0;
    uint32_t s = 12345;
    const size_t ns = sizeof snippets / sizeof snippets[0];
    while (len < target) {
        s = s * 1103515245u + 12345u;
        const char *p = snippets[(s >> 16) % ns];
        size_t l = strlen(p);
        memcpy(text + len, p, l);
        len += l;
    }

    double enc_ms = 1e30, enc_cpu = 1e30;
    size_t n_tokens = 0;
    for (int r = 0; r < 5; r++) {
        int32_t *ids;
        double t0 = now_ms(), c0 = cpu_ms();
        if (bn_tokenize(t, text, len, false, false, &ids, &n_tokens, &err)) {
            fprintf(stderr, "error: %s\n", err.msg);
            return 1;
        }
        double dt = now_ms() - t0, dc = cpu_ms() - c0;
        enc_ms = dt < enc_ms ? dt : enc_ms;
        enc_cpu = dc < enc_cpu ? dc : enc_cpu;
        free(ids);
    }
    double mbs = (double)len / 1e6 / (enc_ms / 1e3), mbs_cpu = (double)len / 1e6 / (enc_cpu / 1e3);

    FILE *table = json ? stderr : stdout;
    fprintf(table, "                          wall (best)    thread CPU (best)\n");
    fprintf(table, "tokenizer.json load   %9.1f ms   %9.1f ms        target <= 300 ms\n", load_ms, load_cpu);
    fprintf(table, "encode %zu B       %9.1f MB/s %9.1f MB/s      target >= 10 MB/s\n", len, mbs, mbs_cpu);
    fprintf(table, "  %zu tokens, %.2f bytes/token\n", n_tokens, (double)len / (double)n_tokens);
    printf("{\"load_ms\":%.1f,\"load_cpu_ms\":%.1f,\"encode_bytes\":%zu,\"encode_ms\":%.1f,"
           "\"encode_mb_s\":%.2f,\"encode_cpu_mb_s\":%.2f,\"tokens\":%zu}\n",
           load_ms, load_cpu, len, enc_ms, mbs, mbs_cpu, n_tokens);
    free(text);
    bn_tokenizer_free(t);
    return 0;
}
