// Data-movement primitives of the shared CUDA stages: asynchronous global -> shared copies
// (cp.async, sm_80+) and 16-byte vector loads/stores. This file and stages/mma.cuh are the only
// places with inline PTX; csrc/host_emu/stages/{copy,mma}.cuh implement the same interface on the
// CPU (the emulator's include path finds them first), so everything built on top runs there too.
//
// cp.async semantics the stages rely on (and the emulator reproduces):
//  - cp_async{16,8,4}(dst, src, pred): copy 16/8/4 bytes; dst (shared) and src (global) must be
//    aligned to the copy size. pred == false zero-fills dst and reads nothing; callers still pass
//    a valid pointer (a tensor base) so no out-of-range address is ever formed.
//  - 16-byte copies bypass L1 (.cg: streamed tiles are read once per CTA); 8/4-byte ones go
//    through L1 (.ca, the only variant PTX allows for them).
//  - cp_async_commit() closes the copies issued since the last commit into one group;
//    cp_async_wait<N>() blocks until at most N groups are still in flight. Neither is a barrier:
//    follow the wait with __syncthreads() before other threads read the data.
#pragma once

#include <cstdint>

namespace fastconv {
namespace stages {

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool pred) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(pred ? 16 : 0)
               : "memory");
}

__device__ __forceinline__ void cp_async8(void* dst, const void* src, bool pred) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(pred ? 8 : 0)
               : "memory");
}

__device__ __forceinline__ void cp_async4(void* dst, const void* src, bool pred) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(pred ? 4 : 0)
               : "memory");
}

// Copy of BYTES (16, 8 or 4) chosen at compile time.
template <int BYTES> __device__ __forceinline__ void cp_async(void* dst, const void* src, bool pred) {
  static_assert(BYTES == 16 || BYTES == 8 || BYTES == 4, "cp.async moves 4, 8 or 16 bytes");
  if constexpr (BYTES == 16) cp_async16(dst, src, pred);
  else if constexpr (BYTES == 8) cp_async8(dst, src, pred);
  else cp_async4(dst, src, pred);
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

template <int N> __device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// 16-byte vectors. Global loads go through the read-only path (inputs are never written by the
// kernel that reads them); all pointers must be 16-byte aligned.
__device__ __forceinline__ uint4 ldg16(const void* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }
__device__ __forceinline__ void stg16(void* p, uint4 v) { *reinterpret_cast<uint4*>(p) = v; }
__device__ __forceinline__ uint4 lds16(const void* p) { return *reinterpret_cast<const uint4*>(p); }
__device__ __forceinline__ void sts16(void* p, uint4 v) { *reinterpret_cast<uint4*>(p) = v; }

}  // namespace stages
}  // namespace fastconv
