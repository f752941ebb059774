// Fused depthwise k x k -> act -> pointwise 1x1 -> act (+ residual): one kernel, the depthwise
// output never leaves shared memory.
//
// Tiling: a 256-thread block owns 64 consecutive output pixels (flattened over N*Ho*Wo, so small
// feature maps waste no lanes) x BN output channels (BN = 64 when K <= 64, else 128). It walks the
// input channels in chunks of 32: (1) stage the chunk's dw weights and the pw weight chunk
// (BN x 32) in shared memory; (2) each thread computes depthwise outputs (+dw bias, dw act) for
// (pixel, channel) pairs straight from global x (taps hit L1: neighbouring pixels of the tile share
// them), rounds them to T and stores the 64 x 32 A tile in shared memory; (3) the tile GEMM
// accumulates A * W^T (fp16/bf16: wmma 16x16x16, fp32 accumulate; fp32: FMA). The epilogue stages
// the 64 x BN fp32 accumulators in shared memory (aliasing A/B) and adds pw bias, pw act and the
// residual. The depthwise result is recomputed once per output-channel block (ceil(K / BN) times);
// that is cheap next to the HBM traffic it saves.
//
// Layouts: x, residual and out are addressed through their (n, c, h, w) strides, so NCHW and NHWC
// run natively with no conversion copy. Only the thread mapping changes: channel-fastest for NHWC,
// pixel-fastest for NCHW, so global accesses are coalesced either way (NCHW dw taps coalesce along
// w; with stride 2 half of each fetched sector is wasted).
//
// Template KS: 3, 5, 7 unroll the taps; 0 is the generic odd-k path (k from the params).
// Shared memory: max(64 x 40 + BN x 40 halves, 64 x (BN + 4) floats) + 32 k^2 floats + 2.5 KB;
// about 38 KB for BN = 128 (fp32: 45 KB), more for large generic k (opted in above 48 KB).
//
// ptxas, sm_90: 80-110 registers/thread, no spills (per-variant numbers in dwpw_conv2d.cu).
#pragma once

#include "dwpw_conv2d/dwpw_conv2d.h"
#include "dwpw_conv2d/tile_gemm.cuh"

