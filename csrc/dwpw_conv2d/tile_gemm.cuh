// Building blocks shared by the dwpw_conv2d and inverted_residual kernels (both are "produce an
// activation tile in shared memory, then multiply it by a 1x1 weight chunk" kernels):
//  - SmemCarver: one shared-memory layout function evaluated identically on host (to size the
//    launch) and device (to find the buffers), so the two can never disagree.
//  - TileAcc<T, BN>: a 64 x BN fp32 accumulator tile owned by a 256-thread block. fp16/bf16 use
//    nvcuda::wmma 16x16x16 (fp32 accumulate, sm_80+); fp32 uses FMA so results keep fp32 accuracy
//    (TF32 would not meet the fp32 tolerance).
//  - write_tile: the shared epilogue (bias, act, residual, store in NCHW or NHWC).
#pragma once

#include <mma.h>

#include <cstdint>
#include <type_traits>

#include "common.h"

namespace fastconv {
namespace tile {

constexpr int kThreads = 256;  // every kernel built on TileAcc runs 8 warps
constexpr int kRows = 64;      // rows (pixels) of every TileAcc tile

template <typename T> constexpr bool kUseMma = !std::is_same<T, float>::value;

// Leading dimension (elements) of a shared tile whose rows hold `k` reduction elements.
// wmma needs a multiple of 8 halves (16 B); +8 also staggers rows across banks. The FMA path
// reads 16 different rows per instruction, so an odd stride keeps those in distinct banks.
template <typename T> __host__ __device__ constexpr int pad_ld(int k) { return kUseMma<T> ? k + 8 : k + 1; }

// Accumulator staging tiles are fp32 with ld a multiple of 4 (wmma store requirement).
__host__ __device__ constexpr int acc_ld(int bn) { return bn + 4; }

struct SmemCarver {
  size_t off = 0;
  // Every buffer starts 128-byte aligned (wmma wants 32 B; 128 keeps vector loads legal too).
  template <typename U> __host__ __device__ size_t take(size_t count) {
    size_t o = (off + 127) & ~size_t(127);
    off = o + count * sizeof(U);
    return o;
  }
  __host__ __device__ void at_least(size_t end) { off = off > end ? off : end; }
};

template <typename T, int BN, bool MMA = kUseMma<T>> struct TileAcc;

// C[64 x BN] += A[64 x 16*KSTEPS] * B[BN x 16*KSTEPS]^T; A row-major (pixel, k), B row n holds the
// k-run of output channel n (so B is a col-major K x N matrix with ld = ldb).
// Warp w owns row fragment w % 4 and column fragments w / 4 + 2 j, j < BN / 32.
template <typename T, int BN> struct TileAcc<T, BN, true> {
  static_assert(BN % 32 == 0, "BN must be a multiple of 32");
  static constexpr int NF = BN / 32;
  nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> c[NF];

  __device__ __forceinline__ void zero() {
#pragma unroll
    for (int f = 0; f < NF; ++f) nvcuda::wmma::fill_fragment(c[f], 0.f);
  }
  template <int KSTEPS>
  __device__ __forceinline__ void mma(const T* A, int lda, const T* B, int ldb) {
    using namespace nvcuda;
    const int w = threadIdx.x >> 5, rf = w & 3, cf = w >> 2;
    // Not unrolled: unrolling lets nvcc hoist KSTEPS x NF 64-bit fragment addresses into
    // registers for the whole kernel, which spilled the inverted residual kernel.
#pragma unroll 1
    for (int ks = 0; ks < KSTEPS; ++ks) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
      wmma::load_matrix_sync(a, A + rf * 16 * lda + ks * 16, lda);
#pragma unroll
      for (int f = 0; f < NF; ++f) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b;
        wmma::load_matrix_sync(b, B + (cf + 2 * f) * 16 * ldb + ks * 16, ldb);
        wmma::mma_sync(c[f], a, b, c[f]);
      }
    }
  }
  __device__ __forceinline__ void store(float* C, int ldc) const {
    const int w = threadIdx.x >> 5, rf = w & 3, cf = w >> 2;
#pragma unroll
    for (int f = 0; f < NF; ++f)
      nvcuda::wmma::store_matrix_sync(C + rf * 16 * ldc + (cf + 2 * f) * 16, c[f], ldc, nvcuda::wmma::mem_row_major);
  }
};

// FMA path: thread (ty = tid / 16, tx = tid % 16) owns rows ty + 16 i (i < 4), cols tx + 16 j.
template <typename T, int BN> struct TileAcc<T, BN, false> {
  static_assert(BN % 16 == 0, "BN must be a multiple of 16");
  static constexpr int NC = BN / 16;
  float c[4][NC];

  __device__ __forceinline__ void zero() {
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < NC; ++j) c[i][j] = 0.f;
  }
  template <int KSTEPS>
  __device__ __forceinline__ void mma(const T* A, int lda, const T* B, int ldb) {
    const int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;
#pragma unroll 4
    for (int k = 0; k < 16 * KSTEPS; ++k) {
      float a[4], b[NC];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = to_float(A[(ty + 16 * i) * lda + k]);
#pragma unroll
      for (int j = 0; j < NC; ++j) b[j] = to_float(B[(tx + 16 * j) * ldb + k]);
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < NC; ++j) c[i][j] = fmaf(a[i], b[j], c[i][j]);
    }
  }
  __device__ __forceinline__ void store(float* C, int ldc) const {
    const int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < NC; ++j) C[(ty + 16 * i) * ldc + tx + 16 * j] = c[i][j];
  }
};

// Epilogue: out[pix p, channel k0 + n] = act(Cf[p][n] + bias) (+ residual), for p < 64, n < BN.
// pout[p] / pres[p]: element offset of pixel p in out / residual, or -1 when p is outside the
// image (masked). Channel strides out_cs / res_cs. NHWC maps consecutive threads to channels
// (contiguous there), NCHW to pixels, so both layouts store coalesced runs.
template <typename T, int BN>
__device__ __forceinline__ void write_tile(const float* Cf, int ldc, const int64_t* pout, const int64_t* pres,
                                           int k0, int K, const T* __restrict__ bias, int act,
                                           const T* __restrict__ res, int64_t res_cs, T* __restrict__ out,
                                           int64_t out_cs, bool nhwc) {
  for (int i = threadIdx.x; i < kRows * BN; i += kThreads) {
    const int n = nhwc ? i % BN : i / kRows;
    const int p = nhwc ? i / BN : i % kRows;
    const int ko = k0 + n;
    const int64_t po = pout[p];
    if (po < 0 || ko >= K) continue;
    float v = Cf[p * ldc + n];
    if (bias) v += to_float(bias[ko]);
    v = apply_act(v, act);
    if (res) v += to_float(res[pres[p] + ko * res_cs]);
    out[po + ko * out_cs] = from_float<T>(v);
  }
}

}  // namespace tile
}  // namespace fastconv
