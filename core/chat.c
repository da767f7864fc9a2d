// chat.c - builds chat prompts in the bitnet, llama3 and falcon3 styles (formats in chat.h).
//
// A prompt is first laid out as a list of pieces: structural text, message
// contents, and special tokens (BOS, the end of a turn, header markers). The
// text form concatenates them; the token form encodes runs of text and content
// as plain text and each special piece as its token, so message contents are
// never parsed for special tokens.
#include <stdlib.h>
#include <string.h>

#include "chat.h"

static const char BOS_TEXT[] = "<|begin_of_text|>";
static const char EOT_TEXT[] = "<|eot_id|>";         // bitnet, llama3
static const char FALCON3_EOS_TEXT[] = "<|endoftext|>"; // falcon3's eos_token

int32_t bn_chat_end_token(const bn_tokenizer *t) {
    return bn_tokenizer_chat_style(t) == BN_CHAT_STYLE_FALCON3 ? bn_tokenizer_eos(t)
                                                                : bn_tokenizer_eot(t);
}

// ---- layout -------------------------------------------------------------------------
typedef enum piece_kind {
    P_TEXT,    // structural text
    P_CONTENT, // a message's content: always plain text
    P_SPECIAL, // a special token named by its text (plain text if the vocabulary lacks it)
    P_BOS,     // the tokenizer's BOS
    P_END,     // the style's end of turn (bn_chat_end_token)
} piece_kind;

typedef struct piece {
    piece_kind kind;
    const char *s;
    size_t len;
} piece;

typedef struct layout {
    piece *p;
    size_t n;
} layout;

static void put(layout *l, piece_kind kind, const char *s, size_t len) {
    l->p[l->n++] = (piece){kind, s, len};
}
#define PUT_LIT(l, kind, lit) put(l, kind, lit, sizeof lit - 1)

// Length of the UTF-8 whitespace character (Python str.isspace) at s, else 0.
static size_t space_at(const unsigned char *s, size_t n) {
    if (n >= 1 && ((s[0] >= 0x09 && s[0] <= 0x0D) || (s[0] >= 0x1C && s[0] <= 0x20))) return 1;
    if (n >= 2 && s[0] == 0xC2 && (s[1] == 0x85 || s[1] == 0xA0)) return 2;
    if (n >= 3 && s[0] == 0xE1 && s[1] == 0x9A && s[2] == 0x80) return 3; // U+1680
    if (n >= 3 && s[0] == 0xE2 && s[1] == 0x80 &&
        ((s[2] >= 0x80 && s[2] <= 0x8A) || s[2] == 0xA8 || s[2] == 0xA9 || s[2] == 0xAF))
        return 3; // U+2000..200A, U+2028, U+2029, U+202F
    if (n >= 3 && s[0] == 0xE2 && s[1] == 0x81 && s[2] == 0x9F) return 3; // U+205F
    if (n >= 3 && s[0] == 0xE3 && s[1] == 0x80 && s[2] == 0x80) return 3; // U+3000
    return 0;
}

// Jinja's `| trim` (Python str.strip()): the span of s without leading and
// trailing whitespace.
static void trim(const char **s, size_t *len) {
    const unsigned char *p = (const unsigned char *)*s;
    size_t n = *len, k;
    while ((k = space_at(p, n))) p += k, n -= k;
    for (;;) { // the last whitespace character ending at p + n, if any
        size_t found = 0;
        for (size_t w = 1; w <= 3 && w <= n && !found; w++)
            if (space_at(p + n - w, w) == w) found = w;
        if (!found) break;
        n -= found;
    }
    *s = (const char *)p;
    *len = n;
}

static const char *role_check(const bn_chat_message *m, bn_error *err) {
    const char *r = m->role;
    if (r && (!strcmp(r, "system") || !strcmp(r, "user") || !strcmp(r, "assistant"))) return r;
    bn_errorf(err, "chat: unknown role \"%s\" (system, user or assistant)", r ? r : "(null)");
    return NULL;
}

static void content_of(const bn_chat_message *m, const char **s, size_t *len) {
    *s = m->content ? m->content : "";
    *len = strlen(*s);
}

static void layout_bitnet(layout *l, const bn_chat_message *msgs, size_t n, bool add_bos, bool gen) {
    if (add_bos) put(l, P_BOS, BOS_TEXT, sizeof BOS_TEXT - 1);
    for (size_t i = 0; i < n; i++) {
        const char *r = msgs[i].role, *c;
        size_t cl;
        if (!strcmp(r, "system")) PUT_LIT(l, P_TEXT, "System: ");
        else if (!strcmp(r, "user")) PUT_LIT(l, P_TEXT, "User: ");
        else PUT_LIT(l, P_TEXT, "Assistant: ");
        content_of(&msgs[i], &c, &cl);
        put(l, P_CONTENT, c, cl);
        put(l, P_END, EOT_TEXT, sizeof EOT_TEXT - 1);
    }
    if (gen) PUT_LIT(l, P_TEXT, "Assistant: ");
}

