// cmd_make_model.c - `bitnet-gpu make-model`: write a ternary model of any family,
// random (synthetic) or from trained weights (--weights, written by train/export.py).
//
// A thin CLI over bn_synth_model_write (core/synth_model.h): parse flags, apply a
// preset and overrides, report one summary line.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bitnet.h"
#include "clock.h"
#include "commands.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: bitnet-gpu make-model -o FILE [--preset NAME] [--hidden N] [--ffn N]\n"
            "                             [--layers N] [--heads N] [--kv-heads N] [--ctx N]\n"
            "                             [--vocab-size N] [--seed S]\n"
            "                             [--arch bitnet-b1.58|bitnet|llama]\n"
            "                             [--head tied|untied] [--weight-type i2_s|tq1_0|tq2_0]\n"
            "                             [--vocab tokenizer.json|model.gguf]\n"
            "                             [--weights FILE] [--name NAME]\n"
            "Writes a random-weight ternary model in the GGUF layout bitnet.cpp reads.\n"
            "Presets: tiny, tiny-bitnet, tiny-llama (small), and the real shapes 2b-4t,\n"
            "bitnet-0.7b, falcon3-1b, falcon3-3b, falcon3-7b, falcon3-10b, llama3-8b-1.58.\n"
            "--arch and --head override the preset's family and LM head.\n"
            "Same flags and seed give the same bytes. Default preset: tiny.\n"
            "--weights: trained weights instead of random ones (core/weights_file.h).\n");
}

// Parses an unsigned decimal that fits in max; -1 on anything else.
static int parse_u64(const char *s, uint64_t max, uint64_t *out) {
    if (!s || *s < '0' || *s > '9') return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max) return -1;
    *out = v;
    return 0;
}

int bn_cmd_make_model(int argc, char **argv) {
    const char *out = NULL, *preset = "tiny";
    // overrides, applied after the preset; vocab size 0 means "not given"
    struct {
        const char *flag;
        uint64_t value;
        uint64_t max;
        int set;
    } num[] = {
        {"--hidden", 0, 1u << 20, 0}, {"--ffn", 0, 1u << 22, 0},   {"--layers", 0, 1024, 0},
        {"--heads", 0, 4096, 0},      {"--kv-heads", 0, 4096, 0}, {"--ctx", 0, 1u << 24, 0},
        {"--vocab-size", 0, 1u << 24, 0}, {"--seed", 0, UINT64_MAX, 0},
    };
    const int n_num = (int)(sizeof num / sizeof num[0]);
    bn_synth_config cfg;
    bn_error err = {{0}};
    const char *vocab = NULL, *weights = NULL, *name = NULL, *arch = NULL, *head = NULL;
    const char *weight_type = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "error: %s: unknown flag or missing value\n", a);
            usage(stderr);
            return 2;
        }
        const char *val = argv[++i];
        if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            out = val;
        } else if (!strcmp(a, "--preset")) {
            preset = val;
        } else if (!strcmp(a, "--vocab")) {
            vocab = val;
        } else if (!strcmp(a, "--weights")) {
            weights = val;
        } else if (!strcmp(a, "--name")) {
            name = val;
        } else if (!strcmp(a, "--arch")) {
            arch = val;
        } else if (!strcmp(a, "--head")) {
            head = val;
        } else if (!strcmp(a, "--weight-type")) {
            weight_type = val;
        } else {
            int k = 0;
            while (k < n_num && strcmp(a, num[k].flag)) k++;
            if (k == n_num) {
                fprintf(stderr, "error: unknown flag %s\n", a);
                usage(stderr);
                return 2;
            }
            if (parse_u64(val, num[k].max, &num[k].value)) {
                fprintf(stderr, "error: %s wants a number up to %llu, got '%s'\n", a,
                        (unsigned long long)num[k].max, val);
                return 2;
            }
            num[k].set = 1;
        }
    }
    if (!out) {
        fprintf(stderr, "error: -o FILE is required\n");
        usage(stderr);
        return 2;
    }
    if (bn_synth_preset(preset, &cfg, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 2;
    }
    // same order as the first entries of num[]; --seed (last) is 64-bit
    uint32_t *fields[] = {&cfg.n_embd, &cfg.n_ff, &cfg.n_layer, &cfg.n_head,
                          &cfg.n_head_kv, &cfg.n_ctx, &cfg.n_vocab};
    for (int k = 0; k < n_num - 1; k++)
        if (num[k].set) *fields[k] = (uint32_t)num[k].value;
    if (num[n_num - 1].set) cfg.seed = num[n_num - 1].value;
    cfg.vocab_path = vocab;
    cfg.weights_path = weights;
    cfg.name = name;
    if (arch) cfg.arch = arch;
    if (head && strcmp(head, "tied") && strcmp(head, "untied")) {
        fprintf(stderr, "error: --head wants tied or untied, got '%s'\n", head);
        return 2;
    }
    if (head) cfg.untied_head = !strcmp(head, "untied");
    if (weight_type) {
        static const struct { const char *name; uint32_t type; } types[] = {
            {"i2_s", 0}, {"tq1_0", 34}, {"tq2_0", 35}};
        int k = 0;
        while (k < 3 && strcmp(weight_type, types[k].name)) k++;
        if (k == 3) {
            fprintf(stderr, "error: --weight-type wants i2_s, tq1_0 or tq2_0, got '%s'\n",
                    weight_type);
            return 2;
        }
        cfg.weight_type = types[k].type;
    }
    if (bn_synth_validate(&cfg, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 2;
    }

    const double t0 = bn_now_ms();
    if (bn_synth_model_write(&cfg, out, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    struct stat st;
    long long size = stat(out, &st) == 0 ? (long long)st.st_size : -1;
    const double secs = (bn_now_ms() - t0) / 1e3;
    char origin[48];
    if (weights)
        snprintf(origin, sizeof origin, "trained weights");
    else
        snprintf(origin, sizeof origin, "seed %llu", (unsigned long long)cfg.seed);
    fprintf(stderr,
            "make-model: wrote %s (%lld bytes, %s, hidden %u ffn %u layers %u heads %u/%u, %s) in "
            "%.2f s\n",
            out, size, cfg.arch ? cfg.arch : "bitnet-b1.58", cfg.n_embd, cfg.n_ff, cfg.n_layer,
            cfg.n_head, cfg.n_head_kv, origin, secs);
    return 0;
}
