// Stages: the CTA tile GEMM from shared memory and the vectorised epilogue.
//
// Gemm<T, BM, BN, WM, WN>: a BM x BN fp32 accumulator tile owned by WM x WN warps (NT = 32 WM WN
// threads); acc += A[0:BM, 0:16 KSTEPS] * B[0:BN, 0:16 KSTEPS]^T.
//   A: row-major [BM][lda] of T (row = pixel, column = reduction channel).
//   B: [BN][ldb] of T, row n = the reduction run of output channel n (a 1x1 weight (K, C) slab as
//      stored), i.e. column-major K x N -- what mma's ".col" B operand wants, so no transpose.
//      BCORE (fp16/bf16 only): the same values as core-matrix tiles, core_offset(n, k, ldb) with
//      ldb = 8 x depth (the layout wgmma reads, stages/wg_gemm.cuh); a k offset k0 is B + 8 k0.
//   fp16/bf16: ldmatrix.x4 + mma.sync.m16n8k16 (fp32 accumulate). Warp (wm = w % WM, wn = w / WM)
//     owns rows wm*BM/WM.. and columns wn*BN/WN..; per 16-deep k step it issues MT A ldmatrix.x4,
//     NT8/2 B ldmatrix.x4 and MT*NT8 mma (MT = BM/WM/16, NT8 = BN/WN/8). Rows of A and B must be
//     16-byte aligned; lda, ldb = 8 (mod 64) halves make the 8 row addresses of every ldmatrix
//     phase hit distinct bank groups (conflict-free).
//   fp32: FMA (keeps fp32 accuracy; TF32 would not meet the fp32 tolerance). Thread (ty, tx) of a
//     16 x (NT/16) grid owns rows ty + 16 i, columns tx + (NT/16) j.
//   store(Cs, ldc, accumulate, c_lo, c_hi): accumulators -> (or +=) fp32 staging tile [BM][ldc]
//     (ldc = BN + 8: the 8-byte stores of each half warp hit 32 distinct banks); columns [c_lo, c_hi)
//     only (default all), at column c - c_lo, so a BN-wide tile can drain through a narrower
//     staging tile in passes. Each thread touches only its own elements, so accumulate needs no
//     barrier between calls. for_each(f) / for_each1(f): the accumulators in registers instead.
//   mma(..., ncols): MMA warps whose columns all lie at or past ncols skip (a partial output tile
//     costs only the warps it covers; granularity kColStep = BN / WN); FMA computes every column.
//
// store_tile<T, BM, BN, NT>: the epilogue. out[row r, channel n0 + n] = act(Cs[r][n] + bias) (+ res)
// for the rows with a valid offset (rows(r) returns {out offset, res offset} or out < 0) and
// channels < K. vec (channel stride 1 in out and res, K, bias/res/out pointers and pixel offsets
// multiples of 8 elements): one item = 8 channels of one pixel, two LDS.128 from Cs, one 16-byte
// LDG of bias and of residual, one 16-byte STG (fp32: two of each). Otherwise scalar, channel-
// fastest when out_cs == 1 else row-fastest (coalesced NCHW).
#pragma once

#include <type_traits>

#include "stages/mma.cuh"
#include "stages/tile_copy.cuh"
#include "stages/vec.cuh"

