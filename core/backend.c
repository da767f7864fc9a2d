// backend.c - choosing a compute backend by name.
#include "backend.h"

#include <string.h>

#include "bitnet.h"

const bn_backend_ops *bn_backend_find(const char *name) {
    if (!name) return NULL;
    if (strcmp(name, "cpu") == 0) return &bn_cpu_backend;
#ifdef BITNET_CUDA
    if (strcmp(name, "cuda") == 0) return &bn_cuda_backend;
#endif
    return NULL;
}

void bn_backend_warmup(const char *backend) {
    if (backend && strcmp(backend, "auto") != 0 && strcmp(backend, "cuda") != 0) return;
    const bn_backend_ops *gpu = bn_backend_find("cuda");
    if (gpu && gpu->warmup) gpu->warmup();
}
