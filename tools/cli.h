// cli.h - flag parsing shared by the subcommands that run a model.
#ifndef BN_CLI_H
#define BN_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "bitnet.h"

// The flags of generate/chat/bench (DESIGN 6; names follow llama.cpp).
typedef struct bn_run_flags {
    const char *model;
    const char *tokenizer;  // --tokenizer tokenizer.json
    const char *prompt;     // -p
    const char *prompt_file; // -f: read the prompt from this file ("-": stdin)
    const char *system;     // --system (chat)
    int n_predict;          // -n; -1 when not given
    bool json;              // --json
    bool chat;              // --chat: wrap the prompt in the chat template
    bool no_bos;            // --no-bos
    bn_session_params session;
    bn_sampling sampling;
} bn_run_flags;

// Parses argv[1..] into f (defaults filled first). Returns 0, or prints one
// error line and returns 2. Unknown flags are errors. *help is set by -h/--help.
int bn_parse_run_flags(int argc, char **argv, bn_run_flags *f, bool *help);
void bn_print_run_usage(const char *cmd, const char *synopsis);

// Reads a whole prompt file ("-": stdin) into a malloc'd NUL-terminated string.
// Returns 0, or prints one error line and returns 1 (unreadable, a NUL byte in it,
// over 64 MiB).
int bn_read_prompt_file(const char *path, char **out);

// Peak resident set size of this process, in bytes.
uint64_t bn_peak_rss_bytes(void);

#endif
