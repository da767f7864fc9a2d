// kernels_select.c - picks the CPU kernel table at run time.
//
// "auto" takes the widest set the CPU and OS support: on x86-64 amx (AVX-512
// with the prefill GEMM on AMX tiles) > avx512 (VNNI) > avx2 > scalar, on
// AArch64 neon (SDOT) > scalar. A build has only its architecture's sets.
// BITNET_CPU_KERNELS=scalar|avx2|avx512|amx|neon overrides "auto" (handy for
// comparing kernels, or to work around a suspect one); an explicit name from the
// caller wins over the environment. Asking for a set this CPU cannot run is an
// error rather than a silent fallback, so a benchmark never measures the wrong code.
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cpu_features.h"
#include "kernels.h"

#if defined(__x86_64__) || defined(__i386__)
const char *const bn_cpu_kernel_sets[] = {"scalar", "avx2", "avx512", "amx", NULL};
#elif defined(__aarch64__)
const char *const bn_cpu_kernel_sets[] = {"scalar", "neon", NULL};
#else
const char *const bn_cpu_kernel_sets[] = {"scalar", NULL};
#endif

int bn_cpu_kernels_select(const char *name, const bn_cpu_kernels **out, bn_error *err) {
    const bn_cpu_features f = bn_cpu_detect();
    if (!name || !strcmp(name, "auto")) {
        const char *env = getenv("BITNET_CPU_KERNELS");
        if (env && *env && strcmp(env, "auto") != 0) {
            name = env;
        } else {
#if defined(__x86_64__) || defined(__i386__)
            *out = f.amx && bn_cpu_amx_permit() ? &bn_kernels_amx
                 : f.avx512                         ? &bn_kernels_avx512
                 : f.avx2   ? &bn_kernels_avx2
                            : &bn_kernels_scalar;
#elif defined(__aarch64__)
            *out = f.neon ? &bn_kernels_neon : &bn_kernels_scalar;
#else
            (void)f;
            *out = &bn_kernels_scalar;
#endif
            return 0;
        }
    }
    if (!strcmp(name, "scalar")) {
        *out = &bn_kernels_scalar;
        return 0;
    }
#if defined(__x86_64__) || defined(__i386__)
    if (!strcmp(name, "avx2")) {
        if (!f.avx2)
            return bn_errorf(err, "CPU kernels 'avx2' are not supported here "
                                  "(needs AVX2, FMA and F16C with OS ymm support)");
        *out = &bn_kernels_avx2;
        return 0;
    }
    if (!strcmp(name, "avx512")) {
        if (!f.avx512)
            return bn_errorf(err, "CPU kernels 'avx512' are not supported here "
                                  "(needs AVX-512 F/BW/VL/DQ + VNNI with OS zmm support)");
        *out = &bn_kernels_avx512;
        return 0;
    }
    if (!strcmp(name, "amx")) {
        if (!f.amx)
            return bn_errorf(err, "CPU kernels 'amx' are not supported here (needs the avx512 set's "
                                  "ISA, AMX-TILE and AMX-INT8 with OS tile support, and a compiler "
                                  "with AMX intrinsics)");
        if (!bn_cpu_amx_permit())
            return bn_errorf(err, "CPU kernels 'amx': the OS did not grant this process the AMX tile "
                                  "state (arch_prctl ARCH_REQ_XCOMP_PERM; Linux 5.16+)");
        *out = &bn_kernels_amx;
        return 0;
    }
#elif defined(__aarch64__)
    if (!strcmp(name, "neon")) {
        if (!f.neon)
            return bn_errorf(err, "CPU kernels 'neon' are not supported here (needs the Armv8.2-A dot "
                                  "product instructions, SDOT)");
        *out = &bn_kernels_neon;
        return 0;
    }
#endif
    if (!strcmp(name, "avx2") || !strcmp(name, "avx512") || !strcmp(name, "amx") || !strcmp(name, "neon"))
        return bn_errorf(err, "CPU kernels '%s' are not built for this CPU architecture", name);
    return bn_errorf(err, "unknown CPU kernel set '%s' (expected auto, scalar, avx2, avx512, amx or neon)",
                     name);
}
