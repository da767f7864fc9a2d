// cmd_make_model.c - `bitnet-gpu make-model`: write a ternary model of any family,
// random (synthetic) or from trained weights (--weights, written by train/export.py).
//
// A thin CLI over bn_synth_model_write (devtools/devtools.h): parse flags, apply a
// preset and overrides, report one summary line.
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "clock.h"
#include "commands.h"
#include "devtools.h"
#include "gguf.h" // BN_GGML_TQ1_0, BN_GGML_TQ2_0

static void usage(FILE *f) {
    fprintf(f,
            "usage: bitnet-gpu make-model -o FILE [--preset NAME] [--hidden N] [--ffn N]\n"
            "                             [--layers N] [--heads N] [--kv-heads N] [--ctx N]\n"
            "                             [--vocab-size N] [--seed S]\n"
            "                             [--arch bitnet-b1.58|bitnet|llama]\n"
            "                             [--head tied|untied] [--weight-type i2_s|tq1_0|tq2_0]\n"
            "                             [--vocab tokenizer.json|model.gguf]\n"
            "                             [--weights FILE] [--name NAME] [--calm]\n"
            "Writes a random-weight ternary model in the GGUF layout bitnet.cpp reads.\n"
            "Presets: tiny, tiny-bitnet, tiny-llama (small), and the real shapes 2b-4t,\n"
            "bitnet-0.7b, falcon3-1b, falcon3-3b, falcon3-7b, falcon3-10b, llama3-8b-1.58.\n"
            "--arch and --head override the preset's family and LM head.\n"
            "Same flags and seed give the same bytes. Default preset: tiny.\n"
            "--weights: trained weights instead of random ones (devtools/weights_file.h).\n"
            "--calm: residual branches ~1/50 of the embedding, so that backends agree at\n"
            "full depth (a random model is chaotic otherwise; README: Using it, bench).\n");
}

// The numeric overrides, applied after the preset; getopt_long gives --hidden
// the code NUM + 0 and so on.
enum { NUM = 256, PRESET = NUM + 8, VOCAB, WEIGHTS, NAME, ARCH, HEAD, WEIGHT_TYPE, CALM };
static const struct {
    const char *flag;
    uint64_t max;
} nums[] = {
    {"--hidden", 1u << 20}, {"--ffn", 1u << 22},  {"--layers", 1024},        {"--heads", 4096},
    {"--kv-heads", 4096},   {"--ctx", 1u << 24},  {"--vocab-size", 1u << 24}, {"--seed", UINT64_MAX},
};
#define N_NUM (int)(sizeof nums / sizeof nums[0])

int bn_cmd_make_model(int argc, char **argv) {
    const char *out = NULL, *preset = "tiny";
    uint64_t num[N_NUM];
    bool num_set[N_NUM] = {false};
    bn_synth_config cfg;
    bn_error err = {{0}};
    const char *vocab = NULL, *weights = NULL, *name = NULL, *arch = NULL, *head = NULL;
    const char *weight_type = NULL;
    bool calm = false;

    static const struct option named[] = {
        {"output", required_argument, NULL, 'o'},   {"help", no_argument, NULL, 'h'},
        {"preset", required_argument, NULL, PRESET}, {"vocab", required_argument, NULL, VOCAB},
        {"weights", required_argument, NULL, WEIGHTS}, {"name", required_argument, NULL, NAME},
        {"arch", required_argument, NULL, ARCH},     {"head", required_argument, NULL, HEAD},
        {"weight-type", required_argument, NULL, WEIGHT_TYPE}, {"calm", no_argument, NULL, CALM},
    };
    enum { N_NAMED = sizeof named / sizeof named[0] };
    struct option longopts[N_NAMED + N_NUM + 1] = {{0}}; // the last entry stays zero: the end
    memcpy(longopts, named, sizeof named);
    for (int k = 0; k < N_NUM; k++)
        longopts[N_NAMED + k] = (struct option){nums[k].flag + 2, required_argument, NULL, NUM + k};
    optind = 0; // glibc: a fresh scan (main() may parse more than one command)
    for (int c; (c = bn_getopt("make-model", argc, argv, "o:h", longopts)) != -1;) {
        switch (c) {
        case 'h': usage(stdout); return 0;
        case 'o': out = optarg; break;
        case PRESET: preset = optarg; break;
        case VOCAB: vocab = optarg; break;
        case WEIGHTS: weights = optarg; break;
        case NAME: name = optarg; break;
        case ARCH: arch = optarg; break;
        case HEAD: head = optarg; break;
        case WEIGHT_TYPE: weight_type = optarg; break;
        case CALM: calm = true; break;
        case 1: // no positional arguments
            bn_cli_unknown("make-model", false, optarg);
            usage(stderr);
            return 2;
        case '?': // bn_getopt said why
            usage(stderr);
            return 2;
        default: { // c is NUM + k
            const int k = c - NUM;
            if (bn_cli_uint(nums[k].flag, optarg, 0, nums[k].max, &num[k])) return 2;
            num_set[k] = true;
        }
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
    // same order as the first entries of nums[]; --seed (last) is 64-bit
    uint32_t *fields[] = {&cfg.n_embd, &cfg.n_ff, &cfg.n_layer, &cfg.n_head,
                          &cfg.n_head_kv, &cfg.n_ctx, &cfg.n_vocab};
    for (int k = 0; k < N_NUM - 1; k++)
        if (num_set[k]) *fields[k] = (uint32_t)num[k];
    if (num_set[N_NUM - 1]) cfg.seed = num[N_NUM - 1];
    cfg.vocab_path = vocab;
    cfg.weights_path = weights;
    cfg.name = name;
    if (arch) cfg.arch = arch;
    cfg.calm = calm;
    if (head && strcmp(head, "tied") && strcmp(head, "untied")) {
        fprintf(stderr, "error: --head wants tied or untied, got '%s'\n", head);
        return 2;
    }
    if (head) cfg.untied_head = !strcmp(head, "untied");
    if (weight_type) {
        static const struct { const char *name; uint32_t type; } types[] = {
            {"i2_s", 0}, {"tq1_0", BN_GGML_TQ1_0}, {"tq2_0", BN_GGML_TQ2_0}};
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
