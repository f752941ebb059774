// Tensor-core fragment primitives (sm_80+): ldmatrix and mma.sync.m16n8k16 with fp32 accumulate.
// Inline PTX lives only here and in stages/copy.cuh; csrc/host_emu/stages/mma.cuh emulates both per
// lane with the PTX fragment layouts below, so the index math of stages/gemm.cuh is checked on CPU.
//
// Layouts (PTX ISA, "Matrix fragments for mma.m16n8k16"), lane = 4 * g + t (g = lane / 4, t = lane % 4):
//  A 16x16 row-major, 4 regs of 2 halves: a0 (g, 2t..2t+1), a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..)
//  B 16x8 (k x n), 2 regs:                 b0 (k = 2t..2t+1, n = g), b1 (k = 2t+8.., n = g)
//  C/D 16x8 fp32, 4 floats:                c0,c1 (g, 2t..2t+1), c2,c3 (g+8, 2t..2t+1)
// ldmatrix.x4: lanes 8j..8j+7 give the row addresses (16-byte aligned, 8 halves each) of 8x8 matrix
// j; register j of lane l receives row l / 4, halves 2 (l % 4) and 2 (l % 4) + 1 of matrix j.
// .x2 uses lanes 0..15 the same way (the other lanes' addresses are ignored but must be valid).
#pragma once

#include <cstdint>
#include <type_traits>

#include "stages/copy.cuh"

namespace fastconv {
namespace stages {

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(row)));
}

__device__ __forceinline__ void ldmatrix_x2(uint32_t (&r)[2], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
               : "=r"(r[0]), "=r"(r[1])
               : "r"(smem_addr(row)));
}

// d += a * b for one 16x8x16 tile; T is __half or __nv_bfloat16 (the operands' element type).
template <typename T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  if constexpr (std::is_same<T, __half>::value) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
}

}  // namespace stages
}  // namespace fastconv
