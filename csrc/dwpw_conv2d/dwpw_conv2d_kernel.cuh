// Fused depthwise k x k -> act -> pointwise 1x1 -> act (+ residual), built on csrc/stages.
//
// Tiling: one 256-thread CTA owns an 8 x 8 output tile of one image (64 GEMM rows) and ALL output
// channels. It computes the tile's depthwise result ONCE into a shared-memory A tile holding `ca`
// channels (all of C, rounded up to 64, whenever that fits in shared memory: the "resident" case,
// every catalogue layer), then loops over the ceil(K / 64) output-channel tiles of the pointwise GEMM
// reusing it. Only when C is too wide for shared memory is the depthwise recomputed, once per
// (output tile, ca-channel slab).
//   1. depthwise phase, per chunk of cc channels (cc = 64 when the halo allows, smaller for big
//      k / stride / fp32): the input halo ((8-1)s + (k-1)d + 1)^2 x cc is staged with cp.async
//      (16-byte when NHWC and C*sizeof(T) % 16 == 0; 8/4-byte otherwise; scalar loads for NCHW)
//      into one of two buffers, the next chunk's halo in flight while this one is computed;
//      dw weights (T, tap-major) and bias (fp32) go to smem; stages::Depthwise computes register-blocked
//      strips (8 channels x 4 outputs along W at k3 with packed taps, 2 at k5/k7) and stores them, activated and
//      rounded to T, into A with 16-byte stores.
//   2. pointwise phase, per output tile of 64 channels: 64 x 64 weight slabs (rows = output
//      channels, as stored) stream through two cp.async buffers (aliasing the halo buffers) while
//      stages::Gemm multiplies (fp16/bf16: ldmatrix + mma.sync.m16n8k16, 2 x 4 warps of 32 x 16;
//      fp32: FMA). The first slab of the next output tile is prefetched before the epilogue.
//   3. epilogue: accumulators -> fp32 staging tile (summed over slabs when C is split) -> stages::store_tile (pw bias, pw act,
//      residual; 16-byte loads/stores for NHWC with K % 8 == 0, scalar otherwise).
// Work per CTA (resident): HBM reads = halo (1.27x the tile's input at k3 s1) + K x C weights
// (L2-resident across CTAs); smem traffic per output tile = 64 x ca A (ldmatrix) + 64 x ca B.
//
// Layouts: x, residual and out are addressed through their (n, c, h, w) strides, NCHW and NHWC
// natively (NCHW takes the scalar staging/epilogue paths: correct, not the fast path).
// Template KS (3, 5, 7) with S (1, 2) unrolls taps and the sliding window (dilation 1);
// KS = S = 0 is the generic path (any odd k, stride, dilation).
//
// Shared memory (make_layout; T = fp16, cc = 64, k3 s1): A 64 x (ca + 8) T + max(2 halos
// 10 x 10 x cc T, 2 x 64 x 72 T) + staging 64 x 72 fp32 + k^2 cc T + cc fp32: 61 KiB at C = 128,
// 93 KiB at C = 384, 173 KiB at C = 1024 (opted in above 48 KiB; ca shrinks when the device's opt-in
// limit is reached). Registers (ptxas sm_90, 0 spills everywhere): fp16 113-128, bf16 108-121 at
// __launch_bounds__(256, 2) -> 2 CTAs = 16 warps per SM while smem allows (C <= ~512 at k3), else
// 1; fp32 128-141 at (256, 1) -> 1 CTA per SM. Per-variant numbers in dwpw_conv2d.cu.
#pragma once

#include <initializer_list>

#include "dwpw_conv2d/dwpw_conv2d.h"
#include "stages/depthwise.cuh"
#include "stages/gemm.cuh"

