// line_input.c - one chat message at a time (see line_input.h).
#include "line_input.h"

#include <editline/readline.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct bn_line_input {
    bool editing;
    volatile sig_atomic_t *interrupted;
    char *buf; // getline's
    size_t cap;
};

bn_line_input *bn_line_input_open(bool editing, volatile sig_atomic_t *interrupted) {
    bn_line_input *in = calloc(1, sizeof *in);
    if (!in) return NULL;
    in->editing = editing;
    in->interrupted = interrupted;
    if (editing) using_history();
    return in;
}

void bn_line_input_close(bn_line_input *in) {
    if (!in) return;
    free(in->buf);
    free(in);
}

// One line without its newline (malloc'd), or NULL at the end of the input or
// on Ctrl-C (*intr).
static char *read_one(bn_line_input *in, const char *prompt, bool *intr) {
    *in->interrupted = 0;
    if (in->editing) {
        char *line = readline(prompt);
        *intr = !line && *in->interrupted; // libedit returns NULL for both
        return line;
    }
    ssize_t n = getline(&in->buf, &in->cap, stdin);
    *intr = false;
    if (n < 0) return NULL;
    while (n > 0 && (in->buf[n - 1] == '\n' || in->buf[n - 1] == '\r')) in->buf[--n] = 0;
    return strdup(in->buf);
}

static bool is_fence(const char *line) { return !strcmp(line, "\"\"\""); }

bn_input_status bn_line_input_read(bn_line_input *in, char **msg) {
    *msg = NULL;
    bool intr;
    char *line = read_one(in, "> ", &intr);
    if (!line) return intr ? BN_INPUT_INTERRUPTED : BN_INPUT_EOF;
    const bool block = is_fence(line);
    if (block) {
        free(line);
        line = read_one(in, "... ", &intr);
    }
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    for (int n_lines = 0; line && m; n_lines++) {
        size_t n = strlen(line);
        bool more = true; // in a block: until the closing """
        if (block && is_fence(line)) {
            free(line);
            break;
        }
        if (!block && (more = n > 0 && line[n - 1] == '\\')) line[--n] = 0;
        fprintf(m, "%s%s", n_lines ? "\n" : "", line);
        free(line);
        line = more ? read_one(in, "... ", &intr) : NULL;
    }
    if (!m) {
        free(line);
        return BN_INPUT_EOF; // out of memory
    }
    fclose(m);
    if (intr) {
        free(text);
        return BN_INPUT_INTERRUPTED;
    }
    if (in->editing && *text) add_history(text);
    *msg = text;
    return BN_INPUT_MESSAGE;
}
