// commands.h - the bitnet-gpu subcommands. main.c dispatches argv[1] to one of
// these; each parses its own flags (argv[0] is the subcommand name), prints to
// stdout/stderr, and returns the process exit status (0 ok, 1 error, 2 usage).
#ifndef BN_COMMANDS_H
#define BN_COMMANDS_H

int bn_cmd_generate(int argc, char **argv);
int bn_cmd_chat(int argc, char **argv);
int bn_cmd_bench(int argc, char **argv);
int bn_cmd_inspect(int argc, char **argv);
int bn_cmd_tokenize(int argc, char **argv);
int bn_cmd_make_model(int argc, char **argv);
int bn_cmd_download(int argc, char **argv);
int bn_cmd_serve(int argc, char **argv);
int bn_cmd_perplexity(int argc, char **argv);

#endif
