// gconv_kernel: the grouped 1x1 GEMM behind group_conv1x1 and the ShuffleNet units (see gconv.h
// for the exact math and Params).
//
// Tiling: one 128-thread block computes a BM=64 (out channels of one group) x BN=64 (pixels) tile,
// stepping over the group's Cg input channels in BK=32 slices staged in shared memory.
//   fp16/bf16: 4 warps in 2x2, each 32x32 = 2x2 nvcuda::wmma 16x16x16 fragments, fp32 accumulate.
//   fp32:      each thread a 4 (m) x 8 (n) register tile of FMAs.
// The accumulator tile is then staged through shared memory (aliasing the operand tiles) so the
// epilogue stores coalesce along pixels (NCHW) or along channels (NHWC).
// Fused: shuffle_in in the B loader's channel index, a whole 3x3 depthwise conv in the B loader
// (DW=true: the dw output never reaches global memory), bias + residual + activation +
// shuffle_out / channel interleave / channel offset in the epilogue's store index, and a side
// branch (avg-pool or passthrough copy) written by extra blocks of the same launch.
// Registers (ptxas -O3): 79-105 per instantiation, no spills on sm_80/sm_90 (notes in gconv_*.cu);
// __launch_bounds__(128, 4) keeps 4 blocks/SM and removed small sm_80 spills seen without it.
#pragma once

#include <mma.h>

#include <cstdint>
#include <type_traits>

#include "group_conv1x1/gconv.h"

