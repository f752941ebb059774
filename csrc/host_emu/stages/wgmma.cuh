// Host emulation of csrc/stages/wgmma.cuh (found first on the emulator's include path), from the PTX
// semantics rather than from the device header: each of a warpgroup's 128 threads deposits its A
// registers, a warpgroup barrier, then every thread computes its own accumulators (the D layout),
// reading B from the registered block smem THROUGH THE DESCRIPTOR BITS (start, LBO, SBO decoded from
// the 64-bit value; range, alignment and zero swizzle/base-offset/reserved bits asserted), barrier.
// Accumulators become valid at the wgmma_wait that retires their commit group: until then the
// registers read NaN (a missing commit/wait, or reading them early, poisons the result), and a
// batch reading accumulators still pending in the same thread chains on the pending values (as
// back-to-back wgmma of one shape do in hardware). Checks that count into g_wgmma_violations (the
// harnesses fail on them): a cp.async of this thread still in flight into the B range, or any
// thread of the block with a retired cp.async into the B range and no fence_proxy_async since.
// kWgmma = FASTCONV_EMU_WGMMA (default 0): the harness builds both variants of the kernels.
#pragma once

#include <cassert>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <vector>

#include "kernel_common.h"
#include "stages/copy.cuh"
#include "stages/wgmma_desc.cuh"

#ifndef FASTCONV_EMU_WGMMA
#define FASTCONV_EMU_WGMMA 0
#endif

