// Fused pointwise 1x1 -> act -> depthwise k x k -> act [concat] (+ residual), built on csrc/stages.
//
// Tiling: one 256-thread CTA owns an 8 x 8 output tile of one image and BN = 64 channels of the
// 1x1 output h (grid = tiles x ceil(M / 64)).
//   1. pointwise phase: h for the tile plus its halo, ih x iw pixels (ih = (8-1)s + (k-1)d + 1), in
//      blocks of 64 halo pixels: x rows (64 pixels x 64 input channels, cp.async 16-byte when NHWC
//      and aligned, scalar for NCHW) and the 64 x 64 weight slab (rows = h channels, as stored) go to
//      shared memory, stages::Gemm multiplies (fp16/bf16 ldmatrix + mma.sync, fp32 FMA), and the
//      epilogue adds pw_bias, applies pw_act, zeroes halo pixels outside the image (the depthwise
//      conv pads h, not x) and stores h rounded to T (as the unfused composition stores it) into
//      the halo buffer hs[ih][iw][64].
//   2. with concat, the tile's own pixels of h (hs at (oy + pad, ox + pad)) + residual -> out[:, :M].
//   3. depthwise phase, once per channel-multiplier copy r: dw weights of channels (c * mult + r)
//      -> smem (fp32), stages::Depthwise over hs (register-blocked strips, unrolled taps when
//      KS/S are compile-time), sink: + residual, store y to out[:, y0 + c * mult + r] (scalar).
// Work per CTA: 1x1 MACs executed ih*iw*C*64 vs useful 64*s^2*C*64 (recompute 1.56x at k3 s1
// (10x10 halo), 1.41x at k5 s2 (19x19 halo over 8x8 x s^2)); HBM reads: the x halo (L2 hits for the
// overlap) + the weight slab (L2-resident across CTAs); h never reaches HBM except as concat output.
//
// Shared memory (make_layout, T = fp16, k3 s1): A 64 x 72 T + B 64 x 72 T + staging 64 x 72 fp32
// + hs 100 x 64 T + k^2 x 64 + 64 fp32: 51 KB (fp32 80 KB; k5 s2: fp16 88 KB, fp32 149 KB; k7 s2 fp32
// 175 KB), opted in above 48 KB. Single-buffered (no cp.async pipelining across slabs yet).
#pragma once

#include <initializer_list>

#include "pwdw_conv2d/pwdw_conv2d.h"
#include "stages/depthwise.cuh"
#include "stages/gemm.cuh"