static void llama3_header(layout *l, const char *role) {
    PUT_LIT(l, P_SPECIAL, "<|start_header_id|>");
    put(l, P_TEXT, role, strlen(role));
    PUT_LIT(l, P_SPECIAL, "<|end_header_id|>");
    PUT_LIT(l, P_TEXT, "\n\n");
}

static void layout_llama3(layout *l, const bn_chat_message *msgs, size_t n, bool add_bos, bool gen) {
    if (add_bos) put(l, P_BOS, BOS_TEXT, sizeof BOS_TEXT - 1);
    for (size_t i = 0; i < n; i++) {
        const char *c;
        size_t cl;
        llama3_header(l, msgs[i].role);
        content_of(&msgs[i], &c, &cl);
        trim(&c, &cl);
        put(l, P_CONTENT, c, cl);
        put(l, P_END, EOT_TEXT, sizeof EOT_TEXT - 1);
    }
    if (gen) llama3_header(l, "assistant");
}

static void layout_falcon3(layout *l, const bn_chat_message *msgs, size_t n, bool add_bos, bool gen) {
    if (!add_bos && n) PUT_LIT(l, P_TEXT, "\n"); // after the previous reply's <|endoftext|>
    for (size_t i = 0; i < n; i++) {
        const char *r = msgs[i].role, *c;
        size_t cl;
        if (!strcmp(r, "system")) PUT_LIT(l, P_SPECIAL, "<|system|>");
        else if (!strcmp(r, "user")) PUT_LIT(l, P_SPECIAL, "<|user|>");
        else PUT_LIT(l, P_SPECIAL, "<|assistant|>");
        PUT_LIT(l, P_TEXT, "\n");
        content_of(&msgs[i], &c, &cl);
        put(l, P_CONTENT, c, cl);
        if (!strcmp(r, "assistant")) {
            put(l, P_END, FALCON3_EOS_TEXT, sizeof FALCON3_EOS_TEXT - 1);
            if (i + 1 < n) PUT_LIT(l, P_TEXT, "\n");
        } else {
            PUT_LIT(l, P_TEXT, "\n");
        }
    }
    if (gen && n) { // the template writes it inside its loop over messages
        PUT_LIT(l, P_SPECIAL, "<|assistant|>");
        PUT_LIT(l, P_TEXT, "\n");
    }
}

// The pieces of a prompt; l->p is malloc'd. Checks the roles first.
static int lay_out(bn_chat_style style, const bn_chat_message *msgs, size_t n, bool add_bos,
                   bool gen, layout *l, bn_error *err) {
    *l = (layout){0};
    for (size_t i = 0; i < n; i++)
        if (!role_check(&msgs[i], err)) return -1;
    if (n > (SIZE_MAX - 8) / 8) return bn_errorf(err, "chat: too many messages");
    l->p = malloc((8 * n + 8) * sizeof *l->p); // at most 7 pieces a message, 5 more
    if (!l->p) return bn_errorf(err, "chat: out of memory");
    switch (style) {
    case BN_CHAT_STYLE_LLAMA3: layout_llama3(l, msgs, n, add_bos, gen); break;
    case BN_CHAT_STYLE_FALCON3: layout_falcon3(l, msgs, n, add_bos, gen); break;
    default: layout_bitnet(l, msgs, n, add_bos, gen); break;
    }
    return 0;
}

int bn_chat_format(bn_chat_style style, const bn_chat_message *msgs, size_t n, bool add_bos,
                   bool add_generation_prompt, char **out, size_t *len, bn_error *err) {
    *out = NULL;
    *len = 0;
    layout l;
    if (lay_out(style, msgs, n, add_bos, add_generation_prompt, &l, err)) return -1;
    size_t total = 0;
    for (size_t i = 0; i < l.n; i++) total += l.p[i].len;
    char *s = malloc(total + 1);
    if (!s) {
        free(l.p);
        return bn_errorf(err, "chat: out of memory");
    }
    size_t o = 0;
    for (size_t i = 0; i < l.n; i++) {
        if (l.p[i].len) memcpy(s + o, l.p[i].s, l.p[i].len);
        o += l.p[i].len;
    }
    s[o] = 0;
    free(l.p);
    *out = s;
    *len = o;
    return 0;
}

