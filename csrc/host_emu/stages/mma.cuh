// Host emulation of csrc/stages/mma.cuh: ldmatrix and mma.sync.m16n8k16 per lane, with the PTX
// fragment layouts (the lanes of a warp exchange registers through per-warp buffers between two
// warp barriers, as the hardware does through its crossbar). A wrong fragment index in
// stages/gemm.cuh therefore gives wrong numbers here, not just on the GPU.
#pragma once

#include <cassert>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernel_common.h"
#include "stages/copy.cuh"

namespace fastconv {
namespace stages {

inline const void* g_ldm_row[64][32];
inline uint32_t g_mma_a[64][32][4], g_mma_b[64][32][2];
inline float g_mma_c[64][32][4];
inline long g_mma_count = 0, g_ldm_count = 0;  // per lane 0 of each warp (statistics)

inline void warp_sync() { g_warp_bar[threadIdx.x / 32]->arrive_and_wait(); }

template <int X> inline void emu_ldmatrix(uint32_t* r, const void* row) {
  const int w = threadIdx.x / 32, l = threadIdx.x % 32;
  assert(reinterpret_cast<uintptr_t>(row) % 16 == 0 && "ldmatrix row address must be 16-byte aligned");
  g_ldm_row[w][l] = row;
  warp_sync();
  for (int j = 0; j < X; ++j) {
    const uint16_t* rp = static_cast<const uint16_t*>(g_ldm_row[w][j * 8 + l / 4]);
    r[j] = uint32_t(rp[2 * (l % 4)]) | (uint32_t(rp[2 * (l % 4) + 1]) << 16);
  }
  if (l == 0) ++g_ldm_count;
  warp_sync();
}
inline void ldmatrix_x4(uint32_t (&r)[4], const void* row) { emu_ldmatrix<4>(r, row); }
inline void ldmatrix_x2(uint32_t (&r)[2], const void* row) { emu_ldmatrix<2>(r, row); }

template <typename T> inline float emu_elem(uint32_t reg, int half) {
  const uint16_t bits = uint16_t(reg >> (16 * half));
  T v;
  memcpy(&v, &bits, 2);
  return to_float(v);
}

template <typename T> inline void mma_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  static_assert(sizeof(T) == 2, "mma_16816 takes fp16/bf16 operands");
  const int w = threadIdx.x / 32, l = threadIdx.x % 32;
  memcpy(g_mma_a[w][l], a, sizeof a);
  memcpy(g_mma_b[w][l], b, sizeof b);
  memcpy(g_mma_c[w][l], d, sizeof d);
  warp_sync();
  const int g = l / 4, t = l % 4;
  float o[4];
  for (int e = 0; e < 4; ++e) {
    const int row = g + 8 * (e / 2), col = 2 * t + (e % 2);
    float s = g_mma_c[w][(row % 8) * 4 + col / 2][(row / 8) * 2 + col % 2];  // == d[e]
    for (int k = 0; k < 16; ++k) {
      const float av = emu_elem<T>(g_mma_a[w][(row % 8) * 4 + (k % 8) / 2][(row / 8) + 2 * (k / 8)], k % 2);
      const float bv = emu_elem<T>(g_mma_b[w][col * 4 + (k % 8) / 2][k / 8], k % 2);
      s += av * bv;
    }
    o[e] = s;
  }
  if (l == 0) ++g_mma_count;
  warp_sync();
  memcpy(d, o, sizeof o);
}

}  // namespace stages
}  // namespace fastconv