namespace fastconv {
namespace pwdw {

constexpr int TH = 8, TW = 8;  // output tile (pixels)
constexpr int BM = 64;         // halo pixels per GEMM block
constexpr int BN = 64;         // h channels per CTA (the depthwise chunk)
constexpr int BK = 64;         // reduction channels per slab
constexpr int NT = 256;
constexpr int WM = 2, WN = 4;

struct Layout {
  size_t a, b, cs, hs, wt, bias, bytes;
  int lda, ldb, ldc;
};

__host__ __device__ inline size_t align128(size_t v) { return (v + 127) & ~size_t(127); }

template <typename T> __host__ __device__ inline Layout make_layout(int k, int s, int d) {
  Layout L;
  L.lda = L.ldb = BK + 16 / int(sizeof(T));  // 8 halves: ldmatrix rows in distinct bank groups
  L.ldc = BN + 8;
  const size_t hp = size_t(stages::halo_extent(TH, k, s, d)) * stages::halo_extent(TW, k, s, d);
  L.a = 0;
  L.b = align128(size_t(BM) * L.lda * sizeof(T));
  L.cs = L.b + align128(size_t(BN) * L.ldb * sizeof(T));
  L.hs = L.cs + align128(size_t(BM) * L.ldc * sizeof(float));
  L.wt = L.hs + align128(hp * BN * sizeof(T));
  L.bias = L.wt + align128(size_t(k) * k * BN * sizeof(T));
  L.bytes = L.bias + align128(BN * sizeof(float));
  return L;
}

inline bool fast_path(const PwdwParams& p) {
  return p.dil == 1 && (p.stride == 1 || p.stride == 2) && (p.k == 3 || p.k == 5 || p.k == 7);
}

// Fills the derived fields of p for a device allowing smem_max bytes of dynamic shared memory per
// CTA. Returns nullptr, or why the shape cannot run.
template <typename T> inline const char* plan(PwdwParams& p, size_t smem_max) {
  p.tiles_h = (p.Ho + TH - 1) / TH;
  p.tiles_w = (p.Wo + TW - 1) / TW;
  p.mtiles = (p.M + BN - 1) / BN;
  p.smem = make_layout<T>(p.k, p.stride, p.dil).bytes;
  if (p.smem > smem_max) return "the h halo tile does not fit in shared memory";
  const int e = int(sizeof(T));
  auto vb = [&](const void* ptr, std::initializer_list<int64_t> pitches) {
    int b = 16;
    for (int64_t q : pitches) { const int v = stages::vec_bytes(ptr, q, e); b = v < b ? v : b; }
    return b;
  };
  p.xbytes = p.xs[1] == 1 ? vb(p.x, {p.xs[0], p.xs[2], p.xs[3], p.C}) : 0;
  p.wbytes = vb(p.pw_w, {p.C});
  return nullptr;
}

// 2 CTAs per SM (128 registers) except 7x7 stride 2, which spilled 16 bytes under that cap (fp16).
template <typename T, int KS, int S>
__global__ void __launch_bounds__(NT, KS == 7 && S == 2 ? 1 : 2) pwdw_conv2d_kernel(const PwdwParams p) {
  constexpr bool kFast = KS > 0 && S > 0;
  constexpr int RW = 2;  // outputs per depthwise strip
  using DW = stages::Depthwise<T, KS, S, TH, TW, RW, NT>;
  using Gemm = stages::Gemm<T, BM, BN, WM, WN>;
  const int k = kFast ? KS : p.k, s = kFast ? S : p.stride, d = kFast ? 1 : p.dil;
  extern __shared__ __align__(128) unsigned char smem[];
  const Layout L = make_layout<T>(k, s, d);
  T* A = reinterpret_cast<T*>(smem + L.a);
  T* B = reinterpret_cast<T*>(smem + L.b);
  float* Cs = reinterpret_cast<float*>(smem + L.cs);
  T* hs = reinterpret_cast<T*>(smem + L.hs);
  T* wt = reinterpret_cast<T*>(smem + L.wt);
  float* bias = reinterpret_cast<float*>(smem + L.bias);

  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ pw_w = static_cast<const T*>(p.pw_w);
  const T* __restrict__ pw_b = static_cast<const T*>(p.pw_b);
  const T* __restrict__ dw_w = static_cast<const T*>(p.dw_w);
  const T* __restrict__ dw_b = static_cast<const T*>(p.dw_b);
  const T* __restrict__ res = static_cast<const T*>(p.res);
  T* __restrict__ out = static_cast<T*>(p.out);
  int t = blockIdx.x;
  const int tw = t % p.tiles_w;
  t /= p.tiles_w;
  const int th = t % p.tiles_h, n = t / p.tiles_h;
  const int m0 = blockIdx.y * BN;
  const int oy0 = th * TH, ox0 = tw * TW;
  const int h0 = oy0 * s - p.pad, w0 = ox0 * s - p.pad;
  const int ih = stages::halo_extent(TH, k, s, d), iw = stages::halo_extent(TW, k, s, d);
  const int hp = ih * iw;
  const T* xb = x + n * p.xs[0];

  // 1. h on the halo: blocks of BM halo pixels x BN channels, reduction over C in BK slabs.
  for (int r0 = 0; r0 < hp; r0 += BM) {
    Gemm g;
    g.zero();
    for (int c0 = 0; c0 < p.C; c0 += BK) {
      stages::copy_rows<T, NT>(p.xbytes, A, L.lda, BM, BK, p.C - c0, x, p.xs[1], p.xs[1] != 1,
                               [&](int r) -> const T* {
                                 const int q = r0 + r;
                                 if (q >= hp) return nullptr;
                                 const int hi = h0 + q / iw, wi = w0 + q % iw;
                                 return unsigned(hi) < unsigned(p.H) && unsigned(wi) < unsigned(p.W)
                                            ? xb + hi * p.xs[2] + wi * p.xs[3] + c0 * p.xs[1]
                                            : nullptr;
                               });
      stages::copy_rows<T, NT>(p.wbytes, B, L.ldb, BN, BK, p.C - c0, pw_w, 1, false, [&](int r) -> const T* {
        return m0 + r < p.M ? pw_w + int64_t(m0 + r) * p.C + c0 : nullptr;
      });
      stages::cp_async_commit();
      stages::cp_async_wait<0>();
      __syncthreads();  // slabs visible
      g.template mma<BK / 16>(A, L.lda, B, L.ldb);
      __syncthreads();  // slabs free
    }
    g.store(Cs, L.ldc);
    __syncthreads();
    for (int i = threadIdx.x; i < BM * BN; i += NT) {
      const int r = i / BN, c = i % BN, q = r0 + r;
      if (q >= hp) continue;
      const int hi = h0 + q / iw, wi = w0 + q % iw;
      float v = 0.f;
      // zero padding belongs to h (act(bias) must not leak into the border); so do channels >= M
      if (unsigned(hi) < unsigned(p.H) && unsigned(wi) < unsigned(p.W) && m0 + c < p.M) {
        v = Cs[r * L.ldc + c] + (pw_b ? to_float(pw_b[m0 + c]) : 0.f);
        v = apply_act(v, p.pw_act);
      }
      hs[q * BN + c] = from_float<T>(v);
    }
    __syncthreads();  // Cs free; (last block) hs complete
  }

  // 2. concat: out[:, m0 + c] at the tile's own pixels = h (+ residual); channel-fastest for NHWC.
  const int y0 = p.concat ? p.M : 0;
  if (p.concat) {
    const bool cfast = p.os[1] == 1;
    for (int i = threadIdx.x; i < TH * TW * BN; i += NT) {
      const int c = cfast ? i % BN : i / (TH * TW), pix = cfast ? i / BN : i % (TH * TW);
      const int oy = oy0 + pix / TW, ox = ox0 + pix % TW;
      if (oy >= p.Ho || ox >= p.Wo || m0 + c >= p.M) continue;
      float v = to_float(hs[((pix / TW + p.pad) * iw + pix % TW + p.pad) * BN + c]);
      const int64_t o = n * p.os[0] + (m0 + c) * p.os[1] + oy * p.os[2] + ox * p.os[3];
      if (res) v += to_float(res[n * p.rs[0] + (m0 + c) * p.rs[1] + oy * p.rs[2] + ox * p.rs[3]]);
      out[o] = from_float<T>(v);
    }
  }

  // 3. depthwise from hs, once per multiplier copy r (output channel (m0 + c) * mult + r reads h channel m0 + c).
  const int kk = k * k;
  for (int r = 0; r < p.mult; ++r) {
    for (int i = threadIdx.x; i < BN * kk; i += NT) {
      const int c = i / kk, tap = i - c * kk;
      const int64_t oc = int64_t(m0 + c) * p.mult + r;
      wt[tap * BN + c] = m0 + c < p.M ? dw_w[oc * kk + tap] : from_float<T>(0.f);
    }
    for (int c = threadIdx.x; c < BN; c += NT)
      bias[c] = dw_b && m0 + c < p.M ? to_float(dw_b[int64_t(m0 + c) * p.mult + r]) : 0.f;
    __syncthreads();  // weights visible
    DW::compute(hs, wt, bias, p.dw_act, k, s, d, iw, BN, [&](int row, int g8, float (&v)[8]) {
      const int oy = oy0 + row / TW, ox = ox0 + row % TW;
      if (oy >= p.Ho || ox >= p.Wo) return;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const int c = m0 + g8 * 8 + j;
        if (c >= p.M) break;
        const int64_t oc = y0 + int64_t(c) * p.mult + r;
        float u = to_float(from_float<T>(v[j]));  // y is rounded before the residual, as stored unfused
        if (res) u += to_float(res[n * p.rs[0] + oc * p.rs[1] + oy * p.rs[2] + ox * p.rs[3]]);
        out[n * p.os[0] + oc * p.os[1] + oy * p.os[2] + ox * p.os[3]] = from_float<T>(u);
      }
    });
    __syncthreads();  // wt, bias free
  }
}

}  // namespace pwdw
}  // namespace fastconv
