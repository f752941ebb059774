// Host emulation of the CUDA features the fastconv kernels use: one std::thread per CUDA thread,
// std::barrier for __syncthreads, per-warp barriers for shuffles, per-warpgroup (128-thread)
// barriers for wgmma (stages/wgmma.cuh). emu_set_smem registers a block's shared memory so that
// smem_addr returns shared-window offsets (what a wgmma descriptor holds) and checks them.
#pragma once
#define FASTCONV_HOST_EMU 1
#include <barrier>
#include <cassert>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__
#define __align__(n) __attribute__((aligned(n)))
struct Dim3 { unsigned x = 0, y = 0, z = 0; };
inline thread_local Dim3 threadIdx, blockIdx;
inline Dim3 blockDim, gridDim;  // set by emu_launch / emu_launch2d
struct __align__(16) float4 { float x, y, z, w; };
struct __align__(16) uint4 { unsigned x, y, z, w; };
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
struct __align__(8) float2 { float x, y; };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline std::barrier<>* g_block_bar = nullptr;
inline std::barrier<>* g_warp_bar[64];
inline float g_warp_buf[64][32];
inline std::barrier<>* g_wg_bar[16];  // one per warpgroup of 128 threads (emu_launch*)
// The shared memory of the running block: [g_smem_base, + g_smem_bytes) (nullptr: not registered).
inline unsigned char* g_smem_base = nullptr;
inline size_t g_smem_bytes = 0;
inline void emu_set_smem(void* base, size_t bytes) { g_smem_base = static_cast<unsigned char*>(base); g_smem_bytes = bytes; }
inline void __syncthreads() { g_block_bar->arrive_and_wait(); }
inline float __shfl_xor_sync(unsigned, float v, int o) {
  int w = threadIdx.x / 32, l = threadIdx.x % 32;
  g_warp_bar[w]->arrive_and_wait();
  g_warp_buf[w][l] = v;
  g_warp_bar[w]->arrive_and_wait();
  float r = g_warp_buf[w][l ^ o];
  return r;
}
inline float __expf(float v) { return expf(v); }
struct __half { _Float16 h; };
struct __nv_bfloat16 { uint16_t b; };
inline float bf2f(__nv_bfloat16 v) { uint32_t u = uint32_t(v.b) << 16; float f; memcpy(&f, &u, 4); return f; }
inline __nv_bfloat16 f2bf(float f) { uint32_t u; memcpy(&u, &f, 4); u += 0x7fff + ((u >> 16) & 1); return {uint16_t(u >> 16)}; }
// run `kernel()` for every block of a 1-D grid with nthreads threads
inline void emu_launch(int blocks, int nthreads, const std::function<void()>& kernel) {
  std::barrier<> bar(nthreads);
  std::vector<std::unique_ptr<std::barrier<>>> wb;
  for (int w = 0; w < nthreads / 32; ++w) { wb.emplace_back(new std::barrier<>(32)); g_warp_bar[w] = wb.back().get(); }
  for (int w = 0; w < nthreads / 128; ++w) { wb.emplace_back(new std::barrier<>(128)); g_wg_bar[w] = wb.back().get(); }
  g_block_bar = &bar;
  blockDim = {unsigned(nthreads), 1, 1}; gridDim = {unsigned(blocks), 1, 1};
  std::vector<std::thread> ts;
  for (int t = 0; t < nthreads; ++t)
    ts.emplace_back([&, t] {
      threadIdx.x = t;
      for (int b = 0; b < blocks; ++b) { blockIdx.x = b; kernel(); bar.arrive_and_wait(); }
    });
  for (auto& t : ts) t.join();
}
// 2-D grid (gx, gy) of 1-D blocks, blocks run one after another in x-fastest order
inline void emu_launch2d(int gx, int gy, int nthreads, const std::function<void()>& kernel) {
  std::barrier<> bar(nthreads);
  std::vector<std::unique_ptr<std::barrier<>>> wb;
  for (int w = 0; w < nthreads / 32; ++w) { wb.emplace_back(new std::barrier<>(32)); g_warp_bar[w] = wb.back().get(); }
  for (int w = 0; w < nthreads / 128; ++w) { wb.emplace_back(new std::barrier<>(128)); g_wg_bar[w] = wb.back().get(); }
  g_block_bar = &bar;
  blockDim = {unsigned(nthreads), 1, 1}; gridDim = {unsigned(gx), unsigned(gy), 1};
  std::vector<std::thread> ts;
  for (int t = 0; t < nthreads; ++t)
    ts.emplace_back([&, t] {
      threadIdx.x = t;
      for (int by = 0; by < gy; ++by)
        for (int bx = 0; bx < gx; ++bx) { blockIdx.x = bx; blockIdx.y = by; kernel(); bar.arrive_and_wait(); }
    });
  for (auto& t : ts) t.join();
}