namespace fastconv {
namespace stages {

constexpr bool kWgmma = FASTCONV_EMU_WGMMA != 0;

inline uint32_t g_wg_a[8][128][4];   // A registers per warpgroup, thread
inline long g_wgmma_count = 0;       // per warpgroup thread 0 (statistics)
inline std::atomic<long> g_wgmma_violations{0};

struct EmuWgPending {
  float* d;
  int n;
  std::vector<float> val;
};
inline thread_local std::vector<EmuWgPending> g_wg_open;
inline thread_local std::deque<std::vector<EmuWgPending>> g_wg_groups;

inline void emu_wg_violation(const char* what) {
  if (g_wgmma_violations++ < 8) fprintf(stderr, "wgmma emulation: %s (thread %u, block %u,%u)\n", what, threadIdx.x, blockIdx.x, blockIdx.y);
}

inline void wgmma_fence() {}
inline void wgmma_commit() {
  g_wg_groups.push_back(std::move(g_wg_open));
  g_wg_open.clear();
}
template <int N> inline void wgmma_wait() {
  while (g_wg_groups.size() > size_t(N)) {
    for (const EmuWgPending& p : g_wg_groups.front()) memcpy(p.d, p.val.data(), p.n * sizeof(float));
    g_wg_groups.pop_front();
  }
}
inline void fence_proxy_async() { g_proxy_dirty[threadIdx.x] = 0; }
template <int N> inline void wgmma_fence_operand(float (&)[N]) {}
// True when this thread has no wgmma batch open or pending (the stage tests check it).
inline bool wgmma_idle() { return g_wg_open.empty() && g_wg_groups.empty(); }

template <typename T> inline float emu_wg_elem(uint32_t reg, int half) {
  const uint16_t bits = uint16_t(reg >> (16 * half));
  T v;
  memcpy(&v, &bits, 2);
  return to_float(v);
}

template <typename T, int N>
inline void wgmma_m64nNk16(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t desc, int scale_d = 1) {
  static_assert(sizeof(T) == 2 && (N == 16 || N == 64 || N == 128), "fp16/bf16, N 16, 64 or 128");
  const int wg = threadIdx.x / 128, tw = threadIdx.x % 128;
  // Decode the descriptor (PTX ISA "Matrix Descriptor Format"), independently of wgmma_desc.
  const uint32_t start = uint32_t(desc & 0x3FFF) << 4, lbo = uint32_t((desc >> 16) & 0x3FFF) << 4,
                 sbo = uint32_t((desc >> 32) & 0x3FFF) << 4;
  assert(((desc >> 62) & 3) == 0 && "wgmma descriptor: swizzle mode must be 0 (none)");
  assert(((desc >> 49) & 7) == 0 && "wgmma descriptor: base offset must be 0");
  assert((desc & 0x3FFFC000C000C000ull) == 0 && "wgmma descriptor: reserved bits set");
  assert(g_smem_base && "wgmma emulation needs the block's smem registered (emu_set_smem)");
  const uint32_t last = start + lbo + (N / 8 - 1) * sbo + 128;  // one past the last byte read
  assert(start % 16 == 0 && last <= g_smem_bytes && last <= (1u << 18) && "wgmma B operand outside shared memory");
  const unsigned char* B = g_smem_base + start;
  // B must have landed: no copy of this thread in flight into it; every writer fenced the proxy.
  auto overlaps = [&](const EmuCopy& c) {
    const auto* p = static_cast<const unsigned char*>(c.dst);
    return p < g_smem_base + last && p + c.bytes > B;
  };
  for (const EmuCopy& c : g_cp_open)
    if (overlaps(c)) emu_wg_violation("B read while a cp.async into it is uncommitted");
  for (const auto& grp : g_cp_groups)
    for (const EmuCopy& c : grp)
      if (overlaps(c)) emu_wg_violation("B read while a cp.async into it is in flight (missing cp_async_wait)");
  memcpy(g_wg_a[wg][tw], a, sizeof a);
  g_wg_bar[wg]->arrive_and_wait();
  if (tw == 0) {
    ++g_wgmma_count;
    for (unsigned t = 0; t < blockDim.x; ++t) {
      const uint64_t v = g_proxy_dirty[t];
      if (v && (v >> 32) < last && (v & 0xFFFFFFFFu) > start) {
        emu_wg_violation("cp.async data read by wgmma without fence_proxy_async");
        break;
      }
    }
  }
  // Inputs: this thread's newest pending value of these accumulators (chained batches), else the
  // registers. open: the entry of the batch being built, if any.
  const EmuWgPending* pend = nullptr;
  EmuWgPending* open = nullptr;
  for (auto& grp : g_wg_groups)
    for (auto& p : grp)
      if (p.d == d) pend = &p;
  for (auto& p : g_wg_open)
    if (p.d == d) pend = open = &p;
  std::vector<float> in(d, d + N / 2);
  if (pend) in = pend->val;
  const int w = tw / 32, l = tw % 32, g = l / 4, t = l % 4;
  std::vector<float> out(N / 2);
  for (int e = 0; e < N / 2; ++e) {
    const int row = 16 * w + g + 8 * ((e / 2) % 2), col = 8 * (e / 4) + 2 * t + (e % 2);
    const int rr = row % 16;
    double s = 0;
    for (int k = 0; k < 16; ++k) {
      const int lane = (rr % 8) * 4 + (k % 8) / 2, reg = rr / 8 + 2 * (k / 8);
      const float av = emu_wg_elem<T>(g_wg_a[wg][32 * (row / 16) + lane][reg], k % 2);
      const unsigned char* cm = B + (k / 8) * lbo + (col / 8) * sbo + (col % 8) * 16 + (k % 8) * 2;
      uint16_t bits;
      memcpy(&bits, cm, 2);
      T bv;
      memcpy(&bv, &bits, 2);
      s += double(av) * double(to_float(bv));
    }
    out[e] = float((scale_d ? double(in[e]) : 0.0) + s);
  }
  g_wg_bar[wg]->arrive_and_wait();
  if (open) open->val = out;
  else g_wg_open.push_back({d, N / 2, out});
  for (int e = 0; e < N / 2; ++e) d[e] = NAN;  // valid only after the wait that retires the batch
}

}  // namespace stages
}  // namespace fastconv
