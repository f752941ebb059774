// Stage: one warp's GEMM tile at a caller-chosen place, with runtime-trimmed extents.
//
// WarpTile<T, MT, NT8>: a (16 MT) x (8 NT8) fp32 accumulator tile owned by ONE warp;
//   mma(A, lda, mstride, B, ldb, ksteps, mt, nt8): acc[i][j] += A_i[16][16 ksteps] . B_j[8][16 ksteps]^T
//   for i < mt, j < nt8 (warp-uniform runtime bounds <= MT, NT8), where A_i = the 16 rows starting at
//   A + i * mstride * lda (m tiles need not be adjacent: a warp can own tiles w, w + 8, ...) and
//   B_j = the 8 rows starting at B + 8 j * ldb (a 1x1 weight slab, row = output channel, as stored).
//   for_each(f): f(row, col, v0, v1) for (row, col) and (row, col + 1) of the trimmed tile; row counts
//   m tiles in units of 16 (row = 16 i + r, the caller maps i to its own m-tile index).
//   init_cols(b): every row of the tile := b[col] (a per-column bias folded into the accumulators: one
//   LDS.64 per n8 tile and warp instead of one per stored pair).
//   mma<true>(..., ks): A's column k scaled by ks[k] (fp32, shared, 16 ksteps entries) in registers after
//   the fragment loads: per k step 2 LDS.64 of ks and 4 MT packed multiplies (fp32: one broadcast
//   LDS per k); the SE gate of the project GEMM's hidden channels.
//   A warp with mt = 0 or nt8 = 0 issues nothing (no idle fragment loads).
// Why not stages::Gemm: that tile is a CTA-wide rectangle with compile-time extents; the inverted
// residual needs (a) m tiles distributed round-robin over warps (13 m tiles of a 14 x 14 tile on 8
// warps), (b) trimming to the rows/channels that exist (a clipped halo, K = 24 = 3 n8 tiles, a short
// last hidden chunk) without padding to the CTA tile, and (c) a runtime k depth.
// fp16/bf16: ldmatrix.x4 + mma.sync.m16n8k16 (stages/mma.cuh); per k step MT A ldmatrix, nt8 / 2 B
// ldmatrix.x4 (+ one .x2 for an odd nt8: K = 24 and 40 end on a lone n8 tile), MT NT8 mma. The B buffer
// must hold rows up to 16 ceil(nt8 / 2) (the .x2's idle lanes 16-31 still form addresses there). Rows 16-byte aligned, lda, ldb = 8 (mod 16)
// halves: the 8 rows of each ldmatrix phase fall in distinct 16-byte bank groups (conflict-free).
// fp32: FMA with the same accumulator layout (so for_each is shared), 2 MT + 2 NT8 LDS per k.
#pragma once

#include "stages/gemm.cuh"

