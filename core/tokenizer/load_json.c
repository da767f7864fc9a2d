// load_json.c - loads a HuggingFace tokenizer.json (byte-level BPE) and,
// when it sits beside it, tokenizer_config.json (bos/eos/add_bos/chat_template).
// A loader: it builds the tables through vocab.h and calls no encoder.
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vocab.h"

// Reads a whole file. Returns NULL with err set (missing files: *missing = true).
static char *read_all(const char *path, size_t *len, bool *missing, bn_error *err) {
    if (missing) *missing = false;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (missing) *missing = errno == ENOENT;
        bn_errorf(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    long sz = -1;
    if (fseek(f, 0, SEEK_END) == 0) sz = ftell(f);
    if (sz >= 0 && fseek(f, 0, SEEK_SET) == 0) buf = malloc((size_t)sz + 1);
    if (!buf || fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        bn_errorf(err, "%s: cannot read", path);
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[sz] = 0;
    *len = (size_t)sz;
    return buf;
}

// A JSON number that is an integer id in [0, INT32_MAX).
static bool json_id(const cJSON *v, int32_t *id) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0 && d < (double)INT32_MAX) || d != floor(d)) return false;
    *id = (int32_t)d;
    return true;
}

// The Split regex of the pre-tokenizer (directly or inside a Sequence), or NULL.
static const char *split_regex(const cJSON *pre) {
    if (!cJSON_IsObject(pre)) return NULL;
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pre, "type"));
    if (type && strcmp(type, "Split") == 0) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(pre, "pattern");
        return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pat, "Regex"));
    }
    if (type && strcmp(type, "Sequence") == 0) {
        const cJSON *item;
        cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers")) {
            const char *r = split_regex(item);
            if (r) return r;
        }
    }
    return NULL;
}

// bos_token / eos_token in tokenizer_config.json: a string or {"content": ...}.
static const char *config_token(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_GetStringValue(v);
}

static int resolve(const bn_tokenizer *t, const char *text, const char *what, int32_t *id,
                   bn_error *err) {
    *id = bn_tok_find(t, text, strlen(text));
    if (*id < 0) return bn_errorf(err, "tokenizer_config.json: %s \"%s\" is not in the vocabulary", what, text);
    return 0;
}

// Special ids, add_bos and chat template, from tokenizer_config.json when present.
static int load_config(bn_tokenizer *t, const char *json_path, int32_t *bos, int32_t *eos,
                       bool *add_bos, char **tmpl, bn_error *err) {
    const char *slash = strrchr(json_path, '/');
    size_t dl = slash ? (size_t)(slash - json_path + 1) : 0;
    char *path = malloc(dl + sizeof "tokenizer_config.json");
    if (!path) return bn_errorf(err, "tokenizer: out of memory");
    memcpy(path, json_path, dl);
    strcpy(path + dl, "tokenizer_config.json");
    size_t len;
    bool missing;
    char *text = read_all(path, &len, &missing, err);
    if (!text) {
        free(path);
        return missing ? 0 : -1; // no config: the defaults stand
    }
    cJSON *cfg = cJSON_ParseWithLength(text, len);
    free(text);
    int rc = 0;
    if (!cJSON_IsObject(cfg)) {
        rc = bn_errorf(err, "%s: not a JSON object", path);
        goto done;
    }
    const char *s;
    if ((s = config_token(cfg, "bos_token")) && resolve(t, s, "bos_token", bos, err)) rc = -1;
    if (!rc && (s = config_token(cfg, "eos_token")) && resolve(t, s, "eos_token", eos, err)) rc = -1;
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
    if (cJSON_IsBool(ab)) *add_bos = cJSON_IsTrue(ab);
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    if (cJSON_IsArray(ct)) { // [{"name": ..., "template": ...}]: take "default", else the first
        const cJSON *item, *pick = cJSON_GetArrayItem(ct, 0);
        cJSON_ArrayForEach(item, ct) {
            const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(item, "name"));
            if (name && strcmp(name, "default") == 0) pick = item;
        }
        ct = cJSON_GetObjectItemCaseSensitive(pick, "template");
    }
    if (!rc && cJSON_IsString(ct) && !(*tmpl = strdup(ct->valuestring)))
        rc = bn_errorf(err, "tokenizer: out of memory");
done:
    cJSON_Delete(cfg);
    free(path);
    return rc;
}

