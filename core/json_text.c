// json_text.c - text for JSON documents (json_text.h).
#include "json_text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitnet.h" // bn_utf8_char_len

int bn_buf_reserve(bn_buf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return 0;
    const size_t cap = 2 * (b->len + extra + 1);
    char *grown = !b->max || cap <= b->max ? realloc(b->data, cap) : NULL;
    if (!grown) return -1;
    b->data = grown;
    b->cap = cap;
    b->data[b->len] = 0;
    return 0;
}

int bn_buf_append(bn_buf *b, const void *data, size_t n) {
    if (bn_buf_reserve(b, n)) return -1;
    if (n) memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int bn_buf_printf(bn_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || bn_buf_reserve(b, (size_t)n)) return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

cJSON *bn_text_json(const char *text, size_t len) {
    char *s = malloc(3 * len + 1); // a bad byte (1) becomes U+FFFD (3)
    if (!s) return cJSON_CreateString("");
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        const size_t n = bn_utf8_char_len(text + i, len - i);
        if (n && text[i]) {
            memcpy(s + o, text + i, n);
            o += n, i += n;
        } else {
            memcpy(s + o, "\xEF\xBF\xBD", 3);
            o += 3, i++;
        }
    }
    s[o] = 0;
    cJSON *j = cJSON_CreateString(s);
    free(s);
    return j;
}

char *bn_print_taken(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

char *bn_message_text(const cJSON *content, bool *ok) {
    *ok = true;
    if (!content || cJSON_IsNull(content)) return strdup("");
    if (cJSON_IsString(content)) return strdup(content->valuestring);
    bn_buf joined = {0};
    bool oom = bn_buf_reserve(&joined, 0) != 0;
    const cJSON *part;
    *ok = cJSON_IsArray(content);
    cJSON_ArrayForEach(part, content) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(t)) *ok = false;
        else oom |= bn_buf_append(&joined, t->valuestring, strlen(t->valuestring)) != 0;
    }
    if (*ok && !oom) return joined.data;
    free(joined.data);
    return NULL;
}
