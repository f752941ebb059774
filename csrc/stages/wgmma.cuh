// Warpgroup MMA (sm_90a): wgmma.mma_async with A from registers and B from shared memory through a
// matrix descriptor (stages/wgmma_desc.cuh), fp32 accumulate. The PTX is emitted only in an sm_90a
// device pass (__CUDA_ARCH_FEAT_SM90_ALL: -gencode=arch=compute_90a,code=sm_90a); kWgmma tells the
// callers whether this compilation pass has the path (false on the host pass, sm_80, plain sm_90),
// so they select it at compile time (if constexpr / a type alias) and never call the stubs.
// csrc/host_emu/stages/wgmma.cuh emulates every function here (kWgmma chosen by FASTCONV_EMU_WGMMA).
//
// A warpgroup = 4 consecutive warps starting at a warp index divisible by 4; every function is
// called by all 128 threads of the warpgroup (.sync.aligned), with warpgroup-uniform arguments.
// Layouts (PTX ISA, "Register fragments and shared memory matrix layouts" for wgmma .m64nNk16),
// lane = 4 g + t (g = lane / 4, t = lane % 4), warp w of the warpgroup (w = warp % 4):
//  A 64x16 (m x k) in registers: warp w holds rows 16 w .. 16 w + 15 exactly as mma.sync m16n8k16's
//    A fragment (stages/mma.cuh): a0 (16w+g, 2t..2t+1), a1 (16w+g+8, 2t..), a2 (16w+g, 2t+8..),
//    a3 (16w+g+8, 2t+8..) -- one ldmatrix.x4 of the warp's 16 rows.
//  B 16xN (k x n) in shared memory, K-major (row n = the 16 k values of output column n), no swizzle:
//    core matrices of 8 n x 8 k (128 contiguous bytes, n at +16 B); desc_b = wgmma_desc(start, LBO,
//    SBO): the instruction reads core matrices (n8 = 0..N/8-1, k8 = 0..1) at start + k8 LBO + n8 SBO.
//  D 64xN fp32, N/2 floats per thread: for n8 chunk i, d[4i+0], d[4i+1] = (row 16w+g, cols 8i+2t,
//    8i+2t+1), d[4i+2], d[4i+3] = (row 16w+g+8, same cols) -- mma.sync's C layout per n8 chunk.
// Ordering (PTX ISA, wgmma.fence): wgmma_fence() before the first wgmma of a batch and after any
//   other instruction wrote its accumulators or A registers (ldmatrix of A, zeroing); wgmma_commit()
//   closes the batch, wgmma_wait<N>() blocks until <= N batches are pending -- only then may the
//   accumulators or A registers be touched, or the B shared memory be overwritten. Shared memory that
//   cp.async / ordinary stores wrote and wgmma reads next: fence_proxy_async() in every writing thread
//   after its writes landed (after cp_async_wait) and before the barrier that publishes them.
// scale_d: 0 -> d = A B (accumulators ignored), else d += A B (a runtime predicate).
#pragma once

#include <cstdint>

#include "stages/wgmma_desc.cuh"

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define FASTCONV_WGMMA_PTX 1
#else
#define FASTCONV_WGMMA_PTX 0
#endif

namespace fastconv {
namespace stages {

constexpr bool kWgmma = FASTCONV_WGMMA_PTX != 0;

__device__ __forceinline__ void wgmma_fence() {
#if FASTCONV_WGMMA_PTX
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void wgmma_commit() {
#if FASTCONV_WGMMA_PTX
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}

template <int N> __device__ __forceinline__ void wgmma_wait() {
#if FASTCONV_WGMMA_PTX
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}

// Generic-proxy writes (cp.async, st.shared) -> async-proxy reads (wgmma's B operand).
__device__ __forceinline__ void fence_proxy_async() {
#if FASTCONV_WGMMA_PTX
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// Keeps the compiler from moving accumulator accesses across the wgmma batch boundaries.
template <int N> __device__ __forceinline__ void wgmma_fence_operand(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// d (+)= A(64x16, registers) * B(16xN, descriptor); T = __half or __nv_bfloat16, N = 16, 64 or 128.
template <typename T, int N>
__device__ __forceinline__ void wgmma_m64nNk16(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t desc_b,
                                               int scale_d = 1);

template <>
__device__ __forceinline__ void wgmma_m64nNk16<__half, 64>(float (&d)[32], const uint32_t (&a)[4], uint64_t desc_b,
                                                          int scale_d) {
#if FASTCONV_WGMMA_PTX
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
      "{%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d));
#else
  (void)d, (void)a, (void)desc_b, (void)scale_d;
#endif
}

template <>
__device__ __forceinline__ void wgmma_m64nNk16<__nv_bfloat16, 64>(float (&d)[32], const uint32_t (&a)[4], uint64_t desc_b,
                                                          int scale_d) {
#if FASTCONV_WGMMA_PTX
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
      "{%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d));
#else
  (void)d, (void)a, (void)desc_b, (void)scale_d;
#endif
}

template <>
__device__ __forceinline__ void wgmma_m64nNk16<__half, 128>(float (&d)[64], const uint32_t (&a)[4], uint64_t desc_b,
                                                          int scale_d) {
#if FASTCONV_WGMMA_PTX
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "{%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d));
#else
  (void)d, (void)a, (void)desc_b, (void)scale_d;
#endif
}

template <>
__device__ __forceinline__ void wgmma_m64nNk16<__nv_bfloat16, 128>(float (&d)[64], const uint32_t (&a)[4], uint64_t desc_b,
                                                          int scale_d) {
#if FASTCONV_WGMMA_PTX
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "{%64, %65, %66, %67}, %68, p, 1, 1, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d));
#else
  (void)d, (void)a, (void)desc_b, (void)scale_d;
#endif
}

// N = 16 (stages::WgStrip's column blocks): one definition for both types, the PTX type suffix pasted in.
#define FASTCONV_WGMMA_N16(TYPE, SUFFIX)                                                                      \
  template <>                                                                                               \
  __device__ __forceinline__ void wgmma_m64nNk16<TYPE, 16>(float (&d)[8], const uint32_t (&a)[4],           \
                                                           uint64_t desc_b, int scale_d) {                  \
    FASTCONV_WGMMA_N16_BODY(SUFFIX)                                                                         \
  }
#if FASTCONV_WGMMA_PTX
#define FASTCONV_WGMMA_N16_BODY(SUFFIX)                                                                     \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %13, 0;\n"                                                 \
               "wgmma.mma_async.sync.aligned.m64n16k16.f32." SUFFIX "." SUFFIX " "                          \
               "{%0, %1, %2, %3, %4, %5, %6, %7}, {%8, %9, %10, %11}, %12, p, 1, 1, 0;\n}\n"                 \
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]) \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d));
#else
#define FASTCONV_WGMMA_N16_BODY(SUFFIX) (void)d, (void)a, (void)desc_b, (void)scale_d;
#endif
FASTCONV_WGMMA_N16(__half, "f16")
FASTCONV_WGMMA_N16(__nv_bfloat16, "bf16")
#undef FASTCONV_WGMMA_N16_BODY
#undef FASTCONV_WGMMA_N16

}  // namespace stages
}  // namespace fastconv
