// backend.c - choosing a compute backend by name.
#include "backend.h"

#include <string.h>


const bn_backend_ops *bn_backend_find(const char *name) {
    if (!name) return NULL;
    if (strcmp(name, "cpu") == 0) return &bn_cpu_backend;
#ifdef BITNET_CUDA
    if (strcmp(name, "cuda") == 0) return &bn_cuda_backend;
#endif
    return NULL;
}
