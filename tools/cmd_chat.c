// cmd_chat.c - `bitnet-gpu chat`: an interactive multi-turn conversation in
// the model's chat format (2B-4T, Llama-3 or Falcon3: core/chat.h). The session
// keeps its KV cache between turns, so each turn only feeds the new user message.
//
// On a terminal: line editing and history (line_input.c), /help, /reset, /exit;
// Ctrl-C stops the reply being written (at the prompt it drops the line), Ctrl-D
// on an empty line quits. From a pipe or file, the same commands read one
// message per line, without prompts.
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "chat_history.h"
#include "cli.h"
#include "commands.h"
#include "default_model.h"
#include "line_input.h"
#include "run.h"

#define CHAT_FLAGS                                                                        \
    (BN_FLAGS_PROMPT | BN_FLAGS_PREDICT | BN_FLAGS_SAMPLING | BN_FLAGS_BACKEND |          \
     BN_FLAGS_CPU_START | BN_FLAGS_SYSTEM | BN_FLAGS_JSON_SCHEMA | BN_FLAGS_TEMPLATE | BN_FLAGS_LOOKUP |     \
     BN_FLAGS_DRAFT | BN_FLAGS_REGEX)
#define CHAT_SYNOPSIS "[-m MODEL] [--system TEXT] [-p FIRST_MESSAGE] [options]"

static volatile sig_atomic_t interrupted; // Ctrl-C (SIGINT) since it was last cleared

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

typedef struct {
    bn_run run;
    bn_run_flags *flags;
    bool editing;
    bool first;  // the next message starts the conversation (BOS, system prompt)
    bool closed; // the last reply ended with its end-of-turn token
    bn_chat_history history; // what the session holds, as text
} chat;

typedef struct {
    int n_emitted;   // tokens shown this turn (the end-of-turn token is not)
    int write_errno; // stdout refused the reply
    bn_buf reply;    // its text, for the history
} turn;

static int on_token(void *user, int32_t id, const char *text, size_t len) {
    turn *t = user;
    if (id >= 0) t->n_emitted++;
    if (bn_write_stdout(text, len)) return t->write_errno = errno ? errno : EIO, 1;
    (void)bn_buf_append(&t->reply, text, len); // short of memory, the history has less of the reply
    return interrupted != 0; // Ctrl-C: this token is the reply's last
}

static void print_help(void) {
    printf("  /help    this help\n"
           "  /reset   forget the conversation and start a new one\n"
           "  /exit    quit (also /quit, or Ctrl-D on an empty line)\n"
           "  Ctrl-C   stop the reply being written; at the prompt, drop the line\n"
           "  A line ending in \\ continues on the next line. A line \"\"\" starts a block\n"
           "  that ends at the next \"\"\" line, for text with blank lines in it.\n"
           "  Up and down arrows recall earlier messages. To send a message that starts\n"
           "  with /, type it twice (//).\n");
}

static void reset(chat *c) {
    bn_session_reset(c->run.session);
    bn_chat_history_clear(&c->history);
    c->first = c->closed = true;
}

// A message that does not fit after the conversation so far: the conversation
// again from its start without its oldest exchanges, as few dropped as leave the
// reply a quarter of the context (or -n tokens, when fewer), into *ids. Returns
// how many were dropped; -1 when the message does not fit even alone; -2 when
// the prompt could not be built (the error printed).
static long drop_oldest(chat *c, const char *msg, int32_t **ids, size_t *n) {
    const int n_ctx = bn_session_n_ctx(c->run.session);
    const int reserve = c->flags->n_predict > 0 && c->flags->n_predict < n_ctx / 4 ? c->flags->n_predict : n_ctx / 4;
    const size_t exchanges = bn_chat_history_exchanges(&c->history);
    for (size_t drop = 1; drop <= exchanges || drop == 1; drop++) {
        bn_error err;
        int32_t *built;
        size_t n_built;
        if (bn_chat_history_prompt(&c->history, c->run.engine, c->flags->system, drop, msg, &built, &n_built, &err)) {
            fprintf(stderr, "error: %s\n", err.msg);
            return -2;
        }
        const bool last = drop >= exchanges;
        if ((int)n_built + reserve <= n_ctx || (last && (int)n_built < n_ctx)) {
            *ids = built;
            *n = n_built;
            return (long)(drop < exchanges ? drop : exchanges);
        }
        free(built);
    }
    return -1;
}