namespace fastconv {
namespace stages {

template <typename T> constexpr bool kTensorCore = !std::is_same<T, float>::value;

// (core_offset, the core-matrix B layout BCORE reads: stages/tile_copy.cuh)

template <typename T, int BM, int BN, int WM, int WN, bool MMA = kTensorCore<T>, bool BCORE = false> struct Gemm;

template <typename T, int BM, int BN, int WM, int WN, bool BCORE> struct Gemm<T, BM, BN, WM, WN, true, BCORE> {
  static constexpr int NT = 32 * WM * WN;
  static constexpr int WTM = BM / WM, WTN = BN / WN;
  static constexpr int MT = WTM / 16, NT8 = WTN / 8;
  static_assert(WTM % 16 == 0 && WTN % 16 == 0, "warp tile must be a multiple of 16 x 16");
  float acc[MT][NT8][4];

  __device__ __forceinline__ void zero() {
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
      for (int j = 0; j < NT8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;
  }

  static constexpr int kColStep = WTN;  // column granularity of mma's ncols (one warp's columns)

  // ncols < BN: the warps whose columns all lie at or past ncols skip the tile (warp-uniform), so a
  // partial output tile costs neither their ldmatrix nor their mma; their B rows are never read.
  template <int KSTEPS>
  __device__ __forceinline__ void mma(const T* A, int lda, const T* B, int ldb, int ncols = BN) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int wm = warp % WM, wn = warp / WM;
    if (ncols < BN && wn * WTN >= ncols) return;  // (folds away for the default ncols = BN)
    // Row addresses each lane feeds ldmatrix (see stages/mma.cuh): A matrices j = (rows +8 j&1,
    // k +8 (j>>1)); B matrices j = (n +8 (j>>1), k +8 (j&1)).
    const T* a_row = A + (wm * WTM + (lane & 15)) * lda + (lane >> 4) * 8;
    // B rows: row-major [n][ldb], or core-matrix tiles (BCORE: a k offset k0 is B + 8 k0).
    const int bn = wn * WTN + (lane >> 4) * 8 + (lane & 7), bk = ((lane >> 3) & 1) * 8;
    const T* b_row = B + (BCORE ? core_offset(bn, bk, ldb) : bn * ldb + bk);
    const int b_j8 = BCORE ? ldb : 8 * ldb, b_ks = BCORE ? 128 : 16;  // per 8 columns, per k step
    // Two k steps per iteration: enough independent ldmatrix/mma for the scheduler without
    // hoisting every step's fragments into registers (fully unrolled, it spilled under 128 regs).
#pragma unroll 2
    for (int ks = 0; ks < KSTEPS; ++ks) {
      uint32_t a[MT][4], b[NT8][2];
#pragma unroll
      for (int i = 0; i < MT; ++i) ldmatrix_x4(a[i], a_row + i * 16 * lda + ks * 16);
#pragma unroll
      for (int j = 0; j < NT8; j += 2) {
        uint32_t r[4];
        ldmatrix_x4(r, b_row + j * b_j8 + ks * b_ks);
        b[j][0] = r[0]; b[j][1] = r[1]; b[j + 1][0] = r[2]; b[j + 1][1] = r[3];
      }
#pragma unroll
      for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT8; ++j) mma_16816<T>(acc[i][j], a[i], b[j]);
    }
  }

  // f(row, col, v0, v1): the accumulators of (row, col) and (row, col + 1).
  template <class F> __device__ __forceinline__ void for_each(F&& f) const {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int r0 = (warp % WM) * WTM + (lane >> 2), c0 = (warp / WM) * WTN + (lane & 3) * 2;
#pragma unroll
    for (int i = 0; i < MT; ++i)
#pragma unroll
      for (int j = 0; j < NT8; ++j) {
        f(r0 + i * 16, c0 + j * 8, acc[i][j][0], acc[i][j][1]);
        f(r0 + i * 16 + 8, c0 + j * 8, acc[i][j][2], acc[i][j][3]);
      }
  }