namespace fastconv {
namespace dwpw {

constexpr int TP = tile::kRows;  // output pixels per block
constexpr int CC = 32;           // input channels per chunk
constexpr int NT = tile::kThreads;

struct Layout {
  size_t a, b, cf, wd, in_base, pout, pres, hi0, wi0, bytes;
};

// The one place the shared-memory layout is defined (host sizes the launch, device finds buffers).
template <typename T, int BN>
__host__ __device__ inline Layout make_layout(int k) {
  constexpr int LDA = tile::pad_ld<T>(CC);
  tile::SmemCarver s;
  Layout L;
  L.a = s.take<T>(TP * LDA);
  L.b = s.take<T>(BN * LDA);
  const size_t ab_end = s.off;
  s.off = 0;
  L.cf = s.take<float>(TP * tile::acc_ld(BN));  // epilogue staging aliases A and B
  s.at_least(ab_end);
  L.wd = s.take<float>(CC * k * k);
  L.in_base = s.take<int64_t>(TP);
  L.pout = s.take<int64_t>(TP);
  L.pres = s.take<int64_t>(TP);
  L.hi0 = s.take<int>(TP);
  L.wi0 = s.take<int>(TP);
  L.bytes = s.off;
  return L;
}

template <typename T, int KS, int BN>
__global__ void __launch_bounds__(NT, 2) dwpw_conv2d_kernel(const DwpwParams p) {
  constexpr int LDA = tile::pad_ld<T>(CC);
  constexpr int LDC = tile::acc_ld(BN);
  const int ksz = KS > 0 ? KS : p.k;
  const int kk = ksz * ksz;
  extern __shared__ __align__(128) unsigned char smem[];
  const Layout L = make_layout<T, BN>(ksz);
  T* As = reinterpret_cast<T*>(smem + L.a);
  T* Bs = reinterpret_cast<T*>(smem + L.b);
  float* Cf = reinterpret_cast<float*>(smem + L.cf);
  float* Wd = reinterpret_cast<float*>(smem + L.wd);
  int64_t* in_base = reinterpret_cast<int64_t*>(smem + L.in_base);
  int64_t* pout = reinterpret_cast<int64_t*>(smem + L.pout);
  int64_t* pres = reinterpret_cast<int64_t*>(smem + L.pres);
  int* hi0 = reinterpret_cast<int*>(smem + L.hi0);
  int* wi0 = reinterpret_cast<int*>(smem + L.wi0);

  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ dw_w = static_cast<const T*>(p.dw_w);
  const T* __restrict__ pw_w = static_cast<const T*>(p.pw_w);
  const T* __restrict__ dw_b = static_cast<const T*>(p.dw_b);
  const int tid = threadIdx.x;
  // Output-channel blocks of one pixel tile are adjacent in launch order, so they find that
  // tile's x in L2.
  const int nkb = (p.K + BN - 1) / BN;
  const int kb = blockIdx.x % nkb;
  const int m0 = (blockIdx.x / nkb) * TP;
  const int k0 = kb * BN;

  if (tid < TP) {
    const int m = m0 + tid;
    if (m < p.M) {
      const int hw = p.Ho * p.Wo;
      const int n = m / hw, r = m - n * hw;
      const int ho = r / p.Wo, wo = r - ho * p.Wo;
      in_base[tid] = n * p.xs[0];
      hi0[tid] = ho * p.stride - p.pad;
      wi0[tid] = wo * p.stride - p.pad;
      pout[tid] = n * p.os[0] + ho * p.os[2] + wo * p.os[3];
      pres[tid] = n * p.rs[0] + ho * p.rs[2] + wo * p.rs[3];
    } else {
      in_base[tid] = 0;
      hi0[tid] = 0;
      wi0[tid] = 0;
      pout[tid] = -1;
      pres[tid] = -1;
    }
  }

  tile::TileAcc<T, BN> acc;
  acc.zero();
  const int64_t cstride = p.xs[1], hstride = p.xs[2], wstride = p.xs[3];

  for (int c0 = 0; c0 < p.C; c0 += CC) {
    // dw weights are (C, k*k) contiguous, so the chunk is one contiguous run.
    const int64_t wd_base = int64_t(c0) * kk, wd_end = int64_t(p.C) * kk;
    for (int i = tid; i < CC * kk; i += NT)
      Wd[i] = wd_base + i < wd_end ? to_float(dw_w[wd_base + i]) : 0.f;
    for (int i = tid; i < BN * CC; i += NT) {
      const int n = i / CC, cl = i - n * CC;
      const int ko = k0 + n, c = c0 + cl;
      Bs[n * LDA + cl] = (ko < p.K && c < p.C) ? pw_w[int64_t(ko) * p.C + c] : from_float<T>(0.f);
    }
    __syncthreads();  // Wd, Bs ready; also pixel tables on the first pass

    for (int i = tid; i < TP * CC; i += NT) {
      const int cl = p.nhwc ? i % CC : i / TP;
      const int px = p.nhwc ? i / CC : i % TP;
      const int c = c0 + cl;
      float v = 0.f;
      if (pout[px] >= 0 && c < p.C) {
        const T* __restrict__ xp = x + in_base[px] + c * cstride;
        const float* wk = Wd + cl * kk;
        const int h0 = hi0[px], w0 = wi0[px];
        float s = dw_b ? to_float(dw_b[c]) : 0.f;
        // ksz is a compile-time constant when KS > 0, so these loops unroll fully.
#pragma unroll
        for (int ky = 0; ky < ksz; ++ky) {
          const int hi = h0 + ky * p.dil;
          if (unsigned(hi) >= unsigned(p.H)) continue;
#pragma unroll
          for (int kx = 0; kx < ksz; ++kx) {
            const int wi = w0 + kx * p.dil;
            if (unsigned(wi) < unsigned(p.W)) s = fmaf(to_float(xp[hi * hstride + wi * wstride]), wk[ky * ksz + kx], s);
          }
        }
        v = apply_act(s, p.dw_act);
      }
      As[px * LDA + cl] = from_float<T>(v);
    }
    __syncthreads();
    acc.template mma<CC / 16>(As, LDA, Bs, LDA);
    __syncthreads();  // next chunk overwrites As, Bs, Wd
  }

  acc.store(Cf, LDC);
  __syncthreads();
  tile::write_tile<T, BN>(Cf, LDC, pout, pres, k0, p.K, static_cast<const T*>(p.pw_b), p.pw_act,
                          static_cast<const T*>(p.res), p.rs[1], static_cast<T*>(p.out), p.os[1], p.nhwc);
}

}  // namespace dwpw
}  // namespace fastconv