namespace fastconv {
namespace dwpw {

constexpr int TH = 8, TW = 8;    // output tile (pixels)
constexpr int BM = TH * TW;      // GEMM rows
constexpr int BN = 64;           // output channels per pointwise tile
constexpr int BK = 64;           // reduction channels per streamed weight slab
constexpr int NT = 256;
constexpr int WM = 2, WN = 4;    // warp grid of the GEMM
constexpr size_t kHaloBudget = 48 * 1024;  // both halo buffers together
// Largest depthwise chunk: the kernel loads the chunk's bias as one element per thread.
constexpr int kMaxCc = 64;
static_assert(kMaxCc <= NT, "one bias element per thread");

template <typename T> __host__ __device__ constexpr int pad_elems() { return 16 / int(sizeof(T)); }

struct Layout {
  size_t a, region, halo1, b1, cs, wt, bias, bytes;
  int lda, ldb, ldc;
};

__host__ __device__ inline size_t align128(size_t v) { return (v + 127) & ~size_t(127); }

// The one place the shared-memory layout is defined (host sizes the launch, device finds buffers).
template <typename T> __host__ __device__ inline Layout make_layout(int k, int s, int d, int cc, int ca) {
  Layout L;
  L.lda = ca + pad_elems<T>();   // 8 halves: ldmatrix rows in distinct bank groups
  L.ldb = BK + pad_elems<T>();
  L.ldc = BN + 8;
  const size_t halo = align128(size_t(stages::halo_extent(TH, k, s, d)) * stages::halo_extent(TW, k, s, d) * cc * sizeof(T));
  const size_t bslab = align128(size_t(BN) * L.ldb * sizeof(T));
  L.a = 0;
  L.region = align128(size_t(BM) * L.lda * sizeof(T));
  L.halo1 = L.region + halo;
  L.b1 = L.region + bslab;
  L.cs = L.region + (2 * halo > 2 * bslab ? 2 * halo : 2 * bslab);
  L.wt = L.cs + align128(size_t(BM) * L.ldc * sizeof(float));
  L.bias = L.wt + align128(size_t(k) * k * cc * sizeof(T));
  L.bytes = L.bias + align128(size_t(cc) * sizeof(float));
  return L;
}

inline bool fast_path(const DwpwParams& p) {
  return p.dil == 1 && (p.stride == 1 || p.stride == 2) && (p.k == 3 || p.k == 5 || p.k == 7);
}

// Fills the derived fields of p (tiles, chunking, copy widths, smem size) for a device allowing
// smem_max bytes of dynamic shared memory per CTA. Returns nullptr, or why the shape cannot run.
template <typename T> inline const char* plan(DwpwParams& p, size_t smem_max) {
  p.tiles_h = (p.Ho + TH - 1) / TH;
  p.tiles_w = (p.Wo + TW - 1) / TW;
  const int d = fast_path(p) ? 1 : p.dil;
  const size_t ih = stages::halo_extent(TH, p.k, p.stride, d), iw = stages::halo_extent(TW, p.k, p.stride, d);
  p.cc = 8;
  for (int cc = kMaxCc; cc > 8; cc /= 2)
    if (2 * ih * iw * cc * sizeof(T) <= kHaloBudget) { p.cc = cc; break; }
  const int cpad = (p.C + BK - 1) / BK * BK;
  const size_t fixed = make_layout<T>(p.k, p.stride, d, p.cc, 0).bytes;
  if (make_layout<T>(p.k, p.stride, d, p.cc, BK).bytes > smem_max) return "the depthwise halo does not fit in shared memory";
  const size_t per_ch = size_t(BM) * sizeof(T);
  long ca = smem_max > fixed ? long((smem_max - fixed) / per_ch) / BK * BK : 0;
  ca = ca < cpad ? ca : cpad;
  while (ca > BK && make_layout<T>(p.k, p.stride, d, p.cc, int(ca)).bytes > smem_max) ca -= BK;
  p.ca = int(ca < BK ? BK : ca);
  p.smem = make_layout<T>(p.k, p.stride, d, p.cc, p.ca).bytes;
  const int e = int(sizeof(T));
  auto vb = [&](const void* ptr, std::initializer_list<int64_t> pitches) {
    int b = 16;
    for (int64_t q : pitches) { const int v = stages::vec_bytes(ptr, q, e); b = v < b ? v : b; }
    return b;
  };
  p.xbytes = p.xs[1] == 1 ? vb(p.x, {p.xs[0], p.xs[2], p.xs[3], p.C}) : 0;
  p.wbytes = vb(p.pw_w, {p.C});
  p.vec_out = p.os[1] == 1 && p.K % 8 == 0 && vb(p.out, {p.os[0], p.os[2], p.os[3], 8}) == 16 &&
              (!p.res || (p.rs[1] == 1 && vb(p.res, {p.rs[0], p.rs[2], p.rs[3], 8}) == 16)) &&
              (!p.pw_b || vb(p.pw_b, {8}) == 16);
  return nullptr;
}

// fp16/bf16: 2 CTAs per SM (<= 128 registers). fp32 (the FMA correctness path, fp32 weights and
// taps in registers) spilled under that cap, so it may use up to 255 registers at 1 CTA per SM.
template <typename T> constexpr int kMinBlocks = sizeof(T) == 2 ? 2 : 1;

template <typename T, int KS, int S>
__global__ void __launch_bounds__(NT, kMinBlocks<T>) dwpw_conv2d_kernel(const DwpwParams p) {
  constexpr bool kFast = KS > 0 && S > 0;
  // Outputs per depthwise strip: 4 for k3 with its taps packed (fp16/bf16: 12 registers a filter row
  // instead of 24) fits the 128-register cap; unpacked (and k5/k7) RW = 4 spilled.
  constexpr int RW = KS == 3 ? 4 : 2;
  using DW = stages::Depthwise<T, KS, S, TH, TW, RW, NT, sizeof(T) == 2 && (KS >= 5 || RW > 2)>;
  using Gemm = stages::Gemm<T, BM, BN, WM, WN>;
  const int k = kFast ? KS : p.k, s = kFast ? S : p.stride, d = kFast ? 1 : p.dil;
  const int cc = p.cc;
#ifdef __CUDA_ARCH__
  // blockDim.x == NT: bounds every threadIdx-strided copy loop, so the compiler stops unrolling them
  // for trip counts that cannot occur and hoisting the unrolled copies' index math (live across the
  // whole kernel, it put <T, 3, 2> over the 128-register cap: an 8-byte spill).
  __builtin_assume(threadIdx.x < NT);
#endif
  extern __shared__ __align__(128) unsigned char smem[];
  const Layout L = make_layout<T>(k, s, d, cc, p.ca);
  T* A = reinterpret_cast<T*>(smem + L.a);
  // Double buffers as base + parity * step (a 2-element pointer array indexed at run time would
  // live in local memory).
  T* const halo0 = reinterpret_cast<T*>(smem + L.region);
  T* const bbuf0 = halo0;
  const size_t halo_step = (L.halo1 - L.region) / sizeof(T), b_step = (L.b1 - L.region) / sizeof(T);
  auto halo = [&](int j) { return halo0 + (j & 1) * halo_step; };
  auto bbuf = [&](int j) { return bbuf0 + (j & 1) * b_step; };
  float* Cs = reinterpret_cast<float*>(smem + L.cs);
  T* wt = reinterpret_cast<T*>(smem + L.wt);
  float* bias = reinterpret_cast<float*>(smem + L.bias);

  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ pw_w = static_cast<const T*>(p.pw_w);
  int t = blockIdx.x;
  const int tw = t % p.tiles_w;
  t /= p.tiles_w;
  const int th = t % p.tiles_h, n = t / p.tiles_h;
  const int oy0 = th * TH, ox0 = tw * TW;
  const int h0 = oy0 * s - p.pad, w0 = ox0 * s - p.pad;
  const int ih = stages::halo_extent(TH, k, s, d), iw = stages::halo_extent(TW, k, s, d);
  const int cpad = (p.C + BK - 1) / BK * BK;
  const bool resident = p.ca >= cpad;
  const int nkt = (p.K + BN - 1) / BN;

  auto rows = [&](int r) {
    const int oy = oy0 + r / TW, ox = ox0 + r % TW;
    if (oy >= p.Ho || ox >= p.Wo) return stages::RowOffsets{-1, 0};
    return stages::RowOffsets{n * p.os[0] + oy * p.os[2] + ox * p.os[3], n * p.rs[0] + oy * p.rs[2] + ox * p.rs[3]};
  };
  // Weight slab [BN][BK] of output tile nt, reduction channels c0.. (zero past K and C).
  auto load_b = [&](T* dst, int nt, int c0) {
    stages::copy_rows<T, NT>(p.wbytes, dst, L.ldb, BN, BK, p.C - c0, pw_w, 1, false, [&](int r) -> const T* {
      const int ko = nt * BN + r;
      return ko < p.K ? pw_w + int64_t(ko) * p.C + c0 : nullptr;
    });
  };

  Gemm g;
  bool prefetched = false;
  for (int nt = 0; nt < nkt; ++nt) {
    for (int sc0 = 0; sc0 < cpad; sc0 += p.ca) {
      const int scw = min(p.ca, cpad - sc0);
      if (!resident || nt == 0) {
        const int nch = scw / cc;
        DW::load_input(p.xbytes, halo(0), x, p.xs, n, h0, w0, p.H, p.W, ih, iw, sc0, p.C, cc);
        stages::cp_async_commit();
        for (int j = 0; j < nch; ++j) {
          if (j + 1 < nch)
            DW::load_input(p.xbytes, halo(j + 1), x, p.xs, n, h0, w0, p.H, p.W, ih, iw, sc0 + (j + 1) * cc, p.C, cc);
          stages::cp_async_commit();
          // Taps through the stage; its bias loop (zero-filled here, dw_b = nullptr) is unrolled by
          // ptxas into ~30 scalar load instructions although cc <= 64 < NT makes it one guarded
          // load per thread, written here (same thread, after the stage's zero store).
          const int c0 = sc0 + j * cc;
          DW::load_weights(wt, bias, static_cast<const T*>(p.dw_w), nullptr, c0, p.C, k * k, cc);
          if (p.dw_b && int(threadIdx.x) < cc && c0 + int(threadIdx.x) < p.C)
            bias[threadIdx.x] = to_float(static_cast<const T*>(p.dw_b)[c0 + threadIdx.x]);
          stages::cp_async_wait<1>();
          __syncthreads();  // halo j, weights j visible
          T* acol = A + j * cc;
          DW::compute(halo(j), wt, bias, p.dw_act, k, s, d, iw, cc,
                      [&](int row, int g8, float (&v)[8]) { stages::sts8<T>(acol + row * L.lda + g8 * 8, v); });
          __syncthreads();  // halo j & 1, wt, bias free; (last chunk) A complete, region free
        }
      }
      g.zero();
      const int nk = scw / BK;
      if (!prefetched) {
        load_b(bbuf(0), nt, sc0);
        stages::cp_async_commit();
      }
      prefetched = false;
      for (int kc = 0; kc < nk; ++kc) {
        if (kc + 1 < nk) load_b(bbuf(kc + 1), nt, sc0 + (kc + 1) * BK);
        stages::cp_async_commit();
        stages::cp_async_wait<1>();
        __syncthreads();  // slab kc visible
        g.template mma<BK / 16>(A + kc * BK, L.lda, bbuf(kc), L.ldb);
        __syncthreads();  // slab kc & 1 free
      }
      // Partial sums of a C split go to the staging tile, so no accumulator is live across the
      // next slab's depthwise phase (that kept the resident path under 128 registers).
      g.store(Cs, L.ldc, sc0 > 0);
    }
    if (resident && nt + 1 < nkt) {  // overlap the next tile's first slab with this epilogue
      load_b(bbuf(0), nt + 1, 0);
      stages::cp_async_commit();
      prefetched = true;
    }
    __syncthreads();
    stages::store_tile<T, BM, BN, NT>(Cs, L.ldc, rows, nt * BN, p.K, static_cast<const T*>(p.pw_b), p.pw_act,
                                      static_cast<const T*>(p.res), p.rs[1], static_cast<T*>(p.out), p.os[1],
                                      p.vec_out);
    __syncthreads();  // Cs free for the next tile
  }
  stages::cp_async_wait<0>();
}

}  // namespace dwpw
}  // namespace fastconv
