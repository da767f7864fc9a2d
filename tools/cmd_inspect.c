// cmd_inspect.c - `bitnet-gpu inspect MODEL [--json] [--check-tensors]`: validate
// a model file and describe it (docs/inspect.md).
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "commands.h"
#include "devtools.h"

static void usage(FILE *f) {
    fprintf(f, "usage: bitnet-gpu inspect MODEL.gguf [--json] [--check-tensors]\n"
               "  Loads MODEL as a BitNet b1.58 model, checking every tensor and the embedded\n"
               "  vocabulary, and prints its architecture, hyperparameters, tokenizer, tensor\n"
               "  table and totals. --json prints the JSON document of docs/inspect.md.\n"
               "  --check-tensors also checks that every F32, F16 and BF16 value (the\n"
               "  embedding's too) is a finite number.\n");
}

int bn_cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    int json = 0;
    bool check_values = false;
    enum { JSON = 256, CHECK_TENSORS };
    static const struct option longopts[] = {{"json", no_argument, NULL, JSON},
                                             {"check-tensors", no_argument, NULL, CHECK_TENSORS},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    optind = 0; // glibc: a fresh scan (main() may parse more than one command)
    for (int c; (c = bn_getopt("inspect", argc, argv, "m:h", longopts)) != -1;) {
        switch (c) {
        case JSON: json = 1; break;
        case CHECK_TENSORS: check_values = true; break;
        case 'h': usage(stdout); return 0;
        case 'm': // same flag as generate, for muscle memory: the same as MODEL
        case 1:
            if (path) return bn_cli_unknown("inspect", false, optarg); // one model only
            path = optarg;
            break;
        default: // bn_getopt said why
            usage(stderr);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "error: inspect: no model file given\n");
        usage(stderr);
        return 2;
    }
    bn_error err = {{0}};
    char *report = bn_inspect_report(path, json, check_values, &err);
    if (!report) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    fputs(report, stdout); // main() reports a failed write
    free(report);
    return 0;
}
