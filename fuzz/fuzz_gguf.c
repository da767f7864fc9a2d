// fuzz_gguf.c - libFuzzer target for the GGUF reader and the model loader.
//
// Build and run (clang):
//   CC=clang cmake -S . -B build-fuzz -DBITNET_FUZZ=ON -DBITNET_CUDA=OFF
//   cmake --build build-fuzz --target fuzz_gguf
//   ./build-fuzz/fuzz_gguf -max_len=65536 -timeout=10 fuzz/corpus
// tests/test_fuzz_replay.c includes this file and replays fuzz/corpus/ through the
// same function in every build, so a crash found here becomes a regression test
// by saving the input into fuzz/corpus/.
//
// Besides "no crash", it checks the reader's promise that an open bn_gguf can be
// indexed without further checks: every string and tensor byte range it reports
// is touched (first and last byte), so ASan flags any range outside the input.
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "model.h"

static volatile uint8_t bn_fuzz_sink;

static void bn_fuzz_touch(const void *p, uint64_t n) {
    if (!n) return;
    bn_fuzz_sink ^= ((const volatile uint8_t *)p)[0];
    bn_fuzz_sink ^= ((const volatile uint8_t *)p)[n - 1];
}

static void bn_fuzz_touch_value(const bn_gguf_value *v) {
    if (v->type == BN_GGUF_STRING) bn_fuzz_touch(v->str.data, v->str.len);
    if (v->type != BN_GGUF_ARRAY) return;
    const bn_gguf_array *a = &v->arr;
    for (uint64_t i = 0; i < a->count; i++) {
        if (a->elem_type == BN_GGUF_STRING) bn_fuzz_touch(a->strs[i].data, a->strs[i].len);
        else if (a->elem_type == BN_GGUF_ARRAY) bn_fuzz_touch_value(&a->items[i]);
        else bn_fuzz_sink ^= (uint8_t)bn_gguf_arr_int(a, i);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bn_gguf *g;
    bn_error err;
    if (bn_gguf_open_memory(data, size, &g, &err) != 0) return 0;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        bn_fuzz_touch(g->kv[i].key.data, g->kv[i].key.len);
        bn_fuzz_touch_value(&g->kv[i].value);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        bn_fuzz_touch(g->tensors[i].name.data, g->tensors[i].name.len);
        bn_fuzz_touch(g->tensors[i].data, g->tensors[i].nbytes);
    }
    bn_model *m;
    if (bn_model_from_gguf(g, &m, &err) != 0) {
        bn_gguf_close(g);
        return 0;
    }
    // Norms are float arrays the backends index directly (possibly converted copies).
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        const bn_layer *L = &m->layers[l];
        bn_fuzz_touch(L->attn_norm.f32, L->attn_norm.ne0 * sizeof(float));
        bn_fuzz_touch(L->ffn_sub_norm.f32, L->ffn_sub_norm.ne0 * sizeof(float));
        bn_fuzz_touch(L->w_down.data, L->w_down.nbytes);
    }
    bn_fuzz_touch(m->output.data, m->output.nbytes);
    bn_model_free(m);
    return 0;
}
