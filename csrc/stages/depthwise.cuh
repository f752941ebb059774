// Stage: depthwise k x k convolution (+ bias, act) of one CTA's TH x TW output tile, one channel
// chunk of cc channels (a multiple of 8) at a time, from an input halo staged in shared memory.
//
//   using DW = stages::Depthwise<T, KS, S, TH, TW, RW, NT[, PACK]>;
//   DW::load_input(bytes, in, x, xs, n, h0, w0, H, W, ih, iw, c0, C, cc[, ldi]);  // halo -> smem
//   DW::load_weights(wt, bias, dw_w, dw_b, c0, C, k * k, cc);                // taps -> smem
//   cp_async_commit(); cp_async_wait<0>(); __syncthreads();                  // (or a pipeline)
//   DW::compute(in, wt, bias, act, k, s, d, iw, cc, sink[, ldi[, cw]]);      // sink(row, g, v[8])
//
// Shared memory (the caller places the buffers):
//   in   [ih][iw][cc] of T (pixel pitch ldi >= cc when given, a multiple of 8; default cc),
//        ih = extent(TH, k, s, d), iw = extent(TW, k, s, d): the input rows
//        h0 .. h0 + ih - 1 (h0 = oy0 * s - pad), columns likewise, channels c0 .. c0 + cc - 1,
//        zero outside the image and past C. 16-byte aligned.
//   wt   [k*k][cc] T (tap-major so one thread's 8 channels of a tap are one 16-byte load in
//        fp16/bf16), bias [cc] fp32.
// load_input: bytes = 16/8/4 uses cp.async (NHWC: channel stride 1, rows 16/8/4-byte aligned,
// C a multiple of bytes / sizeof(T)); bytes = 0 is a synchronous scalar path for NCHW (pixel-fastest,
// coalesced along w) and for NHWC with odd channel counts. load_weights is synchronous (k*k*cc
// scalar loads spread over the CTA: a few per thread).
//
// compute: work item = (output row oy, strip of RW outputs along W, group g of 8 channels);
// items = TH * (TW / RW) * (cc / 8), g fastest, item it = tid, tid + NT, ... (with NT % (cc / 8) == 0
// a thread keeps one g). cw (a multiple of 8 <= cc, default cc): the items of groups g >= cw / 8
// are skipped, so only the chunk's first cw channels are read, computed and sunk (the inverted
// residual's short last hidden chunk). Skipping keeps the item loop's divisions by the constant
// cc / 8 and one copy of the code; an item list over cw / 8 groups needed a literal cw per call,
// three inlined copies, and spilled 88 B in ir T8 k5 s2 SE pass 1. An item keeps RW x 8 fp32 accumulators and, per filter row, the k x 8
// weights in registers (fp32, or packed fp16/bf16 when PACK: see Taps8; default k >= 5), and slides
// along the input row: with KS, S compile-time (dilation 1) it reads (RW - 1) * S + KS input vectors
// per filter row for RW outputs instead of RW * KS. KS = 0 or S = 0: runtime k, stride, dilation
// (slower: weights and taps re-read per output). sink(row = oy * TW + ox, g, v) receives the
// activated 8 channels (g * 8 .. g * 8 + 7 of the chunk); a typical sink stores them as 16 bytes of a
// GEMM A tile. (Holding all KS^2 taps per thread across several items was tried and removed: no
// consumer has several items per thread with registers to spare; ir T14 NB96 spilled 40 B with it.)
// Per item and filter row (fp16, fast path): k LDS.128 (weights) + (RW-1)S + k LDS.128
// (input), 8 k RW FFMA; plus 2 LDS.128 (bias) and RW sink calls per item.
// k3 s1 per output: 11.5 LDS.128 at RW = 2, 7.25 at RW = 4, 5.4 at RW = 7, 5.1 at RW = 8 (+ 1 sink STS);
// wider strips cost 8 RW accumulator registers: the consumers pick RW (and PACK) per instantiation
// under their register caps (dwpw k3 and gconv fp16/bf16 RW = 4, ir 7 / 8 / 4 / 2 by tile and NB).
#pragma once

