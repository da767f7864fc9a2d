// main.c - the bitnet-gpu command line: dispatches to one subcommand.
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bitnet.h"
#include "commands.h"
#include "io.h"
#include "run.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} commands[] = {
    {"generate", bn_cmd_generate, "generate text from a prompt"},
    {"chat", bn_cmd_chat, "interactive multi-turn chat (Ctrl-D to quit)"},
    {"bench", bn_cmd_bench, "4-token greedy decode of \"2+2=\" on the cpu and cuda backends, compared"},
    {"inspect", bn_cmd_inspect, "validate a model file and describe it"},
    {"tokenize", bn_cmd_tokenize, "text to token ids"},
    {"make-model", bn_cmd_make_model, "write a synthetic model in the official format"},
    {"download", bn_cmd_download, "fetch a model from the Hugging Face hub (resumes, checks SHA-256)"},
    {"serve", bn_cmd_serve, "OpenAI-compatible HTTP server, requests batched together"},
    {"perplexity", bn_cmd_perplexity, "perplexity of a text file, as llama.cpp's llama-perplexity computes it"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: bitnet-gpu COMMAND [options]   (bitnet-gpu COMMAND --help for its options)\n\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].help);
}

// Runs the command named by argv[1]; the exit status of the process.
static int run_command(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("bitnet-gpu %s\n", bn_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "error: unknown command '%s'; the commands are:", argv[1]);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(stderr, "%s %s", i ? "," : "", commands[i].name);
    fprintf(stderr, " (bitnet-gpu --help says what each does)\n");
    return 2;
}

int main(int argc, char **argv) {
    bn_guard_std_fds();
    int rc = run_command(argc, argv);
    if (bn_run_left_open()) { // see run.h: the output, then the end, now
        if (rc == 0 && bn_finish_stdout()) rc = 1;
        fflush(stdout); // after a failure too: _exit flushes nothing
        _exit(rc);
    }
    bn_backend_prewarm_wait(); // before exit() runs the CUDA runtime's own exit handlers
    // Output that never arrived is a failure, whatever the command thought (a
    // command that failed has said why already).
    if (rc == 0 && bn_finish_stdout()) rc = 1;
    return rc;
}
