// cpu_features.c - CPUID / XGETBV feature detection on x86-64, the kernel's
// hardware capabilities on AArch64; nothing elsewhere.
#include "cpu_features.h"

#include <pthread.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

// XCR0 bits: 1 SSE, 2 AVX (ymm upper halves), 5 opmask, 6 ZMM_Hi256, 7 Hi16_ZMM,
// 17 XTILECFG, 18 XTILEDATA (AMX).
#define XCR0_YMM 0x06u
#define XCR0_ZMM 0xe6u
#define XCR0_AMX 0x60000u

static uint64_t read_xcr0(void) {
    uint32_t lo, hi;
    // xgetbv with ecx = 0, as inline asm so this file needs no -mxsave.
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

// The kernels configure palette 1 with 8 tiles of 16 rows x 64 bytes
// (kernels_amx.c). CPUID leaf 0x1D describes the palettes the CPU has (subleaf
// 0: the highest; subleaf 1: palette 1's tile registers and their size), so a
// CPU whose tiles are smaller is not given the amx set.
static int amx_palette1_fits(void) {
    unsigned a, b, c, d;
    if (__get_cpuid_max(0, 0) < 0x1d) return 0;
    __cpuid_count(0x1d, 0, a, b, c, d);
    if (a < 1) return 0;
    __cpuid_count(0x1d, 1, a, b, c, d);
    const unsigned bytes_per_row = b & 0xffff, tiles = b >> 16, max_rows = c & 0xffff;
    return bytes_per_row >= 64 && tiles >= 8 && max_rows >= 16;
}

static bn_cpu_features detect(void) {
    bn_cpu_features f = {0};
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    const int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    const int fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return f;
    const uint64_t xcr0 = read_xcr0();
    if (__get_cpuid_max(0, 0) < 7) return f;
    __cpuid_count(7, 0, a, b, c, d);
    const int avx2 = (b >> 5) & 1;
    const int f512 = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    const int vnni = (c >> 11) & 1;
    f.avx2 = avx2 && fma && f16c && (xcr0 & XCR0_YMM) == XCR0_YMM;
    f.avx512 = f.avx2 && f512 && dq && bw && vl && vnni && (xcr0 & XCR0_ZMM) == XCR0_ZMM;
    const int amx_tile = (d >> 24) & 1, amx_int8 = (d >> 25) & 1;
    f.amx = bn_amx_built && f.avx512 && amx_tile && amx_int8 && (xcr0 & XCR0_AMX) == XCR0_AMX &&
            amx_palette1_fits();
    return f;
}
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif

static bn_cpu_features detect(void) {
    bn_cpu_features f = {0};
    f.neon = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
    return f;
}
#elif defined(__aarch64__) && defined(__APPLE__)
#include <sys/sysctl.h>

static bn_cpu_features detect(void) {
    bn_cpu_features f = {0};
    int dot = 0;
    size_t len = sizeof dot;
    f.neon = sysctlbyname("hw.optional.arm.FEAT_DotProd", &dot, &len, NULL, 0) == 0 && dot;
    return f;
}
#else
static bn_cpu_features detect(void) {
    bn_cpu_features f = {0};
    return f;
}
#endif

#if !defined(__x86_64__) && !defined(__i386__)
// No amx set in this build (kernels_amx.c, x86 only, counts the tiles there):
// no token block ever ran on tiles.
unsigned long bn_amx_tile_blocks(void) { return 0; }
#endif

static bn_cpu_features g_features;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void detect_once(void) { g_features = detect(); }

bn_cpu_features bn_cpu_detect(void) {
    pthread_once(&g_once, detect_once);
    return g_features;
}

// Linux hands a process the AMX tile data state only when asked (kernel 5.16+):
// arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA). Elsewhere, no AMX.
static int g_amx_granted;
static pthread_once_t g_amx_once = PTHREAD_ONCE_INIT;

static void amx_request(void) {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__linux__) && defined(SYS_arch_prctl)
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    g_amx_granted = bn_cpu_detect().amx && syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#endif
}

int bn_cpu_amx_permit(void) {
    pthread_once(&g_amx_once, amx_request);
    return g_amx_granted;
}
