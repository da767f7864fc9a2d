// backend.c - choosing a compute backend by name and opening it for an engine
// (sessions and batches), and the input checks of forward().
#include "backend.h"

#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "engine_internal.h"

// Every backend there is (BN_BACKENDS, backend.h), whether or not this build has
// it (ops NULL).
#ifdef BITNET_CUDA
#define BN_CUDA_OPS (&bn_cuda_backend)
#else
#define BN_CUDA_OPS NULL
#endif
static const struct known_backend {
    const char *name;
    const bn_backend_ops *ops;
} known[] = {
#define KNOWN_BACKEND(name, ops) {name, ops},
    BN_BACKENDS(KNOWN_BACKEND)
#undef KNOWN_BACKEND
};
#define N_KNOWN (sizeof known / sizeof known[0])

static const struct known_backend *lookup(const char *name) {
    for (size_t i = 0; name && i < N_KNOWN; i++)
        if (!strcmp(known[i].name, name)) return &known[i];
    return NULL;
}

const bn_backend_ops *bn_backend_find(const char *name) {
    const struct known_backend *k = lookup(name);
    return k ? k->ops : NULL;
}

// NULL, "" and "auto" all ask for the choice below.
static bool is_auto(const char *name) { return !name || !*name || !strcmp(name, "auto"); }

void bn_backend_prewarm(const char *name) {
    const bn_backend_ops *ops = bn_backend_find(is_auto(name) ? "cuda" : name);
    if (ops && ops->prewarm) ops->prewarm();
}

void bn_backend_prewarm_wait(void) {
    for (size_t i = 0; i < N_KNOWN; i++)
        if (known[i].ops && known[i].ops->prewarm_wait) known[i].ops->prewarm_wait();
}

// Picks the backend: an explicit name must work; "auto" prefers a usable GPU.
static int choose_backend(const char *name, const bn_backend_ops **ops, char *note, size_t n,
                          bn_error *err) {
    bn_error why = {{0}};
    if (is_auto(name)) {
        const bn_backend_ops *cuda = bn_backend_find("cuda");
        if (cuda && cuda->probe(&why) == 0) {
            *ops = cuda;
            snprintf(note, n, "auto: a CUDA device is usable");
            return 0;
        }
        *ops = bn_backend_find("cpu");
        snprintf(note, n, "auto: using the CPU (%.240s)",
                 cuda ? why.msg : "this build has no CUDA backend");
        return 0;
    }
    const struct known_backend *k = lookup(name);
    if (!k) {
        char names[64] = "auto";
        for (size_t i = 0; i < N_KNOWN; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                     i + 1 < N_KNOWN ? ", " : " or ", known[i].name);
        return bn_errorf(err, "unknown backend '%s' (use %s)", name, names);
    }
    if (!k->ops)
        return bn_errorf(err, "backend '%s' is not compiled in (build with the CUDA toolkit)", name);
    if (k->ops->probe && k->ops->probe(&why))
        return bn_errorf(err, "backend '%s' cannot run here: %s", name, why.msg);
    *ops = k->ops;
    snprintf(note, n, "requested");
    return 0;
}