#include "stages/tile_copy.cuh"
#include "stages/vec.cuh"

namespace fastconv {
namespace stages {

__host__ __device__ constexpr int halo_extent(int tile, int k, int s, int d) { return (tile - 1) * s + (k - 1) * d + 1; }
// A pixel pitch (ldi, elements) for an input chunk of cc channels: a pixel narrower than a 128-byte bank
// row (fp16 cc <= 32, fp32 cc <= 16) gets 16 bytes of padding, so the 8-channel vectors of neighbouring
// strips and rows of one warp's compute fall in different banks (at the bare pitch the 16-byte loads run
// 2-way conflicted: bench/model_floor.py, fp16 cc = 32, k3 s1 RW 4: 342 wavefronts per chunk, padded 198).
template <typename T> __host__ __device__ constexpr int halo_pitch(int cc) {
  return cc * int(sizeof(T)) < 128 ? cc + 16 / int(sizeof(T)) : cc;
}

// One tap's weights for 8 channels, held in registers either as 8 floats (converted once) or, when
// PACKED, as the raw 16-byte fp16/bf16 vector converted at each use: half the registers, which
// keeps 5x5 and 7x7 rows (KS x 8 weights) under the 128-register cap of a 2-CTA/SM kernel.
template <typename T, bool PACKED> struct Taps8 {
  float f[8];
  __device__ __forceinline__ void load(const T* p) { lds8<T>(p, f); }
  __device__ __forceinline__ float operator[](int c) const { return f[c]; }
};
template <typename T> struct Taps8<T, true> {
  uint4 u;
  __device__ __forceinline__ void load(const T* p) { u = lds16(p); }
  __device__ __forceinline__ float operator[](int c) const { return half_bits<T>(word_at(u, c / 2), c % 2); }
};

// PACK: taps held as packed fp16/bf16 (Taps8<T, true>; fp32 T ignores it).
template <typename T, int KS, int S, int TH, int TW, int RW, int NT, bool PACK = (sizeof(T) == 2 && KS >= 5)>
struct Depthwise {
  static constexpr bool kFast = KS > 0 && S > 0;
  static constexpr bool kPackTaps = sizeof(T) == 2 && PACK;
  static_assert(TW % RW == 0, "the strip width must divide the tile width");
  static constexpr int kStrips = TW / RW;
  static constexpr int kPositions = TH * kStrips;  // (output row, strip) pairs of the tile
  static constexpr int kTapsRow = KS > 0 ? KS : 1;  // array extent of one filter row's taps

  // xs: element strides of x in (n, c, h, w) order.
  static __device__ __forceinline__ void load_input(int bytes, T* in, const T* __restrict__ x, const int64_t* xs, int n,
                                                    int h0, int w0, int H, int W, int ih, int iw, int c0, int C,
                                                    int cc, int ldi = 0) {
    const T* xb = x + n * xs[0] + c0 * xs[1];
    auto row = [&](int r) -> const T* {
      const int iy = r / iw, ix = r - iy * iw;
      const int hi = h0 + iy, wi = w0 + ix;
      return unsigned(hi) < unsigned(H) && unsigned(wi) < unsigned(W) ? xb + hi * xs[2] + wi * xs[3] : nullptr;
    };
    copy_rows<T, NT>(bytes, in, ldi > 0 ? ldi : cc, ih * iw, cc, C - c0, x, xs[1], xs[1] != 1, row);
  }