// One exchange: the user's message in, the reply streamed out. Returns -1 only
// when stdout is gone (the chat cannot go on), else 0.
static int exchange(chat *c, const char *msg) {
    int32_t *ids = NULL;
    size_t n = 0;
    // A reply cut short (-n, Ctrl-C) never got its end of turn: close it first.
    if (bn_run_prompt(&c->run, c->flags, msg, c->first, !c->closed, &ids, &n)) return 0;
    const int room = bn_session_room(c->run.session);
    if ((int)n > room) {
        int32_t *whole;
        size_t n_whole;
        const long dropped = drop_oldest(c, msg, &whole, &n_whole);
        if (dropped < 0) {
            if (dropped == -1)
                fprintf(stderr, "note: this message (%zu tokens) does not fit in the context (%d tokens) even "
                                "alone; -c sets a larger one\n", n, bn_session_n_ctx(c->run.session));
            free(ids);
            return 0;
        }
        if (dropped)
            fprintf(stderr, "note: the conversation outgrew the context (%d tokens): it goes on without its "
                            "oldest %ld exchange%s\n",
                    bn_session_n_ctx(c->run.session), dropped, dropped == 1 ? "" : "s");
        else // the history was not kept (memory ran short): only this message goes on
            fprintf(stderr, "note: the conversation outgrew the context (%d tokens): it goes on from this "
                            "message\n", bn_session_n_ctx(c->run.session));
        free(ids);
        ids = whole, n = n_whole;
        bn_chat_history_drop(&c->history, (size_t)dropped);
        bn_session_reset(c->run.session);
        c->first = c->closed = true; // the new start is fed below; should that fail, the next message starts anew
    }
    turn t = {0};
    bn_timings tm;
    bn_error err;
    const int n_predict = c->flags->n_predict >= 0 ? c->flags->n_predict : INT_MAX;
    interrupted = 0;
    int rc = bn_session_generate(c->run.session, ids, n, n_predict, &c->flags->sampling, on_token,
                                 &t, &tm, &err);
    free(ids);
    if (t.write_errno) {
        free(t.reply.data);
        fprintf(stderr, "\nerror: writing the reply failed: %s\n", strerror(t.write_errno));
        return -1;
    }
    if (t.n_emitted) putchar('\n');
    fflush(stdout);
    if (rc) {
        free(t.reply.data);
        fprintf(stderr, "error: %s (/reset starts a new conversation)\n", err.msg);
        return 0;
    }
    if (bn_chat_history_add(&c->history, msg, t.reply.data ? t.reply.data : "", t.reply.len))
        fprintf(stderr, "note: out of memory for the chat's history: /reset before the context fills\n");
    free(t.reply.data);
    c->closed = t.n_emitted < tm.n_gen; // the last sampled token was the end of the turn
    c->first = false;
    if (tm.stop == BN_STOP_CALLER) fprintf(stderr, "(stopped)\n");
    bn_print_timings(&c->run, &tm);
    if (tm.stop == BN_STOP_CONTEXT)
        fprintf(stderr, "note: the next message goes on without the oldest exchanges (/reset starts anew)\n");
    return 0;
}

// A line starting with '/': 1 to quit, 0 when handled, -1 when it is a message
// ("//..." sends "/...").
static int command(chat *c, const char *line) {
    if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) return 1;
    if (!strcmp(line, "/help")) {
        print_help();
    } else if (!strcmp(line, "/reset")) {
        reset(c);
        fprintf(stderr, "(conversation reset)\n");
    } else if (line[1] == '/') {
        return -1;
    } else {
        fprintf(stderr, "unknown command %s (/help lists them)\n", line);
    }
    return 0;
}

// Until /exit or the end of the input: 0, or 1 when stdout failed.
static int loop(chat *c, bn_line_input *in) {
    if (c->flags->prompt && exchange(c, c->flags->prompt)) return 1;
    for (;;) {
        char *msg;
        const bn_input_status st = bn_line_input_read(in, &msg);
        if (st == BN_INPUT_EOF) {
            if (c->editing) putchar('\n'); // the shell's prompt starts on a line of its own
            return 0;
        }
        if (st == BN_INPUT_INTERRUPTED) {
            fprintf(stderr, "^C (Ctrl-D or /exit quits)\n");
            continue;
        }
        int cmd = msg[0] == '/' ? command(c, msg) : -1;
        int rc = cmd < 0 && *msg ? exchange(c, msg[0] == '/' ? msg + 1 : msg) : 0;
        free(msg);
        if (cmd > 0 || rc) return rc ? 1 : 0;
    }
}

int bn_cmd_chat(int argc, char **argv) {
    bn_run_flags f;
    bool help;
    int rc = bn_parse_run_flags("chat", CHAT_FLAGS, CHAT_SYNOPSIS, argc, argv, &f, &help);
    if (help) {
        printf("\nIn the chat:\n");
        print_help();
    }
    if (help || rc) return rc;
    if (!f.model && !(f.model = bn_default_model("chat"))) return 2;
    f.chat = true;
    chat c = {.flags = &f, .first = true, .closed = true};
    c.editing = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    if (bn_run_open(&f, &c.run)) return 1; // a text model is refused there (f.chat)
    bn_line_input *in = bn_line_input_open(c.editing, &interrupted);
    if (!in) {
        fprintf(stderr, "error: out of memory\n");
        bn_run_close(&c.run);
        return 1;
    }
    // Ctrl-C belongs to the chat only on a terminal; a piped chat stops as usual.
    // NOFLSH: the terminal keeps what was written when Ctrl-C comes, so the end
    // of the reply, "(stopped)" and the next prompt are not thrown away with it.
    struct sigaction sa = {.sa_handler = on_sigint, .sa_flags = SA_RESTART}, old;
    struct termios tio, tio_old;
    const bool tio_set = c.editing && tcgetattr(STDIN_FILENO, &tio_old) == 0;
    if (tio_set) {
        tio = tio_old;
        tio.c_lflag |= NOFLSH;
        tcsetattr(STDIN_FILENO, TCSANOW, &tio);
    }
    if (c.editing) {
        sigaction(SIGINT, &sa, &old);
        fprintf(stderr, "chat: type a message and press Enter; /help for commands, Ctrl-D or /exit to quit.\n");
    }
    rc = loop(&c, in);
    if (c.editing) sigaction(SIGINT, &old, NULL);
    if (tio_set) tcsetattr(STDIN_FILENO, TCSANOW, &tio_old);
    bn_line_input_close(in);
    bn_chat_history_clear(&c.history);
    bn_run_close(&c.run);
    return rc;
}