// ---- tokens -------------------------------------------------------------------------
typedef struct id_buf {
    int32_t *ids;
    size_t n, cap;
} id_buf;

static int append(id_buf *b, const int32_t *ids, size_t n, bn_error *err) {
    if (b->n + n > b->cap) {
        size_t cap = 2 * (b->n + n) + 16;
        int32_t *p = realloc(b->ids, cap * sizeof *p);
        if (!p) return bn_errorf(err, "chat: out of memory");
        b->ids = p;
        b->cap = cap;
    }
    if (n) memcpy(b->ids + b->n, ids, n * sizeof *ids);
    b->n += n;
    return 0;
}

// Plain text (no special tokens parsed) appended as ids.
static int append_text(const bn_tokenizer *t, id_buf *b, const char *text, size_t len, bn_error *err) {
    if (!len) return 0;
    int32_t *ids;
    size_t n;
    if (bn_tokenize(t, text, len, false, false, &ids, &n, err)) return -1;
    int rc = append(b, ids, n, err);
    free(ids);
    return rc;
}

// The special token whose text is s, or -1 when the vocabulary has no such
// CONTROL / user-defined token (the text is then plain text, as parsing it
// with parse_special would make it).
static int special_id(const bn_tokenizer *t, const char *s, size_t len, int32_t *id, bn_error *err) {
    int32_t *ids;
    size_t n;
    *id = -1;
    if (bn_tokenize(t, s, len, false, true, &ids, &n, err)) return -1;
    if (n == 1) {
        int32_t type = bn_tokenizer_token_type(t, ids[0]);
        if (type == BN_TOKEN_TYPE_CONTROL || type == BN_TOKEN_TYPE_USER_DEFINED) *id = ids[0];
    }
    free(ids);
    return 0;
}

int bn_chat_tokens(const bn_tokenizer *t, const bn_chat_message *msgs, size_t n, bool add_bos,
                   bool add_generation_prompt, int32_t **ids, size_t *n_ids, bn_error *err) {
    *ids = NULL;
    *n_ids = 0;
    const bn_chat_style style = bn_tokenizer_chat_style(t);
    int32_t bos = bn_tokenizer_bos(t), end = bn_chat_end_token(t);
    // A text model (the one that ships with bitnet-gpu) has no end of turn.
    if (add_bos && style != BN_CHAT_STYLE_FALCON3 && bos < 0)
        return bn_errorf(err, "chat: this model has no chat format (its vocabulary has no BOS token)");
    if (end < 0)
        return bn_errorf(err, "chat: this model has no chat format (its vocabulary has no %s token)",
                         style == BN_CHAT_STYLE_FALCON3 ? FALCON3_EOS_TEXT : EOT_TEXT);
    layout l;
    if (lay_out(style, msgs, n, add_bos, add_generation_prompt, &l, err)) return -1;
    // Text and content accumulate into one run (so that the run is split into
    // pre-tokens exactly as the whole text would be); a special token ends it.
    id_buf b = {0};
    char *run = NULL;
    size_t run_len = 0, run_cap = 0;
    int rc = 0;
    for (size_t i = 0; !rc && i <= l.n; i++) {
        int32_t id = -1;
        if (i < l.n) {
            const piece *p = &l.p[i];
            if (p->kind == P_BOS) id = bos;
            else if (p->kind == P_END) id = end;
            else if (p->kind == P_SPECIAL) rc = special_id(t, p->s, p->len, &id, err);
            if (rc) break;
            if (id < 0) { // text, content, or a special piece the vocabulary lacks
                if (run_len + p->len + 1 > run_cap) {
                    size_t cap = 2 * (run_len + p->len) + 64;
                    char *r = realloc(run, cap);
                    if (!r) {
                        rc = bn_errorf(err, "chat: out of memory");
                        break;
                    }
                    run = r;
                    run_cap = cap;
                }
                if (p->len) memcpy(run + run_len, p->s, p->len);
                run_len += p->len;
                continue;
            }
        }
        rc = append_text(t, &b, run, run_len, err); // the run so far, then the special token
        run_len = 0;
        if (!rc && id >= 0) rc = append(&b, &id, 1, err);
    }
    free(run);
    free(l.p);
    if (!rc && !b.ids && !(b.ids = malloc(sizeof *b.ids))) // never NULL on success
        rc = bn_errorf(err, "chat: out of memory");
    if (rc) {
        free(b.ids);
        return -1;
    }
    *ids = b.ids;
    *n_ids = b.n;
    return 0;
}