namespace fastconv {
namespace stages {

template <typename T, int MT, int NT8, bool MMA = kTensorCore<T>> struct WarpTile {
  static_assert(NT8 % 2 == 0, "B n8 tiles are loaded in pairs");
  float acc[MT][NT8][4];

  __device__ __forceinline__ void zero() {
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
      for (int j = 0; j < NT8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;
  }

  __device__ __forceinline__ void init_cols(const float* b, int nt8) {
    const int c = (threadIdx.x & 3) * 2;
#pragma unroll
    for (int j = 0; j < NT8; ++j)
      if (j < nt8) {
        const float2 v = *reinterpret_cast<const float2*>(b + 8 * j + c);
#pragma unroll
        for (int i = 0; i < MT; ++i) {
          acc[i][j][0] = acc[i][j][2] = v.x;
          acc[i][j][1] = acc[i][j][3] = v.y;
        }
      }
  }

  template <bool KSCALE = false>
  __device__ __forceinline__ void mma(const T* A, int lda, int mstride, const T* B, int ldb, int ksteps, int mt,
                                      int nt8, const float* kscale = nullptr) {
    const int lane = threadIdx.x & 31;
    if (mt <= 0 || nt8 <= 0) return;
    if constexpr (MMA) {
      // Row addresses per lane (stages/mma.cuh): A matrices j = (rows + 8 (j & 1), k + 8 (j >> 1)),
      // B matrices j = (n + 8 (j >> 1), k + 8 (j & 1)).
      const T* a_row = A + (lane & 15) * lda + (lane >> 4) * 8;
      const T* b_row = B + ((lane >> 4) * 8 + (lane & 7)) * ldb + ((lane >> 3) & 1) * 8;
#pragma unroll 1
      for (int ks = 0; ks < ksteps; ++ks) {
        uint32_t a[MT][4], b[NT8][2];
#pragma unroll
        for (int i = 0; i < MT; ++i)
          if (i < mt) ldmatrix_x4(a[i], a_row + i * mstride * lda + ks * 16);
        if constexpr (KSCALE) {
          // a0, a1 hold columns 2t, 2t + 1 of the k step, a2, a3 columns 2t + 8, 2t + 9.
          const float2 lo = *reinterpret_cast<const float2*>(kscale + ks * 16 + (lane & 3) * 2);
          const float2 hi = *reinterpret_cast<const float2*>(kscale + ks * 16 + (lane & 3) * 2 + 8);
#pragma unroll
          for (int i = 0; i < MT; ++i)
#pragma unroll
            for (int r = 0; r < 4; ++r) {
              const float2 sc = r < 2 ? lo : hi;
              a[i][r] = word_bits<T>(half_bits<T>(a[i][r], 0) * sc.x, half_bits<T>(a[i][r], 1) * sc.y);
            }
        }
#pragma unroll
        for (int j = 0; j < NT8; j += 2)
          if (j + 1 < nt8) {
            uint32_t r[4];
            ldmatrix_x4(r, b_row + j * 8 * ldb + ks * 16);
            b[j][0] = r[0]; b[j][1] = r[1]; b[j + 1][0] = r[2]; b[j + 1][1] = r[3];
          } else if (j < nt8) {  // lanes 0-15 address matrices 0, 1 = n8 tile j (k 0-7, 8-15)
            uint32_t r[2];
            ldmatrix_x2(r, b_row + j * 8 * ldb + ks * 16);
            b[j][0] = r[0]; b[j][1] = r[1];
            b[j + 1][0] = b[j + 1][1] = 0u;  // unused (j + 1 >= nt8): keeps every register defined
          }
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
          for (int j = 0; j < NT8; ++j)
            if (i < mt && j < nt8) mma_16816<T>(acc[i][j], a[i], b[j]);
      }
    } else {
      const int g = lane >> 2, t = lane & 3;
#pragma unroll 2
      for (int k = 0; k < 16 * ksteps; ++k) {
        float a[MT][2], b[NT8][2];
        const float sk = KSCALE ? kscale[k] : 1.f;
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
          for (int h = 0; h < 2; ++h) a[i][h] = i < mt ? to_float(A[(i * mstride + g + 8 * h) * lda + k]) * sk : 0.f;
#pragma unroll
        for (int j = 0; j < NT8; ++j)
#pragma unroll
          for (int q = 0; q < 2; ++q) b[j][q] = j < nt8 ? to_float(B[(8 * j + 2 * t + q) * ldb + k]) : 0.f;
#pragma unroll
        for (int i = 0; i < MT; ++i)
#pragma unroll
          for (int j = 0; j < NT8; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[i][j][e] = fmaf(a[i][e >> 1], b[j][e & 1], acc[i][j][e]);
      }
    }
  }

  // f(i, r, col, v0, v1): m tile i (< mt), row r (0..15) inside it, columns col and col + 1.
  template <class F> __device__ __forceinline__ void for_each(int mt, int nt8, F&& f) const {
    const int lane = threadIdx.x & 31;
    const int g = lane >> 2, c = (lane & 3) * 2;
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
      for (int j = 0; j < NT8; ++j)
        if (i < mt && j < nt8) {
          f(i, g, 8 * j + c, acc[i][j][0], acc[i][j][1]);
          f(i, g + 8, 8 * j + c, acc[i][j][2], acc[i][j][3]);
        }
  }
};

}  // namespace stages
}  // namespace fastconv