static int load(const cJSON *root, const char *path, bn_tokenizer **out, bn_error *err) {
    if (!cJSON_IsObject(root)) return bn_errorf(err, "%s: not a JSON object", path);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) return bn_errorf(err, "%s: missing \"model\"", path);
    const char *mtype = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(model, "type"));
    if (mtype && strcmp(mtype, "BPE") != 0)
        return bn_errorf(err, "%s: model.type is \"%s\", only \"BPE\" is supported", path, mtype);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab)) return bn_errorf(err, "%s: missing model.vocab object", path);
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsArray(merges)) return bn_errorf(err, "%s: missing model.merges array", path);
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (norm && !cJSON_IsNull(norm))
        return bn_errorf(err, "%s: a normalizer is not supported (Llama-3 has none)", path);
    const char *regex = split_regex(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"));
    if (!regex)
        return bn_errorf(err, "%s: pre_tokenizer has no Split regex (only Llama-3 style byte-level BPE is supported)", path);
    const cJSON *ig = cJSON_GetObjectItemCaseSensitive(model, "ignore_merges");
    bool ignore_merges = cJSON_IsTrue(ig);
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (added && !cJSON_IsArray(added) && !cJSON_IsNull(added))
        return bn_errorf(err, "%s: added_tokens is not an array", path);

    // Ids must form 0..n-1 without gaps: more ids than entries means a gap.
    size_t n_entries = 0;
    int32_t max_id = -1, id = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, vocab) {
        if (!json_id(item, &id))
            return bn_errorf(err, "%s: vocab entry \"%.64s\" has no valid id", path, item->string);
        max_id = id > max_id ? id : max_id;
        n_entries++;
    }
    cJSON_ArrayForEach(item, added) {
        if (!json_id(cJSON_GetObjectItemCaseSensitive(item, "id"), &id) ||
            !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(item, "content")))
            return bn_errorf(err, "%s: an added_tokens entry lacks a valid id or content", path);
        max_id = id > max_id ? id : max_id;
        n_entries++;
    }
    if ((size_t)max_id + 1 > n_entries)
        return bn_errorf(err, "%s: token ids go up to %d but there are only %zu tokens (gap in ids)",
                         path, max_id, n_entries);

    bn_tokenizer *t = bn_tok_new(max_id + 1, err);
    if (!t) return -1;
    cJSON_ArrayForEach(item, vocab) {
        json_id(item, &id);
        const char *s = item->string;
        if (bn_tok_set_token(t, id, s, strlen(s), BN_TOKEN_TYPE_NORMAL, err)) goto fail;
    }
    cJSON_ArrayForEach(item, added) {
        json_id(cJSON_GetObjectItemCaseSensitive(item, "id"), &id);
        const char *s = cJSON_GetObjectItemCaseSensitive(item, "content")->valuestring;
        int32_t type = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(item, "special"))
                           ? BN_TOKEN_TYPE_CONTROL : BN_TOKEN_TYPE_USER_DEFINED;
        if (bn_tok_is_set(t, id)) { // an added token may repeat a vocab entry, same text
            size_t len = t->text_len[id];
            const char *old = t->text.data + t->text_off[id];
            if (len != strlen(s) || memcmp(old, s, len) != 0) {
                bn_errorf(err, "%s: id %d is both \"%.64s\" and \"%.64s\"", path, id, old, s);
                goto fail;
            }
            t->type[id] = type;
            continue;
        }
        if (bn_tok_set_token(t, id, s, strlen(s), type, err)) goto fail;
    }
    if (bn_tok_finish_vocab(t, err)) goto fail;

    if (bn_tok_begin_merges(t, (size_t)cJSON_GetArraySize(merges), err)) goto fail;
    size_t rank = 0;
    cJSON_ArrayForEach(item, merges) {
        const char *a = NULL, *b = NULL;
        size_t al = 0, bl = 0;
        if (cJSON_IsString(item)) { // "a b": vocabulary forms never contain a space
            const char *s = item->valuestring, *sp = strchr(s, ' ');
            if (sp && !strchr(sp + 1, ' ')) {
                a = s;
                al = (size_t)(sp - s);
                b = sp + 1;
                bl = strlen(b);
            }
        } else if (cJSON_IsArray(item) && cJSON_GetArraySize(item) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(item, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(item, 1))) { // ["a", "b"]
            a = cJSON_GetArrayItem(item, 0)->valuestring;
            b = cJSON_GetArrayItem(item, 1)->valuestring;
            al = strlen(a);
            bl = strlen(b);
        }
        if (!a) {
            bn_errorf(err, "%s: merge %zu is neither \"a b\" nor [\"a\", \"b\"]", path, rank);
            goto fail;
        }
        if (bn_tok_add_merge(t, a, al, b, bl, err)) goto fail;
        rank++;
    }

    int32_t bos, eos, eot;
    bn_tok_llama3_specials(t, &bos, &eos, &eot);
    bool add_bos = true; // Llama-3's post_processor prepends BOS
    char *tmpl = NULL;
    if (load_config(t, path, &bos, &eos, &add_bos, &tmpl, err)) goto fail;
    int rc = bn_tok_finish(t, bos, eos, eot, add_bos, tmpl, regex, ignore_merges, err);
    free(tmpl);
    if (rc) goto fail;
    *out = t;
    return 0;
fail:
    bn_tokenizer_free(t);
    return -1;
}

int bn_tokenizer_from_json(const char *path, bn_tokenizer **out, bn_error *err) {
    *out = NULL;
    size_t len;
    char *text = read_all(path, &len, NULL, err);
    if (!text) return -1;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root) return bn_errorf(err, "%s: not valid JSON", path);
    int rc = load(root, path, out, err);
    cJSON_Delete(root);
    return rc;
}
