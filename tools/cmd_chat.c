// cmd_chat.c - `bitnet-gpu chat`: an interactive multi-turn conversation in
// the 2B-4T chat format. The session keeps its KV cache between turns, so each
// turn only feeds the new user message. Ctrl-D quits; /reset starts over.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"
#include "run.h"

typedef struct {
    int n_emitted; // tokens shown this turn (the end-of-turn token is not)
} turn;

static int on_token(void *user, int32_t id, const char *text, size_t len) {
    turn *t = user;
    if (id >= 0) t->n_emitted++;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

// Reads one line (without the newline); NULL at end of input. *buf is reused.
static char *read_line(char **buf, size_t *cap) {
    ssize_t n = getline(buf, cap, stdin);
    if (n < 0) return NULL;
    while (n > 0 && ((*buf)[n - 1] == '\n' || (*buf)[n - 1] == '\r')) (*buf)[--n] = 0;
    return *buf;
}

#define CHAT_FLAGS                                                                        \
    (BN_FLAGS_PROMPT | BN_FLAGS_PREDICT | BN_FLAGS_SAMPLING | BN_FLAGS_BACKEND | BN_FLAGS_SYSTEM)

int bn_cmd_chat(int argc, char **argv) {
    bn_run_flags f;
    bool help;
    int rc = bn_parse_run_flags("chat", CHAT_FLAGS, argc, argv, &f, &help);
    if (help) bn_print_run_usage("chat", CHAT_FLAGS, "-m MODEL [--system TEXT] [-p FIRST_MESSAGE] [options]");
    if (help || rc) return rc;
    if (!f.model) {
        fprintf(stderr, "error: chat needs -m MODEL (see --help)\n");
        return 2;
    }
    f.chat = true;
    bn_run r;
    if (bn_run_open(&f, &r)) return 1;
    bool tty = isatty(STDIN_FILENO);
    if (tty) fprintf(stderr, "chat: type a message and press Enter; /reset starts over; Ctrl-D quits.\n");

    char *line = NULL;
    size_t cap = 0;
    bool first = true, closed = true; // closed: the last reply ended with its end-of-turn token
    const char *pending_msg = f.prompt;
    for (;;) {
        const char *msg = pending_msg;
        pending_msg = NULL;
        if (!msg) {
            if (tty) fputs("\n> ", stdout), fflush(stdout);
            if (!(msg = read_line(&line, &cap))) break;
        }
        if (!strcmp(msg, "/reset")) {
            bn_session_reset(r.session);
            first = closed = true;
            fprintf(stderr, "(conversation reset)\n");
            continue;
        }
        if (!*msg) continue;

        // A reply cut short by -n never got its <|eot_id|>: close it first.
        int32_t *ids = NULL;
        size_t n = 0;
        if (bn_run_prompt(&r, &f, msg, first, !closed, &ids, &n)) continue;
        int left = bn_session_n_ctx(r.session) - bn_session_pos(r.session) - (int)n;
        int n_predict = f.n_predict >= 0 ? f.n_predict : (left > 0 ? left : 1);
        turn t = {0};
        bn_timings tm;
        bn_error err;
        if (bn_session_generate(r.session, ids, n, n_predict, &f.sampling, on_token, &t, &tm, &err)) {
            fprintf(stderr, "\nerror: %s (type /reset to start a new conversation)\n", err.msg);
        } else {
            closed = t.n_emitted < tm.n_gen; // the last sampled token was end-of-turn
            first = false;
            putchar('\n');
            if (!tty) fflush(stdout);
            bn_print_timings(&r, &tm);
        }
        free(ids);
    }
    free(line);
    bn_run_close(&r);
    return 0;
}
