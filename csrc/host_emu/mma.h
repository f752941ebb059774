#pragma once
// wmma emulation: every lane holds the whole 16x16 tile; only lane 0 stores.
#include "kernel_common.h"
namespace nvcuda { namespace wmma {
struct matrix_a {}; struct matrix_b {}; struct accumulator {}; struct row_major {}; struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
template <typename Use, int M, int N, int K, typename T, typename L = void> struct fragment { float v[256]; };
template <typename F> inline void fill_fragment(F& f, float x) { for (auto& e : f.v) e = x; }
inline void chk(const void* p, unsigned ldm, unsigned mult) {
  assert((reinterpret_cast<uintptr_t>(p) % 32) == 0 && "wmma pointer not 32-byte aligned");
  assert(ldm % mult == 0 && "wmma ldm");
}
template <typename T> inline void load_matrix_sync(fragment<matrix_a, 16, 16, 16, T, row_major>& f, const T* p, unsigned ldm) {
  chk(p, ldm, 8);
  for (int r = 0; r < 16; ++r) for (int c = 0; c < 16; ++c) f.v[r * 16 + c] = fastconv::to_float(p[r * ldm + c]);
}
template <typename T> inline void load_matrix_sync(fragment<matrix_b, 16, 16, 16, T, col_major>& f, const T* p, unsigned ldm) {
  chk(p, ldm, 8);
  for (int k = 0; k < 16; ++k) for (int n = 0; n < 16; ++n) f.v[k * 16 + n] = fastconv::to_float(p[n * ldm + k]);
}
template <typename T> inline void load_matrix_sync(fragment<matrix_b, 16, 16, 16, T, row_major>& f, const T* p, unsigned ldm) {
  chk(p, ldm, 8);
  for (int k = 0; k < 16; ++k) for (int n = 0; n < 16; ++n) f.v[k * 16 + n] = fastconv::to_float(p[k * ldm + n]);
}
template <typename T, typename LB>
inline void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const fragment<matrix_a, 16, 16, 16, T, row_major>& a,
                     const fragment<matrix_b, 16, 16, 16, T, LB>& b, const fragment<accumulator, 16, 16, 16, float>& c) {
  float o[256];
  for (int r = 0; r < 16; ++r) for (int n = 0; n < 16; ++n) {
    float s = c.v[r * 16 + n];
    for (int k = 0; k < 16; ++k) s += a.v[r * 16 + k] * b.v[k * 16 + n];
    o[r * 16 + n] = s;
  }
  memcpy(d.v, o, sizeof o);
}
inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ldm, layout_t) {
  chk(p, ldm, 4);
  if (threadIdx.x % 32) return;
  for (int r = 0; r < 16; ++r) for (int c = 0; c < 16; ++c) p[r * ldm + c] = f.v[r * 16 + c];
}
}}  // namespace nvcuda::wmma
