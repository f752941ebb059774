// Fused depthwise k x k -> act -> pointwise 1x1 -> act (+ residual), built on csrc/stages.
//
// Tiling: one 256-thread CTA owns an 8 x 8 output tile of one image (64 GEMM rows) and ALL output
// channels. It computes the tile's depthwise result ONCE into a shared-memory A tile holding `ca`
// channels (all of C, rounded up to 32 (CG), whenever that fits in shared memory: the "resident" case,
// every catalogue layer), then loops over the output-channel tiles of the pointwise GEMM reusing it
// (ceil(K / 64) tiles of 64 channels; ceil(K / 128) of 128 on the sm_90a wgmma path). Only when C is
// too wide for shared memory is the depthwise recomputed, once per (output tile of 64, ca slab).
//   1. depthwise phase, per chunk of cc channels (cc = 64 when the halo allows and cpad % 64 == 0, else
//      <= 32; smaller for big k / stride / fp32): the input halo ((8-1)s + (k-1)d + 1)^2 x cc (pixel pitch
//      stages::halo_pitch: pixels under 128 B padded by 16 B, bank-spread) is staged with cp.async
//      (16-byte when NHWC and C*sizeof(T) % 16 == 0; 8/4-byte otherwise; scalar loads for NCHW)
//      into one of two buffers, the next chunk's halo in flight while this one is computed;
//      dw weights (T, tap-major) and bias (fp32) go to smem; stages::Depthwise computes register-blocked
//      strips (8 channels x 4 outputs along W at k3 with packed taps, 2 at k5/k7) and stores them, activated and
//      rounded to T, into A with 16-byte stores.
//   2. pointwise phase, per output tile: weight slabs (rows = output channels) stream through two
//      cp.async buffers of 64 x (64 + pad) T (aliasing the halo buffers; the next slab in flight during
//      this one's MMA), per compilation pass (Pw<T>):
//      - mma.sync (sm_80, plain sm_90): 64-channel tiles, 64 x 64 row-major slabs, stages::Gemm on
//        2 x 4 warps of 32 x 16 (ldmatrix + mma.sync.m16n8k16);
//      - wgmma (sm_90a, stages::kWgmma): 128-channel tiles, 128 x 32 slabs, stages::WgGemm on 1 x 2
//        warpgroups (warpgroup g: wgmma.m64n64k16 over columns 64 g.., A by ldmatrix into registers,
//        B read by the descriptor; a warpgroup whose columns lie past K skips, and its slab rows are
//        not loaded); every thread runs fence.proxy.async after each slab's cp_async_wait, before the
//        barrier that publishes it. 128 x 32 core-matrix slabs (8 KiB): depth 32 so the slab fits the
//        mma.sync path's 9 KiB buffer and both buffers stay under the two halos of every fast path
//        (>= 25 KiB: k3 s1 fp16 cc 64 is 2 x 12.5 KiB), one layout for every device pass; 64-deep
//        (2 x 16 KiB) would grow the k3 s1 CTA by 6.4 KiB and make the host layout depend on the
//        device pass. It also halves the A registers WgGemm holds before its fence (2 k steps x 4).
//      - fp32: FMA, 64-channel tiles, row-major [64][68] slabs.
//      The first slab of the next output tile is prefetched under the epilogue.
//   3. epilogue: accumulators -> fp32 staging tile 64 x 72 (summed over slabs when C is split) ->
//      stages::store_tile (pw bias, pw act, residual; 16-byte loads/stores for NHWC with K % 8 == 0,
//      scalar otherwise); a 128-channel wgmma tile drains in two 64-channel passes (store(c_lo, c_hi)).
// Work per CTA (resident): HBM reads = halo (1.27x the tile's input at k3 s1) + K x C weights
// (L2-resident across CTAs). Shared reads of the pointwise GEMM per 64 output channels, C = ca:
//   mma.sync: each warp ldmatrix's its 32 A rows and 16 B rows per 16-deep k step (384 B per
//     m16n8k16): 8 warps x (2 + 1) x 512 B x C / 16 = 768 C bytes, all ldmatrix;
//   wgmma: each warp ldmatrix's its 16 A rows once per warpgroup (A read twice per 128 channels),
//     each warpgroup's wgmma reads its 64 B rows: 128 C bytes ldmatrix + 128 C bytes wgmma B =
//     256 C bytes (ldmatrix 6x, all shared reads 3x fewer), 2 wgmma + 2 ldmatrix.x4 per warp(group)
//     and 2 barriers per 32-deep slab.
//
// Layouts: x, residual and out are addressed through their (n, c, h, w) strides, NCHW and NHWC
// natively (NCHW takes the scalar staging/epilogue paths: correct, not the fast path).
// Template KS (3, 5, 7) with S (1, 2) unrolls taps and the sliding window (dilation 1);
// KS = S = 0 is the generic path (any odd k, stride, dilation).
//
// Shared memory (make_layout; T = fp16, cc = 64, k3 s1): A 64 x (ca + 8) T + max(2 halos
// 10 x 10 x cc T, 2 slabs 64 x 72 T) + staging 64 x 72 fp32 + k^2 cc T + cc fp32: 61 KiB at C = 128,
// 93 KiB at C = 384, 173 KiB at C = 1024 (opted in above 48 KiB; ca shrinks when the device's opt-in
// limit is reached), the same on every device pass. Registers (ptxas, CUDA 13.0, 0 spills
// everywhere): sm_90a (wgmma) fp16 124-128, bf16 122-128; sm_90 / sm_80 (mma.sync) fp16 112-128 /
// 94-128, bf16 108-128 at sm_90, all at __launch_bounds__(256, 2) -> 2 CTAs = 16 warps per SM while
// smem allows (C <= ~512 at k3), else 1; fp32 128-154 at (256, 1) -> 1 CTA per SM. Per-variant
// numbers in dwpw_conv2d.cpp.
#pragma once

