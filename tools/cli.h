// cli.h - flag parsing shared by the subcommands: one table-driven parser for
// those that run a model, getopt_long for the others, and the messages both give
// for the same mistakes.
#ifndef BN_CLI_H
#define BN_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bitnet.h"
#include "io.h"

#define BN_MAX_LOGIT_BIAS 64 // --logit-bias flags a command takes

// The flags of generate/chat/bench/serve (names follow llama.cpp).
typedef struct bn_run_flags {
    const char *model;
    const char *tokenizer;  // --tokenizer tokenizer.json
    const char *prompt;     // -p
    const char *prompt_file; // -f: read the prompt from this file ("-": stdin)
    const char *system;     // --system
    const char *lm_head;    // --lm-head q8|f16 (session.lm_head_q8 is set from it)
    const char *chat_template; // --chat-template bitnet|llama3|falcon3 (NULL: the model file's)
    int n_predict;          // -n; -1 when not given
    int reps;               // -r (bench); 1 when not given
    bool json;              // --json
    bool chat;              // --chat: wrap the prompt in the chat template
    bool no_bos;            // --no-bos
    const char *host;       // serve: --host (127.0.0.1)
    int port;               // serve: --port (8080)
    int parallel;           // serve: --parallel, slots (4)
    const char *api_key;    // serve: --api-key
    const char *alias;      // serve: --alias, the model's name in the API
    int timeout;            // serve: --timeout, seconds (30)
    const char *concurrency; // bench: --concurrency 1,4,16,64
    bool no_cpu_start;      // --no-cpu-start (session.cpu_start is set from it)
    int chunks;             // perplexity: --chunks, at most this many (-1: all)
    int batch;              // perplexity: -b, tokens a forward pass takes (0: the default)
    const char *json_schema; // --json-schema: a JSON Schema's text, or @FILE
    const char *regex;       // --regex: each reply one string it matches whole
    int logprobs;           // --logprobs N: alternatives per token (-1 when not given)
    int lookup;             // --lookup N: prompt lookup decoding's drafted tokens a pass (0: off; -1 while parsing: not given)
    const char *model_draft; // -md FILE: speculative decoding with this draft model
    int draft;              // --draft-max N: tokens a pass at most (-md's, default 16; else as --lookup; -1 while parsing)
    float draft_p_min;      // --draft-p-min P (0.75)
    bool draft_p_min_given;
    bn_session_params session;
    bn_sampling sampling;   // its logit_bias points into logit_bias below
    bn_logit_bias logit_bias[BN_MAX_LOGIT_BIAS]; // --logit-bias, in the order given
    int n_logit_bias;
    bool sampling_given;    // a sampling flag was on the command line
    bool seed_given;        // -s/--seed was
} bn_run_flags;

// The flag groups a command takes besides the common ones (-m, -t, -c,
// --tokenizer, --lm-head, --cpu-kernels). A flag outside them is an error, not
// silently ignored.
enum {
    BN_FLAGS_PROMPT = 1 << 0,   // -p
    BN_FLAGS_FILE = 1 << 1,     // -f
    BN_FLAGS_PREDICT = 1 << 2,  // -n
    BN_FLAGS_SAMPLING = 1 << 3, // --greedy --temp --top-k --top-p --min-p --repeat-* --seed
    BN_FLAGS_BACKEND = 1 << 4,  // --backend, -ngl
    BN_FLAGS_CHAT = 1 << 5,     // --chat
    BN_FLAGS_SYSTEM = 1 << 6,   // --system
    BN_FLAGS_BOS = 1 << 7,      // --no-bos
    BN_FLAGS_JSON = 1 << 8,     // --json
    BN_FLAGS_REPS = 1 << 9,     // -r
    BN_FLAGS_SERVE = 1 << 10,   // --host --port --parallel --api-key --timeout
    BN_FLAGS_CONCURRENCY = 1 << 11, // --concurrency
    BN_FLAGS_CPU_START = 1 << 12, // --no-cpu-start; without it, session.cpu_start is on for auto and cuda
    BN_FLAGS_PERPLEXITY = 1 << 13, // --chunks -b
    BN_FLAGS_JSON_SCHEMA = 1 << 14, // --json-schema
    BN_FLAGS_LOGPROBS = 1 << 15, // --logprobs
    BN_FLAGS_TEMPLATE = 1 << 16, // --chat-template
    BN_FLAGS_LOOKUP = 1 << 17,   // --lookup --draft-max
    BN_FLAGS_DRAFT = 1 << 18,    // -md --draft-p-min
    BN_FLAGS_REGEX = 1 << 19,    // --regex
};

// Parses argv[1..] into f (defaults filled first), taking the flags of the groups
// in `accept`. Returns 0, or prints one error line and returns 2. -h/--help
// prints the usage (synopsis, then the flags of those groups with their
// llama.cpp spellings) on stdout and sets *help: the command ends there, with
// the status returned. -t above the CPUs this process may use is capped, with a
// note.
int bn_parse_run_flags(const char *cmd, unsigned accept, const char *synopsis, int argc, char **argv,
                       bn_run_flags *f, bool *help);

// ---- the same words for the same mistakes, in every command ----

// "error: unknown flag 'ARG' (see bitnet-gpu CMD --help)", or "unknown argument"
// when ARG is not a flag (a positional the command has no place for). Returns 2.
int bn_cli_unknown(const char *cmd, bool flag, const char *arg);
// "error: FLAG needs a value". Returns 2.
int bn_cli_needs_value(const char *flag);
// Parses V, a decimal integer in lo..hi, into *out: 0, or prints "error: FLAG
// expects an integer in LO..HI, got 'V'" (0..UINT64_MAX: "a non-negative
// integer") and returns 2. Digits only: no sign, space or hex.
int bn_cli_uint(const char *flag, const char *v, uint64_t lo, uint64_t hi, uint64_t *out);

// getopt_long over argv[1..] for the commands without the table above. Set
// optind = 0 before the first call (glibc: a fresh scan, since main() may run
// more than one command). shortopts lists the short flags ("m:h"); a long-only
// flag's val must be >= 256. Returns the flag's val; 1 for a positional argument
// (in optarg; those after "--" too), in the order given whatever POSIXLY_CORRECT
// says; -1 at the end; or '?' after printing the one error line for an unknown
// flag, a missing value or a value given to a flag that takes none. Long flags
// count only as spelled, as in bn_parse_run_flags: no GNU abbreviations, which
// a new flag could make ambiguous and break a script.
int bn_getopt(const char *cmd, int argc, char **argv, const char *shortopts, const struct option *longopts);

#endif
