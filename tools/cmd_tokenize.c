// cmd_tokenize.c - `bitnet-gpu tokenize`: text to token ids.
//
//   bitnet-gpu tokenize [-m MODEL | --tokenizer FILE] [-p TEXT | -f FILE | --jsonl FILE]
//                       [--json] [--no-bos] [--special]
//
// Prints the ids space-separated, or with --json {"ids":[...],"pieces":[...]}
// (pieces are the decoded bytes of each token; bytes that are not valid UTF-8
// on their own, e.g. a third of an emoji, show as U+FFFD). --jsonl reads one
// JSON object per line with a "text" field and prints {"ids":[...]} per line,
// loading the tokenizer once.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bitnet.h"
#include "cli.h"
#include "commands.h"
#include "io.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: bitnet-gpu tokenize (-m MODEL | --tokenizer FILE) (-p TEXT | -f FILE | --jsonl FILE)\n"
            "                           [--json] [--no-bos] [--special]\n"
            "  -m MODEL          GGUF file with an embedded vocabulary\n"
            "  --tokenizer FILE  HuggingFace tokenizer.json\n"
            "  -p TEXT           text to encode; -f FILE: read it from a file, - for stdin (bytes as they are)\n"
            "  --jsonl FILE      one {\"text\": ...} object per line -> one {\"ids\": [...]} per line (- for stdin)\n"
            "  --json            print {\"ids\":[...],\"pieces\":[...]}\n"
            "  --no-bos          do not prepend BOS (default: the vocabulary's add_bos_token)\n"
            "  --special         parse special-token text such as <|eot_id|> into the token\n");
}

// JSON string body, escaping what JSON requires; invalid UTF-8 becomes U+FFFD.
static void print_json_string(const char *s, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t k = bn_utf8_char_len(s + i, n - i);
        if (k == 0) {
            fputs("\\ufffd", stdout);
            i++;
        } else if (c == '"' || c == '\\') {
            printf("\\%c", c);
            i++;
        } else if (c < 0x20) {
            printf("\\u%04x", c);
            i++;
        } else {
            fwrite(s + i, 1, k, stdout);
            i += k;
        }
    }
    putchar('"');
}

static int encode_and_print(const bn_tokenizer *t, const char *text, size_t len, bool add_bos,
                            bool special, bool json, bool ids_only_json) {
    int32_t *ids;
    size_t n;
    bn_error err = {{0}};
    if (bn_tokenize(t, text, len, add_bos, special, &ids, &n, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    if (json || ids_only_json) {
        fputs("{\"ids\":[", stdout);
        for (size_t i = 0; i < n; i++) printf(i ? ",%d" : "%d", ids[i]);
        fputs("]", stdout);
        if (!ids_only_json) {
            fputs(",\"pieces\":[", stdout);
            for (size_t i = 0; i < n; i++) {
                size_t pl;
                const char *piece = bn_token_bytes(t, ids[i], &pl);
                if (i) putchar(',');
                print_json_string(piece, pl);
            }
            fputs("]", stdout);
        }
        fputs("}\n", stdout);
    } else {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
    }
    free(ids);
    return 0;
}

// ---- --jsonl: one {"text": ...} object per line ---------------------------------
// Read with Jansson rather than the cJSON the rest of the CLI uses: cJSON's
// strings end at the first NUL, and tokenizer test texts contain "\u0000";
// JSON_ALLOW_NUL keeps it, and json_string_length gives the true length. A
// repeated key is an error, not a silent pick of one "text". Jansson also
// refuses invalid UTF-8 and unpaired surrogate escapes, so every text it
// returns is valid UTF-8.
enum { JSONL_FLAGS = JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES | JSON_DECODE_ANY };

// The "text" of one line (n bytes): a JSON object with a string "text" field;
// other fields are ignored. Returns the parsed line, which owns *text (free it
// with json_decref), or NULL with the reason in why.
static json_t *jsonl_text(const char *line, size_t n, const char **text, size_t *len, char *why,
                          size_t why_size) {
    json_error_t e;
    json_t *root = json_loadb(line, n, JSONL_FLAGS, &e);
    if (!root) {
        snprintf(why, why_size, "invalid JSON at column %d: %s", e.column, e.text);
        return NULL;
    }
    const json_t *t = json_object_get(root, "text"); // NULL when root is not an object
    const char *bad = !json_is_object(root) ? "not a JSON object"
                      : !t                  ? "no \"text\" field"
                      : !json_is_string(t)  ? "\"text\" is not a string"
                                            : NULL;
    if (bad) {
        snprintf(why, why_size, "%s", bad);
        json_decref(root);
        return NULL;
    }
    *text = json_string_value(t);
    *len = json_string_length(t);
    return root;
}

static bool is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
    return true;
}

// Encodes each line of data (n bytes, read from path) and prints {"ids":[...]}
// per line; blank lines are skipped, the first bad one ends the run. Returns
// the exit status.
static int tokenize_jsonl(const bn_tokenizer *t, const char *path, const char *data, size_t n,
                          bool add_bos, bool special) {
    size_t lineno = 0;
    for (const char *line = data, *end = data + n; line < end;) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        const size_t line_len = (size_t)((eol ? eol : end) - line);
        lineno++;
        if (!is_blank(line, line_len)) {
            const char *text;
            size_t len;
            char why[JSON_ERROR_TEXT_LENGTH + 64];
            json_t *root = jsonl_text(line, line_len, &text, &len, why, sizeof why);
            if (!root) {
                fprintf(stderr, "error: %s:%zu: %s\n", path, lineno, why);
                return 1;
            }
            int rc = encode_and_print(t, text, len, add_bos, special, false, true);
            json_decref(root);
            if (rc) return rc;
        }
        if (!eol) break;
        line = eol + 1;
    }
    return 0;
}

