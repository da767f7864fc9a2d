// cmd_inspect.c - `bitnet-gpu inspect MODEL [--json]`: validate a model file and
// describe it (docs/inspect.md).
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "commands.h"
#include "devtools.h"

static void usage(FILE *f) {
    fprintf(f, "usage: bitnet-gpu inspect MODEL.gguf [--json]\n"
               "  Loads MODEL as a BitNet b1.58 model, checking every tensor and the embedded\n"
               "  vocabulary, and prints its architecture, hyperparameters, tokenizer, tensor\n"
               "  table and totals. --json prints the JSON document of docs/inspect.md.\n");
}

int bn_cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    int json = 0;
    enum { JSON = 256 };
    static const struct option longopts[] = {
        {"json", no_argument, NULL, JSON}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    optind = 0; // glibc: a fresh scan (main() may parse more than one command)
    for (int c; (c = bn_getopt("inspect", argc, argv, "m:h", longopts)) != -1;) {
        switch (c) {
        case JSON: json = 1; break;
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
    char *report = bn_inspect_report(path, json, &err);
    if (!report) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    fputs(report, stdout); // main() reports a failed write
    free(report);
    return 0;
}
