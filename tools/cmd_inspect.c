// cmd_inspect.c - `bitnet-gpu inspect MODEL [--json]`: validate a model file and
// describe it (docs/inspect.md).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h"
#include "commands.h"

static void usage(FILE *f) {
    fprintf(f, "usage: bitnet-gpu inspect MODEL.gguf [--json]\n"
               "  Loads MODEL as a BitNet b1.58 model, checking every tensor and the embedded\n"
               "  vocabulary, and prints its architecture, hyperparameters, tokenizer, tensor\n"
               "  table and totals. --json prints the JSON document of docs/inspect.md.\n");
}

int bn_cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "-m") == 0 && i + 1 < argc && !path) {
            path = argv[++i]; // same flag as generate, for muscle memory
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "error: inspect: unknown flag '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (!path) {
            path = argv[i];
        } else {
            fprintf(stderr, "error: inspect: more than one model given ('%s')\n", argv[i]);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "error: inspect: no model file given\n");
        usage(stderr);
        return 2;
    }
    bn_error err = {{0}};
    char *report = bn_inspect_report(path, json, &err);
    if (!report) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    fputs(report, stdout); // main() reports a failed write
    free(report);
    return 0;
}