#include <initializer_list>

#include "dwpw_conv2d/dwpw_conv2d.h"
#include "stages/depthwise.cuh"
#include "stages/gemm.cuh"
#include "stages/wg_gemm.cuh"

namespace fastconv {
namespace dwpw {

constexpr int TH = 8, TW = 8;    // output tile (pixels)
constexpr int BM = TH * TW;      // GEMM rows
constexpr int BN = 64;           // output channels per staging tile (Cs) and epilogue pass
constexpr int BK = 64;           // granularity of a split ca (C too wide to stay resident); mma.sync slab depth
// Granularity of the reduction padding cpad = C rounded up to CG (a resident ca = cpad): 32, not 64, so
// C = 32 (MobileNetV2's 32 > 16 block, V1's first) and C = 96 stop computing a depthwise on 32 zero
// channels and multiplying them (the model put that block at 2.2x its HBM floor, half of it padding).
// A cpad that is an odd multiple of 32 ends on a 32-deep half slab on the 64-deep (mma.sync / FMA) path
// and uses depthwise chunks of cc <= 32 (chunks must tile it).
constexpr int CG = 32;
__host__ __device__ constexpr int cpad_of(int C) { return (C + CG - 1) / CG * CG; }
constexpr int NT = 256;
constexpr int WM = 2, WN = 4;    // warp grid of the GEMM
constexpr size_t kHaloBudget = 48 * 1024;  // both halo buffers together
// Largest depthwise chunk: the kernel loads the chunk's bias as one element per thread.
constexpr int kMaxCc = 64;
static_assert(kMaxCc <= NT, "one bias element per thread");

template <typename T> __host__ __device__ constexpr int pad_elems() { return 16 / int(sizeof(T)); }

// The pointwise GEMM of one compilation pass:
//   mma.sync (sm_80, plain sm_90) / FMA (fp32): output tiles of 64 channels, Gemm<T, 64, 64, 2, 4>
//     (32 x 16 warp tiles), row-major slabs [64][64 + pad] (rows = output channels, as stored);
//   wgmma (sm_90a, stages::kWgmma, fp16/bf16): output tiles of 128 channels, WgGemm<T, 64, 128, 1, 2>
//     (warpgroup g: wgmma.m64n64k16 over columns 64 g..), core-matrix slabs of 128 rows x 32 deep
//     (stages::core_offset, ldb = 8 x 32: LBO 128 B, SBO 512 B).
// Both fit the same two slab buffers (8 KiB of core tiles <= the 9 KiB row-major slab), so the host's
// layout (make_layout, plan) never depends on kWgmma. (The core layout on the mma.sync path too, Gemm
// BCORE with the core-matrix loader, spilled <__half, 3, 2> 74 B at sm_80; row-major: 0, 127 regs.)
template <typename T> struct Pw {
  static constexpr bool kMma = stages::kTensorCore<T>;
  static constexpr bool kWg = kMma && stages::kWgmma;  // this pass runs warpgroup MMA (core-matrix B)
  static constexpr int TBN = kWg ? 128 : BN;           // output channels per tile (A resident)
  static constexpr int SK = kWg ? 32 : BK;             // slab depth (reduction channels)
  static constexpr int ldb = kWg ? 8 * SK : SK + pad_elems<T>();
  static constexpr int slab_elems = BN * (BK + pad_elems<T>());  // (host-visible: kWg-independent)
  static_assert(!kWg || TBN * SK <= slab_elems, "the wgmma slab fits the slab buffer");
  static_assert(BK % SK == 0 && (SK == BK || CG % SK == 0), "slabs tile ca (the last of a 64-deep pass may be CG deep)");
  using H = std::conditional_t<kMma, T, __half>;  // (names a valid WgGemm when T is float)
  using Gemm = std::conditional_t<kWg, stages::WgGemm<H, BM, 128, 1, 2>, stages::Gemm<T, BM, BN, WM, WN>>;
};

struct Layout {
  size_t a, region, halo1, b1, cs, wt, bias, bytes;
  int lda, ldc;
};

__host__ __device__ inline size_t align128(size_t v) { return (v + 127) & ~size_t(127); }

// The one place the shared-memory layout is defined (host sizes the launch, device finds buffers).
template <typename T> __host__ __device__ inline Layout make_layout(int k, int s, int d, int cc, int ca) {
  Layout L;
  // A holds ca rounded up to BK columns (+ 8 halves: ldmatrix rows in distinct bank groups): the 64-deep
  // (mma.sync / FMA) pass reads a last half slab's columns [cpad, cpad + 32) as zeros (a second, 32-deep
  // Gemm::mma instance put <T, 3, 1/2> over the 128-register cap at sm_80: 36-48 B spilled).
  L.lda = (ca + BK - 1) / BK * BK + pad_elems<T>();
  L.ldc = BN + 8;
  const size_t halo =
      align128(size_t(stages::halo_extent(TH, k, s, d)) * stages::halo_extent(TW, k, s, d) * stages::halo_pitch<T>(cc) * sizeof(T));
  const size_t bslab = align128(size_t(Pw<T>::slab_elems) * sizeof(T));
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
  const int cpad = cpad_of(p.C);
  p.cc = 8;
  for (int cc = cpad % BK ? CG : kMaxCc; cc > 8; cc /= 2)
    if (2 * ih * iw * stages::halo_pitch<T>(cc) * sizeof(T) <= kHaloBudget) { p.cc = cc; break; }
  const size_t fixed = make_layout<T>(p.k, p.stride, d, p.cc, 0).bytes;
  if (make_layout<T>(p.k, p.stride, d, p.cc, BK).bytes > smem_max) return "the depthwise halo does not fit in shared memory";
  const size_t per_ch = size_t(BM) * sizeof(T);
  long ca = smem_max > fixed ? long((smem_max - fixed) / per_ch) / BK * BK : 0;
  ca = ca < cpad ? ca : cpad;
  while (ca > BK && make_layout<T>(p.k, p.stride, d, p.cc, int(ca)).bytes > smem_max) ca -= BK;
  p.ca = int(ca < BK ? (cpad < BK ? cpad : BK) : ca);
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
  using P = Pw<T>;
  using Gemm = typename P::Gemm;
  constexpr int SK = P::SK, ldb = P::ldb;
  const int k = kFast ? KS : p.k, s = kFast ? S : p.stride, d = kFast ? 1 : p.dil;
  const int cc = p.cc, ldh = stages::halo_pitch<T>(cc);
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
  const int cpad = cpad_of(p.C);
  const bool resident = p.ca >= cpad;
  // Output channels per tile: TBN with A resident; the recompute path (partial sums over C splits
  // accumulate in Cs) only what Cs holds, BN (the wgmma path's second warpgroup then skips).
  const int tbn = P::kWg && resident ? P::TBN : BN;
  const int nkt = (p.K + tbn - 1) / tbn;

  auto rows = [&](int r) {
    const int oy = oy0 + r / TW, ox = ox0 + r % TW;
    if (oy >= p.Ho || ox >= p.Wo) return stages::RowOffsets{-1, 0};
    return stages::RowOffsets{n * p.os[0] + oy * p.os[2] + ox * p.os[3], n * p.rs[0] + oy * p.rs[2] + ox * p.rs[3]};
  };
  // Weight slab [rows][SK] of output tile nt, reduction channels c0.. (zero past K and C). wgmma: only
  // the rows the tile's warpgroups read, its valid channels rounded up to kColStep (a warpgroup past
  // them skips through ncols); mma.sync / FMA: all BN rows (every warp computes, as before: the
  // ncols skip and the runtime row count put <T, 3, 1/2> over the 128-register cap at sm_90).
  auto load_b = [&](T* dst, int nt, int c0) {
    auto row = [&](int r) -> const T* {
      const int ko = nt * tbn + r;
      return ko < p.K ? pw_w + int64_t(ko) * p.C + c0 : nullptr;
    };
    if constexpr (P::kWg) {
      const int kc = Gemm::kColStep, rows = min(tbn, (p.K - nt * tbn + kc - 1) / kc * kc);
      stages::copy_tile<T, NT, true>(p.wbytes, dst, ldb, rows, SK, p.C - c0, pw_w, row);
    } else {
      stages::copy_rows<T, NT>(p.wbytes, dst, ldb, BN, SK, p.C - c0, pw_w, 1, false, row);
    }
  };

  Gemm g;
  bool prefetched = false;
  for (int nt = 0; nt < nkt; ++nt) {
    const int ncols = min(tbn, p.K - nt * tbn);
    for (int sc0 = 0; sc0 < cpad; sc0 += p.ca) {
      const int scw = min(p.ca, cpad - sc0);
      if (!resident || nt == 0) {
        const int nch = scw / cc;
        if (!P::kWg && scw % SK) {  // the last half slab's A columns past scw: zeros (B is zero there too)
          constexpr int V = 16 / int(sizeof(T)), VR = CG / V;  // 16-byte vectors per row
          for (int i = threadIdx.x; i < BM * VR; i += NT)
            stages::sts16(A + (i / VR) * L.lda + scw + (i % VR) * V, uint4{0, 0, 0, 0});
        }
        DW::load_input(p.xbytes, halo(0), x, p.xs, n, h0, w0, p.H, p.W, ih, iw, sc0, p.C, cc, ldh);
        stages::cp_async_commit();
        for (int j = 0; j < nch; ++j) {
          if (j + 1 < nch)
            DW::load_input(p.xbytes, halo(j + 1), x, p.xs, n, h0, w0, p.H, p.W, ih, iw, sc0 + (j + 1) * cc, p.C, cc, ldh);
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
                      [&](int row, int g8, float (&v)[8]) { stages::sts8<T>(acol + row * L.lda + g8 * 8, v); }, ldh);
          __syncthreads();  // halo j & 1, wt, bias free; (last chunk) A complete, region free
        }
      }
      g.zero();
      const int nk = (scw + SK - 1) / SK;  // scw: a multiple of CG (the last slab may be CG deep)
      if (!prefetched) {
        load_b(bbuf(0), nt, sc0);
        stages::cp_async_commit();
      }
      prefetched = false;
      for (int kc = 0; kc < nk; ++kc) {
        if (kc + 1 < nk) load_b(bbuf(kc + 1), nt, sc0 + (kc + 1) * SK);
        stages::cp_async_commit();
        stages::cp_async_wait<1>();
        // wgmma reads B through the async proxy: each thread fences its landed copies before the
        // barrier that publishes them (stages/wgmma.cuh).
        if constexpr (P::kWg) stages::fence_proxy_async();
        __syncthreads();  // slab kc visible
        if constexpr (P::kWg) g.template mma<SK / 16>(A + kc * SK, L.lda, bbuf(kc), ldb, ncols);
        else g.template mma<SK / 16>(A + kc * SK, L.lda, bbuf(kc), ldb);
        __syncthreads();  // slab kc & 1 free
      }
      // Partial sums of a C split go to the staging tile, so no accumulator is live across the
      // next slab's depthwise phase (that kept the resident path under 128 registers; tbn == BN).
      if (!P::kWg || !resident) g.store(Cs, L.ldc, sc0 > 0, 0, BN);
    }
    // wgmma: the tile drains through Cs in BN-channel passes (two for a full 128-channel tile);
    // mma.sync / FMA: one pass (the store above).
    const int passes = P::kWg ? (ncols + BN - 1) / BN : 1;
    for (int h = 0; h < passes; ++h) {
      // (n8 chunks past K are not staged: store_tile never reads them; K = 16 stages 16 of 64 columns)
      if (P::kWg && resident) g.store(Cs, L.ldc, false, h * BN, min(h * BN + BN, (ncols + 7) / 8 * 8));
      if (h == 0 && resident && nt + 1 < nkt) {  // overlap the next tile's first slab with this epilogue
        load_b(bbuf(0), nt + 1, 0);
        stages::cp_async_commit();
        prefetched = true;
      }
      __syncthreads();
      stages::store_tile<T, BM, BN, NT>(Cs, L.ldc, rows, nt * tbn + h * BN, p.K, static_cast<const T*>(p.pw_b),
                                        p.pw_act, static_cast<const T*>(p.res), p.rs[1], static_cast<T*>(p.out),
                                        p.os[1], p.vec_out);
      __syncthreads();  // Cs free for the next pass / tile
    }
  }
  stages::cp_async_wait<0>();
}

}  // namespace dwpw
}  // namespace fastconv
