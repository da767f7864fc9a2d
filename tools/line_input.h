// line_input.h - reading chat messages: line editing and history (libedit) on a
// terminal, plain lines from a pipe or file. Either way a message may span lines:
//   a line ending in a backslash continues on the next (the backslash becomes a
//   newline), and a line that is just """ starts a block that ends at the next
//   """ line (for pasting text with blank lines in it).
#ifndef BN_LINE_INPUT_H
#define BN_LINE_INPUT_H

#include <signal.h>
#include <stdbool.h>

typedef struct bn_line_input bn_line_input;

typedef enum {
    BN_INPUT_MESSAGE,     // *msg holds one message
    BN_INPUT_EOF,         // Ctrl-D on an empty line, or the end of the input
    BN_INPUT_INTERRUPTED, // Ctrl-C while typing: the lines so far are dropped
} bn_input_status;

// editing: stdin and stdout are a terminal (libedit, a "> " prompt, history).
// interrupted: set by the caller's SIGINT handler; it tells Ctrl-C from Ctrl-D.
bn_line_input *bn_line_input_open(bool editing, volatile sig_atomic_t *interrupted);
void bn_line_input_close(bn_line_input *in);

// Reads one message into *msg (malloc'd, the caller frees) and adds it to the
// history. Ctrl-D inside a continued message ends the message.
bn_input_status bn_line_input_read(bn_line_input *in, char **msg);

#endif