  // accumulate: Cs += acc (a K-split whose partial sums must not stay in registers), else Cs = acc.
  // Columns [c_lo, c_hi) only, to Cs column c - c_lo (a staging tile narrower than BN, filled in
  // passes); the warps owning none of them skip (warp-uniform).
  __device__ __forceinline__ void store(float* Cs, int ldc, bool accumulate = false, int c_lo = 0, int c_hi = BN) const {
    const bool part = c_lo > 0 || c_hi < BN;  // (false for the defaults: the checks fold away)
    const int wn = (threadIdx.x >> 5) / WM;
    if (part && (wn * WTN >= c_hi || (wn + 1) * WTN <= c_lo)) return;
    for_each([&](int r, int c, float v0, float v1) {
      if (part && (c < c_lo || c >= c_hi)) return;  // (c, c + 1) never straddle: c_lo, c_hi are even
      float2* p = reinterpret_cast<float2*>(Cs + r * ldc + c - c_lo);
      if (accumulate) {
        const float2 o = *p;
        v0 += o.x;
        v1 += o.y;
      }
      *p = make_float2(v0, v1);
    });
  }
};

template <typename T, int BM, int BN, int WM, int WN, bool BCORE> struct Gemm<T, BM, BN, WM, WN, false, BCORE> {
  static_assert(!BCORE, "the FMA tile reads row-major B");
  static constexpr int NT = 32 * WM * WN;
  static constexpr int TY = 16, TX = NT / 16;
  static constexpr int RI = BM / TY, CJ = BN / TX;
  static_assert(BM % TY == 0 && BN % TX == 0, "FMA tile must divide the thread grid");
  float acc[RI][CJ];

  __device__ __forceinline__ void zero() {
#pragma unroll
    for (int i = 0; i < RI; ++i)
#pragma unroll
      for (int j = 0; j < CJ; ++j) acc[i][j] = 0.f;
  }

  static constexpr int kColStep = BN;  // every thread owns columns across the whole tile

  // ncols: accepted for the MMA interface; every column is computed (B rows past ncols must be finite).
  template <int KSTEPS>
  __device__ __forceinline__ void mma(const T* A, int lda, const T* B, int ldb, int /*ncols*/ = BN) {
    const int ty = threadIdx.x / TX, tx = threadIdx.x % TX;
#pragma unroll 4
    for (int k = 0; k < 16 * KSTEPS; ++k) {
      float a[RI], b[CJ];
#pragma unroll
      for (int i = 0; i < RI; ++i) a[i] = to_float(A[(ty + TY * i) * lda + k]);
#pragma unroll
      for (int j = 0; j < CJ; ++j) b[j] = to_float(B[(tx + TX * j) * ldb + k]);
#pragma unroll
      for (int i = 0; i < RI; ++i)
#pragma unroll
        for (int j = 0; j < CJ; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
  }

  template <class F> __device__ __forceinline__ void for_each1(F&& f) const {
    const int ty = threadIdx.x / TX, tx = threadIdx.x % TX;
#pragma unroll
    for (int i = 0; i < RI; ++i)
#pragma unroll
      for (int j = 0; j < CJ; ++j) f(ty + TY * i, tx + TX * j, acc[i][j]);
  }

  __device__ __forceinline__ void store(float* Cs, int ldc, bool accumulate = false, int c_lo = 0, int c_hi = BN) const {
    const bool part = c_lo > 0 || c_hi < BN;
    for_each1([&](int r, int c, float v) {
      if (part && (c < c_lo || c >= c_hi)) return;
      float* q = Cs + r * ldc + c - c_lo;
      *q = accumulate ? *q + v : v;
    });
  }
};

struct RowOffsets {
  int64_t out, res;  // element offsets of the row's pixel in out / residual; out < 0: masked row
};

template <typename T, int BM, int BN, int NT, class Rows>
__device__ __forceinline__ void store_tile(const float* Cs, int ldc, Rows&& rows, int n0, int K,
                                           const T* __restrict__ bias, int act, const T* __restrict__ res,
                                           int64_t res_cs, T* __restrict__ out, int64_t out_cs, bool vec) {
  if (vec) {
    constexpr int G = BN / 8;
    for (int i = threadIdx.x; i < BM * G; i += NT) {
      const int r = i / G, n = (i - r * G) * 8;
      const RowOffsets o = rows(r);
      if (o.out < 0 || n0 + n >= K) continue;
      float v[8];
      lds8f(Cs + r * ldc + n, v);
      if (bias) {
        float b[8];
        ldg8(bias + n0 + n, b);
#pragma unroll
        for (int c = 0; c < 8; ++c) v[c] += b[c];
      }
      act_n(v, act);
      if (res) {
        float q[8];
        ldg8(res + o.res + n0 + n, q);
#pragma unroll
        for (int c = 0; c < 8; ++c) v[c] += q[c];
      }
      stg8(out + o.out + n0 + n, v);
    }
    return;
  }
  const bool cfast = out_cs == 1;
  for (int i = threadIdx.x; i < BM * BN; i += NT) {
    const int n = cfast ? i % BN : i / BM, r = cfast ? i / BN : i % BM;
    const int ko = n0 + n;
    const RowOffsets o = rows(r);
    if (o.out < 0 || ko >= K) continue;
    float v = Cs[r * ldc + n];
    if (bias) v += to_float(bias[ko]);
    v = apply_act(v, act);
    if (res) v += to_float(res[o.res + ko * res_cs]);
    out[o.out + ko * out_cs] = from_float<T>(v);
  }
}

}  // namespace stages
}  // namespace fastconv
