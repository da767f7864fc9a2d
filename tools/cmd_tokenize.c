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

// ---- a minimal JSON-line reader for --jsonl ---------------------------------------
// cJSON stops its C strings at "\u0000", which tokenizer test texts do contain,
// so the "text" value is decoded here with its true length.
static const char *skip_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
    return p;
}

static int hex4(const char *p, unsigned *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        *v = *v * 16 + (unsigned)d;
    }
    return 0;
}

// Decodes the string starting at the opening quote p into out (room for
// strlen(p) bytes; NULL to only skip). Returns the byte after the closing
// quote, or NULL when malformed.
static const char *json_string(const char *p, char *out, size_t *len) {
    if (*p++ != '"') return NULL;
    size_t n = 0;
    for (;;) {
        unsigned char c = (unsigned char)*p++;
        if (c == '"') break;
        if (c == 0 || c < 0x20) return NULL;
        if (c != '\\') {
            if (out) out[n] = (char)c;
            n++;
            continue;
        }
        char e = *p++;
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char map[] = "\"\\/\b\f\n\r\t";
            if (out) out[n] = map[simple - "\"\\/bfnrt"];
            n++;
            continue;
        }
        unsigned cp, lo;
        if (e != 'u' || hex4(p, &cp)) return NULL;
        p += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && p[0] == '\\' && p[1] == 'u' && !hex4(p + 2, &lo) &&
            lo >= 0xDC00 && lo < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
        }
        unsigned char u[4];
        size_t k;
        if (cp < 0x80) {
            u[0] = (unsigned char)cp;
            k = 1;
        } else if (cp < 0x800) {
            u[0] = (unsigned char)(0xC0 | cp >> 6);
            u[1] = (unsigned char)(0x80 | (cp & 0x3F));
            k = 2;
        } else if (cp < 0x10000) { // a lone surrogate is kept as its 3 bytes
            u[0] = (unsigned char)(0xE0 | cp >> 12);
            u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
            u[2] = (unsigned char)(0x80 | (cp & 0x3F));
            k = 3;
        } else {
            u[0] = (unsigned char)(0xF0 | cp >> 18);
            u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
            u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
            u[3] = (unsigned char)(0x80 | (cp & 0x3F));
            k = 4;
        }
        if (out) memcpy(out + n, u, k); // \uXXXX is 6 input bytes for at most 4 output bytes
        n += k;
    }
    if (len) *len = n;
    return p;
}

// Skips any JSON value; NULL when malformed.
static const char *json_skip(const char *p) {
    p = skip_ws(p);
    if (*p == '"') return json_string(p, NULL, NULL);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        do {
            if (*p == '"') {
                if (!(p = json_string(p, NULL, NULL))) return NULL;
                continue;
            }
            if (*p == '{' || *p == '[') depth++;
            if (*p == '}' || *p == ']') depth--;
            if (!*p) return NULL;
            p++;
        } while (depth > 0);
        return p;
    }
    while (*p && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n') p++;
    return p;
}

// The "text" field of a one-line JSON object. Returns 0, or -1 with a reason.
static int jsonl_text(const char *line, char *out, size_t *len, const char **why) {
    const char *p = skip_ws(line);
    if (*p++ != '{') return *why = "not a JSON object", -1;
    for (;;) {
        p = skip_ws(p);
        if (*p == '}') break;
        char key[16];
        size_t kl;
        const char *q = json_string(p, NULL, &kl);
        if (!q) return *why = "bad key", -1;
        bool is_text = kl == 4 && (json_string(p, key, &kl), memcmp(key, "text", 4) == 0);
        p = skip_ws(q);
        if (*p++ != ':') return *why = "expected ':'", -1;
        p = skip_ws(p);
        if (is_text) {
            if (*p != '"' || !json_string(p, out, len)) return *why = "\"text\" is not a string", -1;
            return 0;
        }
        if (!(p = json_skip(p))) return *why = "malformed value", -1;
        p = skip_ws(p);
        if (*p == ',') p++;
    }
    return *why = "no \"text\" field", -1;
}

// ---- the command ------------------------------------------------------------------
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
        char *buf = malloc(len + 1); // a decoded string is never longer than its JSON
        size_t lineno = 0;
        for (char *line = text; !rc && buf && line < text + len;) {
            char *eol = memchr(line, '\n', (size_t)(text + len - line));
            if (eol) *eol = 0;
            lineno++;
            if (*skip_ws(line)) {
                const char *why = NULL;
                size_t tl;
                if (jsonl_text(line, buf, &tl, &why)) {
                    fprintf(stderr, "error: %s:%zu: %s\n", jsonl, lineno, why);
                    rc = 1;
                } else {
                    rc = encode_and_print(t, buf, tl, add_bos, special, false, true);
                }
            }
            if (!eol) break;
            line = eol + 1;
        }
        if (!buf) {
            fprintf(stderr, "error: out of memory\n");
            rc = 1;
        }
        free(buf);
    }
    free(text);
    bn_tokenizer_free(t);
    return rc; // main() reports a failed write
}