namespace fastconv {
namespace gconv {

constexpr int BM = 64, BN = 64, BK = 32, THREADS = 128;
constexpr int SIDE_C = 64;  // channels per side-branch block

// Shared-memory layout (bytes), operand tiles aliased with the fp32 accumulator tile.
// 16-bit types: As[BM][LDA] row-major (m, k), Bs[BK][LDB] row-major (k, n): wmma wants ldm % 8 == 0
// and 32-byte aligned fragment pointers; every fragment row offset below is a multiple of 16 rows.
// fp32: As[BK][LDAF] (k-major, so a thread reads 4 consecutive m as a float4), Bs[BK][LDB_F].
constexpr int LDA_H = BK + 8;   // 40 halfs
constexpr int LDB_H = BN + 8;   // 72 halfs
constexpr int LDA_F = BM + 4;   // 68 floats
constexpr int LDB_F = BN + 4;   // 68 floats
constexpr int LDC = BN + 4;     // 68 floats
constexpr int A_BYTES_H = BM * LDA_H * 2, B_BYTES_H = BK * LDB_H * 2;
constexpr int A_BYTES_F = BK * LDA_F * 4, B_BYTES_F = BK * LDB_F * 4;
constexpr int C_BYTES = BM * LDC * 4;
constexpr int cmax(int a, int b) { return a > b ? a : b; }
constexpr int SMEM_BYTES = cmax(C_BYTES, cmax(A_BYTES_H + B_BYTES_H, A_BYTES_F + B_BYTES_F));
static_assert(SMEM_BYTES <= 48 * 1024, "gconv static shared memory must stay under 48 KB");
static_assert(A_BYTES_H % 128 == 0 && A_BYTES_F % 128 == 0, "B tile must stay 128-byte aligned");
static_assert(THREADS == 128 && BM == 64 && BN == 64 && BK == 32, "thread maps below assume these");

// Logical (shuffled) channel ch of a tensor with C channels -> the unshuffled source channel.
__device__ __forceinline__ int shuffle_src(int ch, int s, int C) { return (ch % s) * (C / s) + ch / s; }
// Unshuffled channel k of a tensor with K channels -> its position after a shuffle with s groups.
__device__ __forceinline__ int shuffle_dst(int k, int s, int K) {
  const int cpg = K / s;
  return (k % cpg) * s + k / cpg;
}

// Element offset of (img, c, pixel index hw) in a tensor with C channels and HW pixels per plane.
template <bool NHWC>
__device__ __forceinline__ int64_t act_offset(int img, int c, int hw, int C, int HW) {
  return NHWC ? ((int64_t)img * HW + hw) * C + c : ((int64_t)img * C + c) * HW + hw;
}

// One B-operand element: logical input channel ch at output pixel (img, ho, wo); img >= 0.
template <typename T, bool DW, bool NHWC>
__device__ __forceinline__ float load_b(const Params& p, int ch, int img, int ho, int wo) {
  const T* __restrict__ x = static_cast<const T*>(p.x);
  const int HW = p.H * p.W;
  if (!DW) {
    const int cin = p.groups * p.Cg;
    const int xc = p.x_c0 + (p.shuffle_in ? shuffle_src(ch, p.shuffle_in, cin) : ch);
    return to_float<T>(x[act_offset<NHWC>(img, xc, ho * p.W + wo, p.x_C, HW)]);
  } else {
    const T* __restrict__ wt = static_cast<const T*>(p.dw_w) + ch * 9;
    float a = p.dw_b ? to_float<T>(static_cast<const T*>(p.dw_b)[ch]) : 0.f;
    const int xc = p.x_c0 + ch;
    // Base of channel xc in image img; pixel (hi, wi) is at base + (hi*W + wi) * pix_stride.
    const T* __restrict__ base = x + act_offset<NHWC>(img, xc, 0, p.x_C, HW);
    const int64_t pix_stride = NHWC ? p.x_C : 1;
    const int hi0 = ho * p.stride - 1, wi0 = wo * p.stride - 1;
#pragma unroll
    for (int dy = 0; dy < 3; ++dy) {
      const int hi = hi0 + dy;
      if (hi < 0 || hi >= p.H) continue;
#pragma unroll
      for (int dx = 0; dx < 3; ++dx) {
        const int wi = wi0 + dx;
        if (wi < 0 || wi >= p.W) continue;
        a = fmaf(to_float<T>(wt[dy * 3 + dx]), to_float<T>(base[(int64_t)(hi * p.W + wi) * pix_stride]), a);
      }
    }
    return a;
  }
}

// Side branch: channels [cb*SIDE_C, +SIDE_C) of side_x for this block's BN pixels.
template <typename T, bool NHWC>
__device__ void side_job(const Params& p, int cb, const int* s_img, const int* s_ho, const int* s_wo) {
  const T* __restrict__ sx = static_cast<const T*>(p.side_x);
  T* __restrict__ out = static_cast<T*>(p.out);
  const int HW = p.H * p.W, HWo = p.Ho * p.Wo;
  for (int i = threadIdx.x; i < SIDE_C * BN; i += THREADS) {
    const int n = NHWC ? i / SIDE_C : i % BN;
    const int c = cb * SIDE_C + (NHWC ? i % SIDE_C : i / BN);
    const int img = s_img[n];
    if (img < 0 || c >= p.side_C) continue;
    const int ho = s_ho[n], wo = s_wo[n];
    float v;
    if (p.side == kSideAvgPool) {
      const T* __restrict__ base = sx + act_offset<NHWC>(img, c, 0, p.side_xC, HW);
      const int64_t pix_stride = NHWC ? p.side_xC : 1;
      const int hi0 = ho * p.stride - 1, wi0 = wo * p.stride - 1;
      float s = 0.f;
#pragma unroll
      for (int dy = 0; dy < 3; ++dy) {
        const int hi = hi0 + dy;
        if (hi < 0 || hi >= p.H) continue;
#pragma unroll
        for (int dx = 0; dx < 3; ++dx) {
          const int wi = wi0 + dx;
          if (wi < 0 || wi >= p.W) continue;
          s += to_float<T>(base[(int64_t)(hi * p.W + wi) * pix_stride]);
        }
      }
      v = s * (1.f / 9.f);  // count_include_pad=True: always the full window
    } else {                // kSideCopy: stride 1, same pixel
      v = to_float<T>(sx[act_offset<NHWC>(img, c, ho * p.W + wo, p.side_xC, HW)]);
    }
    v = apply_act(v, p.side_act);
    out[act_offset<NHWC>(img, p.side_mul * c + p.side_off, ho * p.Wo + wo, p.out_C, HWo)] = from_float<T>(v);
  }
}

template <typename T, bool DW, bool NHWC>
__global__ void __launch_bounds__(THREADS, 4) gconv_kernel(const Params p) {
  constexpr bool kHalf = !std::is_same<T, float>::value;
  __shared__ __align__(128) unsigned char smem[SMEM_BYTES];
  __shared__ int s_img[BN], s_ho[BN], s_wo[BN];
  const int tid = threadIdx.x;
  const int HWo = p.Ho * p.Wo;
  const int NP = p.N * HWo;  // < 2^31, checked by run()
  const int p0 = blockIdx.x * BN;
  if (tid < BN) {
    const int P = p0 + tid;
    if (P < NP) {
      const int img = P / HWo, r = P - img * HWo, ho = r / p.Wo;
      s_img[tid] = img;
      s_ho[tid] = ho;
      s_wo[tid] = r - ho * p.Wo;
    } else {
      s_img[tid] = -1;
      s_ho[tid] = 0;
      s_wo[tid] = 0;
    }
  }
  __syncthreads();

  const int mtiles = (p.Kg + BM - 1) / BM;
  const int gemm_y = p.groups * mtiles;
  if ((int)blockIdx.y >= gemm_y) {  // uniform per block
    side_job<T, NHWC>(p, blockIdx.y - gemm_y, s_img, s_ho, s_wo);
    return;
  }
  const int grp = blockIdx.y / mtiles, mt = blockIdx.y - grp * mtiles;
  const int m0 = mt * BM;
  const int mvalid = min(BM, p.Kg - m0);
  const int kbase = grp * p.Kg + m0;  // logical out channel of tile row 0
  const int cbase = grp * p.Cg;       // logical in channel of slice column 0
  const T* __restrict__ w = static_cast<const T*>(p.w) + (int64_t)kbase * p.Cg;

  float* Cs = reinterpret_cast<float*>(smem);  // [BM][LDC], valid after the K loop

  // fp32 path state
  float acc[4][8];
  const int tm = tid >> 3, tn = tid & 7;  // rows tm*4.., cols tn*4.. and 32+tn*4..
  // wmma path state
  const int warp = tid >> 5, wm = warp >> 1, wn = warp & 1;
  nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> cf[2][2];
  if constexpr (kHalf) {
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 2; ++j) nvcuda::wmma::fill_fragment(cf[i][j], 0.f);
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[i][j] = 0.f;
  }

