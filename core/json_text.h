// json_text.h - text for JSON documents, shared by the library's function
// calling (chat_tools.h) and the server: a growable byte buffer, generated
// text made safe for a JSON string, a chat message's text.
#ifndef BN_JSON_TEXT_H
#define BN_JSON_TEXT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

// A growable byte buffer: data[0..len), with a NUL after it once allocated. cap
// bytes are allocated, never more than max (0: no limit). Zero-initialise it.
typedef struct bn_buf {
    char *data;
    size_t len, cap, max;
} bn_buf;

// Room for extra more bytes and the NUL. Returns 0, or -1 (out of memory, or
// past max) with b unchanged.
int bn_buf_reserve(bn_buf *b, size_t extra);
// Appends n bytes, keeping the NUL after them. Returns 0, or -1 as bn_buf_reserve.
int bn_buf_append(bn_buf *b, const void *data, size_t n);
// Appends printf's text. Returns 0, or -1 as bn_buf_reserve.
int bn_buf_printf(bn_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// A JSON string of len bytes of generated text: invalid UTF-8 and NUL bytes
// (which cJSON cannot carry) become U+FFFD, so the document is always valid.
cJSON *bn_text_json(const char *text, size_t len);

// o printed compact (malloc'd; NULL when memory is short), and deleted.
char *bn_print_taken(cJSON *o);

// A chat message's text: content a string, or an array of {"type": "text",
// "text"} parts joined; absent or null is "". NULL with *ok false when it is
// neither (NULL with *ok true: out of memory). malloc'd.
char *bn_message_text(const cJSON *content, bool *ok);

#endif