  static __device__ __forceinline__ void load_weights(T* wt, float* bias, const T* __restrict__ dw_w,
                                                      const T* __restrict__ dw_b, int c0, int C, int kk, int cc) {
    // dw_w is (C, k*k) contiguous: consecutive threads read consecutive elements.
    const int64_t base = int64_t(c0) * kk, end = int64_t(C) * kk;
    for (int i = threadIdx.x; i < cc * kk; i += NT) {
      const int c = i / kk, t = i - c * kk;
      wt[t * cc + c] = base + i < end ? dw_w[base + i] : from_float<T>(0.f);
    }
    for (int c = threadIdx.x; c < cc; c += NT) bias[c] = dw_b && c0 + c < C ? to_float(dw_b[c0 + c]) : 0.f;
  }

  template <class Sink>
  static __device__ __forceinline__ void compute(const T* in, const T* wt, const float* bias, int act, int k, int s,
                                                 int d, int iw, int cc, Sink&& sink, int ldi = 0, int cw = 0) {
    const int ng = cc / 8;
    const int pc = ldi > 0 ? ldi : cc;  // pixel pitch of `in` (elements)
    const int items = kPositions * ng;
    for (int it = threadIdx.x; it < items; it += NT) {
      const int g = it % ng, rest = it / ng;
      if (cw > 0 && g >= cw / 8) continue;  // (a literal cw = 0, the default, folds this away)
      const int strip = rest % kStrips, oy = rest / kStrips;
      const int ox0 = strip * RW;
      float acc[RW][8];
      {
        float b[8];
        lds8f(bias + g * 8, b);
#pragma unroll
        for (int j = 0; j < RW; ++j)
#pragma unroll
          for (int c = 0; c < 8; ++c) acc[j][c] = b[c];
      }
      if constexpr (kFast) {
        const T* rp = in + ((oy * S) * iw + ox0 * S) * pc + g * 8;
        const T* wp = wt + g * 8;
        // Not unrolled over filter rows: one row of weights (KS x 8) live at a time.
#pragma unroll 1
        for (int ky = 0; ky < KS; ++ky, rp += iw * pc, wp += KS * cc) {
          Taps8<T, kPackTaps> w[KS];
#pragma unroll
          for (int kx = 0; kx < KS; ++kx) w[kx].load(wp + kx * cc);
          window(acc, rp, pc, w);
        }
      } else {
#pragma unroll 1
        for (int ky = 0; ky < k; ++ky)
#pragma unroll 1
          for (int kx = 0; kx < k; ++kx) {
            float w[8];
            lds8<T>(wt + (ky * k + kx) * cc + g * 8, w);
            const T* ip = in + ((oy * s + ky * d) * iw + ox0 * s + kx * d) * pc + g * 8;
#pragma unroll
            for (int j = 0; j < RW; ++j) {
              float v[8];
              lds8<T>(ip + j * s * pc, v);
#pragma unroll
              for (int c = 0; c < 8; ++c) acc[j][c] = fmaf(v[c], w[c], acc[j][c]);
            }
          }
      }
#pragma unroll
      for (int j = 0; j < RW; ++j) {
        act_n(acc[j], act);
        sink(oy * TW + ox0 + j, g, acc[j]);
      }
    }
  }

 private:
  // One filter row (fast path): WIN input vectors slide under the row's KS taps for the RW outputs.
  static __device__ __forceinline__ void window(float (&acc)[RW][8], const T* r, int pc,
                                                const Taps8<T, kPackTaps> (&w)[kTapsRow]) {
    constexpr int WIN = (RW - 1) * S + KS;
#pragma unroll
    for (int ix = 0; ix < WIN; ++ix) {
      float v[8];
      lds8<T>(r + ix * pc, v);
#pragma unroll
      for (int j = 0; j < RW; ++j) {
        const int kx = ix - j * S;  // compile-time after unrolling
        if (kx >= 0 && kx < KS)
#pragma unroll
          for (int c = 0; c < 8; ++c) acc[j][c] = fmaf(v[c], w[kx][c], acc[j][c]);
      }
    }
  }
};

}  // namespace stages
}  // namespace fastconv