  for (int k0 = 0; k0 < p.Cg; k0 += BK) {
    const int kvalid = min(BK, p.Cg - k0);
    // A tile: w[kbase + m][k0 + k], k fastest (coalesced weight rows).
#pragma unroll 4
    for (int i = tid; i < BM * BK; i += THREADS) {
      const int m = i / BK, k = i % BK;
      const T v = (m < mvalid && k < kvalid) ? w[m * p.Cg + k0 + k] : from_float<T>(0.f);
      if constexpr (kHalf) {
        reinterpret_cast<T*>(smem)[m * LDA_H + k] = v;
      } else {
        reinterpret_cast<float*>(smem)[k * LDA_F + m] = v;
      }
    }
    // B tile: NCHW walks pixels fastest (contiguous planes), NHWC channels fastest (pixel rows).
#pragma unroll 4
    for (int i = tid; i < BK * BN; i += THREADS) {
      const int n = NHWC ? i / BK : i % BN;
      const int k = NHWC ? i % BK : i / BN;
      const int img = s_img[n];
      float v = 0.f;
      if (img >= 0 && k < kvalid) v = load_b<T, DW, NHWC>(p, cbase + k0 + k, img, s_ho[n], s_wo[n]);
      if constexpr (kHalf) {
        reinterpret_cast<T*>(smem + A_BYTES_H)[k * LDB_H + n] = from_float<T>(v);
      } else {
        reinterpret_cast<float*>(smem + A_BYTES_F)[k * LDB_F + n] = v;
      }
    }
    __syncthreads();
    if constexpr (kHalf) {
      const T* As = reinterpret_cast<const T*>(smem);
      const T* Bs = reinterpret_cast<const T*>(smem + A_BYTES_H);
#pragma unroll
      for (int kk = 0; kk < BK; kk += 16) {
        nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, T, nvcuda::wmma::row_major> af[2];
        nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 16, T, nvcuda::wmma::row_major> bf[2];
#pragma unroll
        for (int i = 0; i < 2; ++i) nvcuda::wmma::load_matrix_sync(af[i], As + (wm * 32 + i * 16) * LDA_H + kk, LDA_H);
#pragma unroll
        for (int j = 0; j < 2; ++j) nvcuda::wmma::load_matrix_sync(bf[j], Bs + kk * LDB_H + wn * 32 + j * 16, LDB_H);
#pragma unroll
        for (int i = 0; i < 2; ++i)
#pragma unroll
          for (int j = 0; j < 2; ++j) nvcuda::wmma::mma_sync(cf[i][j], af[i], bf[j], cf[i][j]);
      }
    } else {
      const float* As = reinterpret_cast<const float*>(smem);
      const float* Bs = reinterpret_cast<const float*>(smem + A_BYTES_F);
#pragma unroll 8
      for (int k = 0; k < BK; ++k) {
        const float4 a = *reinterpret_cast<const float4*>(As + k * LDA_F + tm * 4);
        const float4 b0 = *reinterpret_cast<const float4*>(Bs + k * LDB_F + tn * 4);
        const float4 b1 = *reinterpret_cast<const float4*>(Bs + k * LDB_F + 32 + tn * 4);
        const float av[4] = {a.x, a.y, a.z, a.w};
        const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
      }
    }
    __syncthreads();  // operand tiles are overwritten next step (or by Cs below)
  }