// bn_backend_open, and bn_backend_open_beside_cpu with cpu_elsewhere: where the
// choice comes to the CPU, nothing is created (o->be NULL, the note says why).
static int open_backend(const bn_engine *e, const bn_session_params *p, int n_seq, bool cpu_elsewhere,
                        bn_opened *o, bn_error *err) {
    *o = (bn_opened){0};
    bn_session_params defaults = {0};
    if (!p) p = &defaults;
    const bn_hparams *hp = &e->model->hp;
    o->n_ctx = p->n_ctx > 0 ? p->n_ctx : (int)hp->n_ctx_train;
    if (p->n_ctx < 0 || o->n_ctx > (int)hp->n_ctx_train)
        return bn_errorf(err, "context %d is outside 1..%u (the model's context length)", p->n_ctx,
                         hp->n_ctx_train);
    if (choose_backend(p->backend, &o->ops, o->note, sizeof o->note, err)) return -1;
    bn_backend_config cfg = {.n_ctx = o->n_ctx,
                             .max_batch = 0, // the backend's own chunk size
                             .n_seq = n_seq,
                             .lm_head_q8 = p->lm_head_q8,
                             .cpu = {.n_threads = p->n_threads, .kernels = p->cpu_kernels}};
    const bn_backend_ops *cpu = bn_backend_find("cpu");
    if (cpu_elsewhere && o->ops == cpu) return 0;
    double t0 = bn_now_ms();
    bn_error why = {{0}};
    if (o->ops->create(e->model, &cfg, &o->be, &why)) {
        bool auto_gpu = o->ops != cpu && is_auto(p->backend);
        if (!auto_gpu) return bn_errorf(err, "%s backend: %s", o->ops->name, why.msg);
        // auto picked the GPU but it cannot hold the model: fall back, saying why.
        snprintf(o->note, sizeof o->note, "auto: using the CPU (%s backend: %.200s)", o->ops->name,
                 why.msg);
        o->ops = cpu;
        if (cpu_elsewhere) return 0;
        if (o->ops->create(e->model, &cfg, &o->be, err)) return -1;
    }
    o->ms = bn_now_ms() - t0;
    return 0;
}

int bn_backend_open(const bn_engine *e, const bn_session_params *p, int n_seq, bn_opened *o,
                    bn_error *err) {
    return open_backend(e, p, n_seq, false, o, err);
}

int bn_backend_open_beside_cpu(const bn_engine *e, const bn_session_params *p, bn_opened *o, bn_error *err) {
    return open_backend(e, p, 1, true, o, err);
}

bool bn_backend_starts_on_cpu(const bn_session_params *p) {
    if (!p || !p->cpu_start) return false;
    const bn_backend_ops *ops = bn_backend_find(is_auto(p->backend) ? "cuda" : p->backend);
    if (!ops || ops == bn_backend_find("cpu")) return false;
    return !ops->maybe_present || ops->maybe_present();
}

int bn_backend_nonfinite(const char *who, int32_t pos, int32_t seq, bn_error *err) {
    return bn_errorf(err, "%s: the logits of the token at position %d (slot %d) hold a NaN or an "
                     "infinity: the model's weights, or the values they give, are not finite "
                     "(bitnet-gpu inspect --check-tensors checks the weights)", who, pos, seq);
}

int bn_backend_check_tokens(const char *who, const int32_t *tokens, const int32_t *pos,
                            const int32_t *seq, int n_tokens, uint32_t n_vocab, int n_ctx,
                            int n_seq, bn_error *err) {
    if (n_tokens < 1 || !tokens || !pos)
        return bn_errorf(err, "%s: forward needs at least one token and its position", who);
    int runs = 0;
    for (int i = 0; i < n_tokens; i++) {
        const int32_t s = bn_seq_of(seq, i);
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= n_vocab)
            return bn_errorf(err, "%s: token id %d out of range (vocabulary %u)", who, tokens[i], n_vocab);
        if (pos[i] < 0 || pos[i] >= n_ctx)
            return bn_errorf(err, "%s: position %d outside the context (%d tokens)", who, pos[i], n_ctx);
        if (s < 0 || s >= n_seq)
            return bn_errorf(err, "%s: sequence %d outside the %d slots", who, s, n_seq);
        if (i > 0 && bn_seq_of(seq, i - 1) == s) {
            if (pos[i] <= pos[i - 1])
                return bn_errorf(err, "%s: positions of sequence %d do not increase", who, s);
            continue;
        }
        // A new run: its slot must not have had one already (a scan of the run
        // starts before it: runs are few, and it needs no scratch memory).
        for (int j = 0; j < i; j++)
            if ((j == 0 || bn_seq_of(seq, j - 1) != bn_seq_of(seq, j)) && bn_seq_of(seq, j) == s)
                return bn_errorf(err, "%s: sequence %d comes in two runs of one call", who, s);
        runs++;
    }
    return runs;
}
