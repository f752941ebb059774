// Host emulation of csrc/stages/copy.cuh (found first on the emulator's include path).
// cp.async is emulated faithfully enough to catch pipeline bugs: a copy is queued at issue time and
// its destination poisoned (0xFF bytes: NaN in fp16/bf16/fp32), the data lands only when a
// cp_async_wait<N> retires its group. So reading a buffer before waiting for it, or issuing a copy
// into a buffer other threads still read (a missing __syncthreads), turns results into NaN.
#pragma once

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cstdint>
#include <cstring>
#include <deque>
#include <vector>

#include "emu.h"

namespace fastconv {
namespace stages {

struct EmuCopy {
  void* dst;
  const void* src;
  int bytes;
  bool pred;
};
inline thread_local std::vector<EmuCopy> g_cp_open;
inline thread_local std::deque<std::vector<EmuCopy>> g_cp_groups;
inline thread_local long g_cp_issued = 0;  // statistics for the stage tests

// With a registered block smem (emu_set_smem): the offset in it, as the 18-bit shared window holds it
// (asserted in range); otherwise the low pointer bits (only ever compared, never dereferenced).
inline uint32_t smem_addr(const void* p) {
  if (!g_smem_base) return uint32_t(reinterpret_cast<uintptr_t>(p));
  const auto* q = static_cast<const unsigned char*>(p);
  assert(q >= g_smem_base && q < g_smem_base + g_smem_bytes && "smem_addr outside the block's shared memory");
  return uint32_t(q - g_smem_base);
}
// Per thread, the smem range [lo, hi) (offsets, packed lo << 32 | hi; 0 = none) its retired cp.async
// copies wrote since its last fence_proxy_async: the wgmma twin flags a B operand overlapping any
// thread's range (tensor-core reads need the proxy fence, stages/wgmma.cuh). A range, not a flag:
// another warpgroup may legitimately land its next slab (a different buffer) before this one's wgmma.
inline std::atomic<uint64_t> g_proxy_dirty[1024];

inline void emu_cp_async(void* dst, const void* src, bool pred, int bytes) {
  assert(reinterpret_cast<uintptr_t>(dst) % bytes == 0 && "cp.async destination misaligned");
  assert(reinterpret_cast<uintptr_t>(src) % bytes == 0 && "cp.async source misaligned");
  assert(src != nullptr && "cp.async needs a valid source pointer even when predicated off");
  memset(dst, 0xFF, bytes);
  g_cp_open.push_back({dst, src, bytes, pred});
  ++g_cp_issued;
}
inline void cp_async16(void* dst, const void* src, bool pred) { emu_cp_async(dst, src, pred, 16); }
inline void cp_async8(void* dst, const void* src, bool pred) { emu_cp_async(dst, src, pred, 8); }
inline void cp_async4(void* dst, const void* src, bool pred) { emu_cp_async(dst, src, pred, 4); }
template <int BYTES> inline void cp_async(void* dst, const void* src, bool pred) {
  static_assert(BYTES == 16 || BYTES == 8 || BYTES == 4, "cp.async moves 4, 8 or 16 bytes");
  emu_cp_async(dst, src, pred, BYTES);
}

inline void cp_async_commit() {
  g_cp_groups.push_back(std::move(g_cp_open));
  g_cp_open.clear();
}

template <int N> inline void cp_async_wait() {
  while (g_cp_groups.size() > size_t(N)) {
    for (const EmuCopy& c : g_cp_groups.front()) {
      if (c.pred) memcpy(c.dst, c.src, c.bytes);
      else memset(c.dst, 0, c.bytes);
      const auto* d = static_cast<const unsigned char*>(c.dst);
      if (g_smem_base && d >= g_smem_base && d < g_smem_base + g_smem_bytes) {
        const uint64_t off = uint64_t(d - g_smem_base), v = g_proxy_dirty[threadIdx.x];
        const uint64_t lo = v ? std::min(v >> 32, off) : off, hi = v ? std::max(v & 0xFFFFFFFFu, off + c.bytes) : off + c.bytes;
        g_proxy_dirty[threadIdx.x] = lo << 32 | hi;
      }
    }
    g_cp_groups.pop_front();
  }
}

// True when this thread has no copies in flight (the stage tests check it after each kernel).
inline bool cp_async_idle() { return g_cp_open.empty() && g_cp_groups.empty(); }

inline void chk16(const void* p) { assert(reinterpret_cast<uintptr_t>(p) % 16 == 0 && "16-byte access misaligned"); }
inline uint4 ldg16(const void* p) { chk16(p); uint4 v; memcpy(&v, p, 16); return v; }
inline void stg16(void* p, uint4 v) { chk16(p); memcpy(p, &v, 16); }
inline uint4 lds16(const void* p) { chk16(p); uint4 v; memcpy(&v, p, 16); return v; }
inline void sts16(void* p, uint4 v) { chk16(p); memcpy(p, &v, 16); }

}  // namespace stages
}  // namespace fastconv