  // Accumulators -> Cs (aliases the operand tiles; the loop ended with a barrier).
  if constexpr (kHalf) {
#pragma unroll
    for (int i = 0; i < 2; ++i)
#pragma unroll
      for (int j = 0; j < 2; ++j)
        nvcuda::wmma::store_matrix_sync(Cs + (wm * 32 + i * 16) * LDC + wn * 32 + j * 16, cf[i][j], LDC,
                                        nvcuda::wmma::mem_row_major);
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float* row = Cs + (tm * 4 + i) * LDC;
      *reinterpret_cast<float4*>(row + tn * 4) = make_float4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
      *reinterpret_cast<float4*>(row + 32 + tn * 4) = make_float4(acc[i][4], acc[i][5], acc[i][6], acc[i][7]);
    }
  }
  __syncthreads();

  // Epilogue: bias, residual, activation, shuffled / interleaved store.
  const T* __restrict__ bias = static_cast<const T*>(p.bias);
  const T* __restrict__ res = static_cast<const T*>(p.res);
  T* __restrict__ out = static_cast<T*>(p.out);
  const int K = p.groups * p.Kg;
  for (int i = tid; i < BM * BN; i += THREADS) {
    const int n = NHWC ? i / BM : i % BN;
    const int m = NHWC ? i % BM : i / BN;
    const int img = s_img[n];
    if (img < 0 || m >= mvalid) continue;
    const int k = kbase + m;
    float v = Cs[m * LDC + n];
    if (bias) v += to_float<T>(bias[k]);
    const int oc = p.out_mul * (p.shuffle_out ? shuffle_dst(k, p.shuffle_out, K) : k) + p.out_off;
    const int64_t off = act_offset<NHWC>(img, oc, s_ho[n] * p.Wo + s_wo[n], p.out_C, HWo);
    if (res) v += to_float<T>(res[off]);
    out[off] = from_float<T>(apply_act(v, p.act));
  }
}

template <typename T, bool DW, bool NHWC>
void launch(const Params& p, cudaStream_t stream) {
  const int64_t np = (int64_t)p.N * p.Ho * p.Wo;
  const int mtiles = (p.Kg + BM - 1) / BM;
  const int side_blocks = p.side != kSideNone ? (p.side_C + SIDE_C - 1) / SIDE_C : 0;
  const dim3 grid((unsigned)((np + BN - 1) / BN), (unsigned)(p.groups * mtiles + side_blocks));
  gconv_kernel<T, DW, NHWC><<<grid, THREADS, 0, stream>>>(p);
  FASTCONV_CHECK_LAUNCH();
}

#define FASTCONV_GCONV_INSTANTIATE(T)                                   \
  template void launch<T, false, false>(const Params&, cudaStream_t); \
  template void launch<T, false, true>(const Params&, cudaStream_t);  \
  template void launch<T, true, false>(const Params&, cudaStream_t);  \
  template void launch<T, true, true>(const Params&, cudaStream_t);

}  // namespace gconv
}  // namespace fastconv