// ---- the command ------------------------------------------------------------------
int bn_cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *tok_path = NULL, *prompt = NULL, *file = NULL, *jsonl = NULL;
    bool json = false, no_bos = false, special = false;
    enum { TOKENIZER = 256, JSONL, JSON, NO_BOS, SPECIAL };
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},  {"tokenizer", required_argument, NULL, TOKENIZER},
        {"prompt", required_argument, NULL, 'p'}, {"file", required_argument, NULL, 'f'},
        {"jsonl", required_argument, NULL, JSONL}, {"json", no_argument, NULL, JSON},
        {"no-bos", no_argument, NULL, NO_BOS},    {"special", no_argument, NULL, SPECIAL},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    optind = 0; // glibc: a fresh scan (main() may parse more than one command)
    for (int c; (c = bn_getopt("tokenize", argc, argv, "m:p:f:h", longopts)) != -1;) {
        switch (c) {
        case 'm': model = optarg; break;
        case TOKENIZER: tok_path = optarg; break;
        case 'p': prompt = optarg; break;
        case 'f': file = optarg; break;
        case JSONL: jsonl = optarg; break;
        case JSON: json = true; break;
        case NO_BOS: no_bos = true; break;
        case SPECIAL: special = true; break;
        case 'h': usage(stdout); return 0;
        default: // 1: a positional argument, which tokenize has no place for; '?': bn_getopt said why
            if (c == 1) bn_cli_unknown("tokenize", false, optarg);
            usage(stderr);
            return 2;
        }
    }
    if (!model == !tok_path) {
        fprintf(stderr, "error: give exactly one of -m MODEL and --tokenizer FILE\n");
        return 2;
    }
    if ((prompt != NULL) + (file != NULL) + (jsonl != NULL) != 1) {
        fprintf(stderr, "error: give exactly one of -p TEXT, -f FILE and --jsonl FILE\n");
        return 2;
    }

    bn_error err = {{0}};
    bn_tokenizer *t = NULL;
    if (model ? bn_tokenizer_from_model(model, &t, &err) : bn_tokenizer_from_json(tok_path, &t, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    bool add_bos = !no_bos && bn_tokenizer_add_bos(t);

    int rc = 0;
    size_t len = 0;
    char *text = NULL;
    if (prompt) {
        rc = encode_and_print(t, prompt, strlen(prompt), add_bos, special, json, false);
    } else if (bn_read_input(file ? file : jsonl, &text, &len)) {
        rc = 1;
    } else if (file) {
        rc = encode_and_print(t, text, len, add_bos, special, json, false);
    } else {
        rc = tokenize_jsonl(t, jsonl, text, len, add_bos, special);
    }
    free(text);
    bn_tokenizer_free(t);
    return rc; // main() reports a failed write
}
