// mma.cuh - the warp-level tensor-core instructions the kernels use (sm_80+).
//
// Fragment layouts (PTX ISA, mma.sync): lane = 4 * group + tq. For m16n8k16 f16
// and m16n8k32 8-bit, A's registers hold row `group` (a0, a2) and row group + 8
// (a1, a3) at k offsets tq and tq + half of k (2 halves or 4 bytes a register);
// B's b0/b1 hold column `group` at the same k offsets; C's c0/c1 are row group,
// columns 2 tq and 2 tq + 1, and c2/c3 the same for row group + 8. The asm is
// volatile with a memory clobber where it reads shared memory, so no compiler
// reordering can move it across the barriers around the tile it reads.
#ifndef BN_CUDA_MMA_CUH
#define BN_CUDA_MMA_CUH

#include <stdint.h>

// c += a (16x16 f16, row) b (16x8 f16, col), f32 accumulators.
__device__ __forceinline__ void bn_mma_f16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
                 "{%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// c += a (16x32 s8, row) b (32x8 s8, col), exact s32 accumulators.
__device__ __forceinline__ void bn_mma_s8(int (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
                 "{%8,%9}, {%0,%1,%2,%3};"
                 : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// c += a (16x32 u8, row: the ternary codes w + 1) b (32x8 s8, col), exact s32.
__device__ __forceinline__ void bn_mma_u8s8(int (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
                 "{%8,%9}, {%0,%1,%2,%3};"
                 : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four 8x8 16-bit matrices from shared memory (addr: this lane's row, a shared
// address); lane i gets row i/4, elements 2(i%4) and 2(i%4)+1 of each.
__device__ __forceinline__ void bn_ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr)
                 : "memory");
}

// The same, transposed: lane i gets elements 2(i%4) and 2(i%4)+1 of column i/4,
// which from row-major V tiles is the B fragment of P V.
__device__ __forceinline__ void bn_ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr)
                 : "memory");
}

#endif
