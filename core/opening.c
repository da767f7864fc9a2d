// opening.c - a backend opening on a thread while a session runs on the CPU.
//
// A CUDA backend takes a few tenths of a second to open (the device's context,
// then the weights' upload), during which the CPU backend, which opens at once
// on the mapped file, can already be computing. The session (session.c) polls
// the opening between its steps and moves once it is done; nothing here knows
// about sessions. The thread owns a copy of the parameters and writes its
// result once; `done` (release/acquire) says when the result may be read.
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

struct bn_opening {
    const bn_engine *e;
    bn_session_params p;
    char backend[64], cpu_kernels[64]; // p's strings
    char fail[256];                    // tests: fail with this instead of opening
    int polls;                         // tests: "still opening" to this many polls (-1: off)
    pthread_t thread;
    atomic_bool done;
    bool joined, taken;
    int rc;
    bn_opened o;
    bn_error err;
};

static pthread_mutex_t g_test_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_test_polls = -1;
static char g_test_fail[256];

void bn_opening_test_set(int polls, const char *fail) {
    pthread_mutex_lock(&g_test_lock);
    g_test_polls = polls;
    snprintf(g_test_fail, sizeof g_test_fail, "%s", fail ? fail : "");
    pthread_mutex_unlock(&g_test_lock);
}

static void *opening_main(void *arg) {
    bn_opening *op = arg;
    if (op->fail[0])
        op->rc = bn_errorf(&op->err, "%s", op->fail);
    else
        op->rc = bn_backend_open_beside_cpu(op->e, &op->p, &op->o, &op->err);
    atomic_store_explicit(&op->done, true, memory_order_release);
    return NULL;
}

// Copies a parameter string into buf (NULL stays NULL); false if it does not fit.
static bool copy_name(const char *s, char *buf, size_t n, const char **out) {
    *out = NULL;
    if (!s) return true;
    if (strlen(s) >= n) return false;
    memcpy(buf, s, strlen(s) + 1);
    *out = buf;
    return true;
}

int bn_opening_start(const bn_engine *e, const bn_session_params *p, bn_opening **out, bn_error *err) {
    *out = NULL;
    bn_opening *op = calloc(1, sizeof *op);
    if (!op) return bn_errorf(err, "out of memory");
    op->e = e;
    op->p = *p;
    if (!copy_name(p->backend, op->backend, sizeof op->backend, &op->p.backend) ||
        !copy_name(p->cpu_kernels, op->cpu_kernels, sizeof op->cpu_kernels, &op->p.cpu_kernels)) {
        free(op);
        return bn_errorf(err, "backend or CPU kernel name too long");
    }
    pthread_mutex_lock(&g_test_lock);
    op->polls = g_test_polls;
    memcpy(op->fail, g_test_fail, sizeof op->fail);
    pthread_mutex_unlock(&g_test_lock);
    atomic_init(&op->done, false);
    if (pthread_create(&op->thread, NULL, opening_main, op) != 0) {
        free(op);
        return bn_errorf(err, "cannot start a thread to open the backend");
    }
    *out = op;
    return 0;
}

static int result(bn_opening *op, bn_opened *o, bn_error *err) {
    if (!op->joined) {
        (void)pthread_join(op->thread, NULL);
        op->joined = true;
    }
    if (op->rc) {
        *err = op->err;
        return -1;
    }
    *o = op->o;
    op->taken = true;
    return 1;
}

int bn_opening_poll(bn_opening *op, bn_opened *o, bn_error *err) {
    if (op->polls > 0) {
        op->polls--;
        return 0;
    }
    if (op->polls < 0 && !atomic_load_explicit(&op->done, memory_order_acquire)) return 0;
    return result(op, o, err); // polls == 0 (tests): wait for the thread
}

int bn_opening_wait(bn_opening *op, bn_opened *o, bn_error *err) { return result(op, o, err); }

void bn_opening_free(bn_opening *op) {
    if (!op) return;
    if (!op->joined) (void)pthread_join(op->thread, NULL);
    if (!op->taken && op->rc == 0 && op->o.be) op->o.ops->destroy(op->o.be);
    free(op);
}
