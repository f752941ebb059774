// Inverted residual / MBConv block: expand 1x1 -> act -> depthwise k x k -> act -> [SE] ->
// project 1x1 (+ x), built on the shared stages (csrc/stages/).
//
// ir_kernel<T, KS, S, TH, TW, RW, NT8P, MODE>, 256 threads (8 warps), persistent: the grid is
// min(work items, SMs x resident CTAs) and each CTA loops over work items = (output tile, project
// pass). MODE kFused: the whole block in one kernel, the expanded tensor never leaves shared memory.
// Per work item (TH x TW output pixels of one image, NB output channels):
//   0. The halo of the tile, clipped to the image (a rectangle of mx <= IH x IW pixels, IH =
//      (TH - 1) S + k), is loaded ONCE with cp.async (16-byte when C % 8 == 0 in NHWC) as the expand
//      A operand xh[mx][Cp] (Cp = C rounded up to 16; pixels compacted, so halo pixels outside the
//      image cost no expand FLOPs), and stays resident for all hidden chunks.
//   For each hidden chunk of EC = 48 channels (We / Wp chunk c+1 is prefetched with cp.async into the
//   other half of a double buffer while chunk c computes; 3 barriers per chunk):
//   1. expand GEMM xh . We_c^T (stages::WarpTile, ldmatrix + mma.sync; m16 tiles of the compacted
//      halo round-robin over the warps, q = clamp(ceil(m tiles / 8), 2, EMT) per warp pass, EMT = 4 where the
//      project accumulators are small (T8 NB64, SE pass 1 T8, T4; fp16/bf16), else 2; the bias preloaded into
//      the accumulators, WarpTile::init_cols) -> act -> T into the smem halo
//      hid[IH][IW][HP] (HP = EC + 8: pixel pitch; pixels outside the image stay 0: the depthwise pads h
//      with zeros). Each lane's accumulator pair (2 adjacent channels of one row) is one packed 4-byte
//      store (8-byte in fp32); at pitch HP the 8 rows x 4 lanes of a warp store hit 32 distinct banks
//      (pitch EC put rows g and g + 4 in one bank: 2-way conflicts, and 2-byte stores took 2 per pair).
//      Per (m tile, n8 tile) and warp: 2 STS.32 (1 wavefront each); per m tile 2 LDS of xpos, per pass and
//      n8 tile 1 LDS.64 of the bias pair. hid's pixels outside the image (border tiles) are zeroed once per
//      work item, their EC channels only.
//   2. stages::Depthwise from hid (pixel pitch HP; register-blocked RW-wide strips, 16-byte smem vectors) -> + bias,
//      act -> the A operand ap[TH TW][EC] of the project GEMM.
//   3. project GEMM: acc (registers, live across all chunks) += ap . Wp_c^T over the NB channels (T8 in an
//      sm_90a pass, fp16/bf16: on wgmma, stages::WgStrip; see kWgProj).
//   A short last chunk (E % 48 != 0) runs the depthwise of step 2 on its channels rounded to 16 (cw =
//   16 / 32; fp16/bf16 fast paths), all the project reads: 16 -> 16 -> 16 and 16 -> 64 -> 24 no longer
//   convolve 48 channels for 16 (the depthwise skips the items of the other channel groups; the expand
//   still runs all 48).
//   Epilogue: acc -> fp32 smem -> stages::store_tile (+ bias, + residual x; 16-byte loads/stores in
//   NHWC with K % 8 == 0).
// No expansion (E == C): step 0 is skipped, step 1 is the x halo chunk itself (Depthwise::load_input;
// at T14 fp16/bf16 a 16-channel chunk sits at pixel pitch 24).
//
// Tiles (instantiated; RW = the depthwise strip, kRw14 / kRw8 below): T14 = 14 x 14 outputs (RW 7 at
// NB 32, 2 at NB 96), stride 1, k = 3/5, K <= 96 (SE pass 1: any K); T8 = 8 x 8 (RW 8 at NB 64, 4 at NB 320;
// generic k: 2) for everything else (stride 2, small maps, generic k, K > 96, SE pass 2); T4 = 4 x 4
// (generic depthwise, 8 warps along N, NB = 128) only when T8 does not fit in shared memory (fp32 with C >~ 100 at k5 s2).
// NB = output channels per pass; project warp grid (warps along M x N, proj_wmp): T14 NB32: 8 x 1 (m tiles
// w, w + 8; NT8P = 4); T14 NB96: 4 x 2 (m tiles wm, wm + 4, ..; NT8P = 6); T8 NB64: 4 x 2 (NT8P = 4);
// T8 NB320: 2 x 4 (NT8P = 10); T4 NB128: 1 x 8 (NT8P = 2). K > NB runs ceil(K / NB) passes per tile, each
// recomputing expand + dw (only K > 96 at stride-1 k3/5 maps >= 9 px, which then use T8 with NB = 320,
// i.e. in practice K > 320).
//
// Executed / useful tensor-core FLOPs (expand and project each 2 Mu C E resp. 2 Mu E K useful,
// Mu = output pixels; executed = rows x padded depth x padded width):
//   MobileNetV2 24 -> 144 -> 24, 56 x 56, s1, T14: 4 x 4 tiles per image; the clipped halo has 16 or 15
//     rows/cols (interior/border), all multiples of 16 rows after compaction except 15 x 15 = 225 -> 240:
//     expand rows (4 x 256 + 8 x 240 + 4 x 240) / 3136 = 3904 / 3136 = 1.245 (halo factor),
//     x C padding 32 / 24 = 1.333, E 144 = 3 x 48 exact: expand 1.66.
//     project rows 208 / 196 = 1.061, K 24 = 3 n8 tiles exact, E exact: project 1.061.
//     Equal useful FLOPs in both GEMMs -> (1.66 + 1.061) / 2 = 1.36 (target 1.6).
//   96 -> 576 -> 96, 14 x 14, s1, T14: one tile = the image; the clipped halo is the image itself,
//     196 -> 208 rows: expand 1.061 (C 96, E 576 = 12 x 48 exact); project 208 / 196 = 1.061, K 96 =
//     NB: 1.061 overall (target 1.25).
//   Halo (expand recompute) factors, interior tiles: T14 s1 k3 16^2 / 14^2 = 1.31; T8 s1 k3 1.56 (only
//   maps < 9 px or K > 96); T8 s2 k3 17^2 / (4 x 64) = 1.13 vs the unfused expansion of H x W.
//
// Shared memory (fp16, see ir_layout): xh MX (Cp + 8) + hid IH IW HP + ap MP (EC + 8) + We 2 EC (Cp + 8)
// + Wp 2 NBR (EC + 8) elements (NBR = min(NB, round16(K))) + dw taps/biases in fp32 (SE pass 2: ap + Wp +
// gs, EC fp32), with the fp32 epilogue tile MP (NBR + 8; one STS.64 per accumulator pair)
// aliasing {hid, ap, We, Wp}. 24-144-24 @56 T14: 88 KB (2 CTAs/SM by smem); 96-576-96 @14 T14: 146 KB
// (1/SM); the HP padding costs IH IW 8 elements (4 KB at T14 k3 fp16).
// ptxas sm_90 (CUDA 13.0, scripts/nvcc_check.sh, DEVICE_ONLY=1; regs/thread fp16 (= bf16) | fp32, all 0 spill),
// with the squarer project tiles, EMT 4, the bias-initialised expand accumulators and the register-gated SE pass
// 2 (before: fp16 T14 NB96 241, T14 NB32 205, T8 NB320 237 (generic 251), T8 NB64 189, SE pass 1 137-146,
// SE pass 2 NB320 222, T4 fused 177; fp32 T14 NB96 255, T14 NB32 195-198, T8 NB64 206-216, SE pass 1 168):
//   fused T14 NB96 k3/k5: 252/250 | 247/244     fused T14 NB32: 217 | 213     fused T4: 242 | 184
//   fused T8 NB320: 243-253 (generic k 242) | 240 k3, 254 k5 (253)   fused T8 NB64: 238-245 (240) | 192-194
//   (fp16/bf16 T8 on wgmma since the WgStrip projection: NB320 was 250-255, NB64 244-254)
//   SE pass 1 T8: 204-219 (212) | 181-195 (159), T14: 199 k3, 220 k5 | 170, 181 (the fused h copy + sums)
//   SE pass 2 NB64: 156 | 164, NB320: 204 (bf16 212) | 252, T4: 166 | 158 (fp16 on wgmma; was 168 / 220-222)
//   se_mlp: 128 | 114 (up to 4 images x 8 accumulators + the 8 rows' 16-byte loads in flight; 2 CTAs/SM by
//   registers, its grid is one CTA per se_mlp_imgs images). (256, 1): every ir_kernel has <= 255 registers: 1 CTA (8 warps) per SM
//   (as before; smem alone would allow 2 for T14 NB32 / T8 NB64 in fp16, which spilled under the 128-register
//   cap even at 205 / 189). Several variants sit at 250-255: the next register-costing change needs a spill
//   check (keeping T14 NB32's x fragments in registers across chunks spilled 32 B and was dropped).
//
// With SE (the gate needs the global mean of h, so h must be complete before projecting):
//   MODE kSePass1: steps 0-2 as above, then h tiles go to hbuf (N Ho Wo x E, T, pixel-major) and
//          per-tile channel sums (fp32, N tiles x E) instead of the project GEMM, both in one pass over ap
//          (the copy adds each 8-channel group into registers; sum_rows row phases, then their partials in a
//          fixed order: deterministic). T14 wherever the fused kernel could take it (stride 1, k3/5, maps
//          >= 9), any K (no project accumulators): the 14 x 14 tile's halo costs 1.31x (k3) / 1.65x (k5) of
//          expand against T8's 1.56x / 2.25x, and RW = 7 (model, with the fused sums: MobileNetV3
//          40 -> 120 -> 40 k5 @28 1.98 -> 1.48 of its HBM floor, 48 -> 144 -> 48 k5 @14 1.79 -> 1.35); T8
//          otherwise.
//   se_mlp_kernel: a block per 1-4 images (se_mlp_imgs: only when the batch outnumbers the SMs; each weight
//          load serves all of them): mean (16-byte loads of 4 channels' partial sums when E % 4 == 0), FC1 +
//          se_act, FC2 + gate -> gate (N x E fp32); both FCs a warp per 8 output rows with the lanes along the
//          reduction (16-byte weight loads), see se_rows. ptxas sm_90a: 128 registers fp16/bf16, 110 fp32,
//          wide share 0.57.
//   MODE kSePass2: per chunk, ap = h tile and Wp_c (cp.async), the image's gate chunk into gs (EC fp32); the
//          same project GEMM with A's columns scaled by gs in registers (WarpTile::mma<true>: 2 LDS.64 per k
//          step and warp) and epilogue (+ x).
//
// KS, S = 3/5, 1/2 unroll the depthwise taps (sliding window); KS = S = 0 is the generic odd-k path.
#pragma once

#include <algorithm>
#include <type_traits>

#include "inverted_residual/inverted_residual.h"
#include "stages/depthwise.cuh"
#include "stages/gemm.cuh"
#include "stages/ir_warp_tile.cuh"
#include "stages/wg_gemm.cuh"

namespace fastconv {
namespace ir {

constexpr int NT = 256;  // threads per CTA (8 warps)
constexpr int EC = 48;   // hidden channels per chunk (144 = 3, 576 = 12, 960 = 20 chunks)
constexpr int LDA = EC + 8;  // pitch of the project A tile and Wp chunk: 8 (mod 16) halves
// Pixel pitch of the hidden halo hid (elements): the expand epilogue's packed pair stores of 8 consecutive
// pixels x 4 lanes then hit 32 distinct banks (28 words apart in fp16, 56 in fp32; EC = 48 would map
// pixels p and p + 4 to the same banks: 2-way conflicts). The depthwise stage reads hid with this pitch.
constexpr int HP = EC + 8;
enum Mode { kFused = 0, kSePass1 = 1, kSePass2 = 2 };
// SE pass 1's h store and per-tile channel sums: thread (q, g) handles channel group g < EC / 8 of the tile
// rows q, q + R, .. (R = sum_rows(P) row phases: about 4 rows each, at most NT / (EC / 8) = 42 phases); the R
// partial rows are then added in order (see the kernel). More phases would cost more in the final reduction
// than the shorter chains save (T8: 16 phases, T14: 42).
constexpr int kSumGroups = EC / 8, kSumRowsMax = NT / kSumGroups;
__host__ __device__ constexpr int sum_rows(int P) { return P / 4 < kSumRowsMax ? P / 4 : kSumRowsMax; }

__host__ __device__ constexpr int round_up(int v, int m) { return (v + m - 1) / m * m; }

// Warps along M of the project GEMM for a tile of `tile` x `tile` outputs and nt8p n8 tiles per warp: one per
// m tile up to 8 (4 for 4..7 m tiles), halved for the wide variants (nt8p > 4: T14 NB96, T8 NB320) so
// their warps own squarer tiles (T14 NB96: 4 m x 6 n8 per warp, T8 NB320: 2 m x 10 n8, the same
// accumulator registers as 2 x 12 and 1 x 20): per k step a warp loads MTW + nt8p / 2 fragments for MTW nt8p
// mma, i.e. the Wp chunk is read by half as many warps (T14 NB96 at K = 96: 50 instead of 61 ldmatrix.x4
// per k step; T8 NB320 at K = 160: 28 instead of 44).
__host__ __device__ constexpr int proj_wmp(int tile, int nt8p) {
  const int mtiles = round_up(tile * tile, 16) / 16;
  const int wmp = mtiles < 8 ? (mtiles < 4 ? mtiles : 4) : 8;
  return nt8p > 4 && wmp > 1 ? wmp / 2 : wmp;
}

// Compile-time shape of an output tile and its project-GEMM warp grid.
template <int TH, int TW, int NT8P> struct TileCfg {
  static_assert(TH == TW, "square tiles (proj_wmp)");
  static constexpr int P = TH * TW;               // output pixels
  static constexpr int MP = round_up(P, 16);      // project GEMM rows
  static constexpr int MTILES = MP / 16;
  static constexpr int WMP = proj_wmp(TH, NT8P);  // warps along M
  static constexpr int WNP = 8 / WMP;             // warps along N
  static constexpr int MTW = (MTILES + WMP - 1) / WMP;  // m tiles per warp
  static constexpr int NB = WNP * NT8P * 8;       // output channels per pass
  static_assert(WMP * WNP == 8, "8 warps");
};

// Shared-memory carve-up, identical on host (launch size) and device. 32-bit offsets: 64-bit ones
// cost registers.
struct IrLayout {
  uint32_t xpos, wt, dwb, eb, xh, gs, red, hid, ap, we, wpb, cs;
  uint32_t we_buf, wp_buf;  // bytes between the two halves of the double buffers
  uint32_t bytes;
};

template <typename T>
// NBR = min(NB, K rounded up to 16): the rows of the Wp chunk buffer and the width of the epilogue
// tile (a pass never reads B rows or writes accumulators past round16(K), since NT8P is even).
__host__ __device__ inline IrLayout ir_layout(int mode, bool expand, int k, int s, int TH, int TW, int Cp, int NBR) {
  const int IH = stages::halo_extent(TH, k, s, 1), IW = stages::halo_extent(TW, k, s, 1);
  const int MX = round_up(IH * IW, 16), MP = round_up(TH * TW, 16), LDX = Cp + 8;
  IrLayout L{};
  uint32_t off = 0;
  auto take = [&](size_t bytes) {
    off = (off + 127u) & ~127u;
    const uint32_t o = off;
    off += uint32_t(bytes);
    return o;
  };
  if (mode != kSePass2) {
    L.xpos = take(sizeof(int) * MX);
    L.wt = take(sizeof(T) * k * k * EC);
    L.dwb = take(sizeof(float) * EC);
    L.eb = take(sizeof(float) * EC);
    if (expand) L.xh = take(sizeof(T) * MX * LDX);
    if (mode == kSePass1) L.red = take(sizeof(float) * kSumRowsMax * EC);  // the channel sums' row phases
  } else {
    L.gs = take(sizeof(float) * EC);  // the SE gate of the chunk (fp32, zero past E)
  }
  const uint32_t u = (off + 127u) & ~127u;  // union: chunk buffers | epilogue tile
  if (mode != kSePass2) L.hid = take(sizeof(T) * IH * IW * HP);
  L.ap = take(sizeof(T) * MP * LDA);
  L.we_buf = expand && mode != kSePass2 ? uint32_t(round_up(int(sizeof(T)) * EC * LDX, 128)) : 0;
  L.we = take(2 * size_t(L.we_buf));
  L.wp_buf = mode != kSePass1 ? uint32_t(round_up(int(sizeof(T)) * NBR * LDA, 128)) : 0;
  L.wpb = take(2 * size_t(L.wp_buf));
  uint32_t end = off;
  if (mode != kSePass1) {
    off = u;
    L.cs = take(sizeof(float) * MP * (NBR + 8));
    end = end > off ? end : off;
  }
  L.bytes = end;
  return L;
}

// Two adjacent elements (an mma accumulator pair) as one shared store: 4 bytes (fp16/bf16) or 8 (fp32);
// p must be aligned to the pair.
template <typename T> __device__ __forceinline__ void sts_pair(T* p, float a, float b) {
  if constexpr (sizeof(T) == 2) *reinterpret_cast<uint32_t*>(p) = stages::word_bits<T>(a, b);
  else *reinterpret_cast<float2*>(p) = make_float2(a, b);
}

template <typename T, int KS, int S, int TH, int TW, int RW, int NT8P, int MODE>
// __launch_bounds__(NT, 1): under the 2-CTA/SM cap (128 registers) the NB = 32/64 variants spilled
// 16-200 B (ptxas sm_90), so every variant runs 1 CTA (8 warps) per SM for now.
__global__ void __launch_bounds__(NT, 1) ir_kernel(const IrParams p) {
  using Cfg = TileCfg<TH, TW, NT8P>;
  // Expand m tiles per warp pass (at most): each pass loads the We chunk's B fragments once, so more m tiles
  // per pass means fewer B loads. 4 where the project accumulators are small (T8 NB64, SE pass 1 T8, T4;
  // tensor-core types: the fp32 FMA path has no registers left); 2 otherwise (T14 NB32 ran 1 while it aimed
  // at 2 CTAs/SM, which its registers rule out anyway). At run time a warp takes
  // ceil(m tiles / 8) per pass, clamped to [2, EMT]: no fewer warps busy than with 2.
  // Passes without wgmma (sm_80 SASS, the compute_90 PTX) allocate registers differently: at 255 registers
  // ptxas sm_80 spilled T14 NB96 180-220 B, T8 NB320 16-48 B and T14 NB32 k5 8 B (fp16/bf16) and T14 NB96
  // 8 B (fp32) where sm_90a fits the same code. There (kTight) the variants past 4 accumulator tiles per warp
  // take EMT 1 (one more We fragment load per m tile), those with NT8P > 4 the depthwise strip RW 2 and the
  // copy loops' bound on threadIdx: 0 spills in every sm_80 variant (nvcc_check.sh <file> 80).
  constexpr int EMT = !stages::kTensorCore<T> ? 2 : Cfg::MTW * NT8P <= 4 ? 4 : (stages::kWgmma ? 2 : 1);
  constexpr bool kTight = !stages::kWgmma && NT8P > 4;
  constexpr int kRw = kTight && stages::kTensorCore<T> ? 2 : RW;
  using DW = stages::Depthwise<T, KS, S, TH, TW, kRw, NT, sizeof(T) == 2 && (KS >= 5 || kRw > 2)>;
  // The project GEMM of T8 (fused and SE pass 2) in an sm_90a pass (fp16/bf16; the tile's 64 rows are one
  // m64): warpgroup MMA, stages::WgStrip of n16 blocks, the Wp chunk in core-matrix tiles; A (ap) and the SE
  // gate scaling as on mma.sync. Blocks per warpgroup: SE pass 2 NB 64: 4 (warpgroup 0 alone; its registers
  // have room), fused NB 64: 2 (the accumulators of WarpTile's 1 x 4 n8 per warp: 16), NB 320: 10. Per k step
  // A is read once per busy warpgroup and each B block once (WarpTile: A once per warp column, B once per warp
  // row): at K = 112 44 wavefronts against 88, at K = 48 28 against 80. Layout and plan are the same either way.
  constexpr bool kWgProj = MODE != kSePass1 && stages::kTensorCore<T> && stages::kWgmma && TH == 8;
  constexpr int kProjBlk = TileCfg<TH, TW, NT8P>::NB > 64 ? 10 : (MODE == kSePass2 ? 4 : 2);
  using ProjTile = std::conditional_t<kWgProj, stages::WgStrip<T, kProjBlk>,
                                      stages::WarpTile<T, TileCfg<TH, TW, NT8P>::MTW, NT8P>>;
  constexpr int NB = Cfg::NB, MP = Cfg::MP;
#ifdef __CUDA_ARCH__
  if constexpr (kTight) __builtin_assume(threadIdx.x < NT);  // blockDim.x == NT: fewer hoisted indices
#endif
  const int ksz = KS > 0 ? KS : p.k, s = S > 0 ? S : p.stride, kk = ksz * ksz;
  const int IH = stages::halo_extent(TH, ksz, s, 1), IW = stages::halo_extent(TW, ksz, s, 1);
  const int LDX = p.Cp + 8;
  const bool expand = p.we != nullptr;
  extern __shared__ __align__(128) unsigned char smem[];
  const int nbr = min(NB, round_up(p.K, 16));
  const IrLayout L = ir_layout<T>(MODE, expand, ksz, s, TH, TW, p.Cp, nbr);
  int* xpos = reinterpret_cast<int*>(smem + L.xpos);
  T* wt = reinterpret_cast<T*>(smem + L.wt);
  float* dwb = reinterpret_cast<float*>(smem + L.dwb);
  float* eb = reinterpret_cast<float*>(smem + L.eb);
  T* xh = reinterpret_cast<T*>(smem + L.xh);
  T* hid = reinterpret_cast<T*>(smem + L.hid);
  T* ap = reinterpret_cast<T*>(smem + L.ap);
  float* cs = reinterpret_cast<float*>(smem + L.cs);
  float* gs = reinterpret_cast<float*>(smem + L.gs);

  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ we = static_cast<const T*>(p.we);
  const T* __restrict__ wp = static_cast<const T*>(p.wp);
  const T* __restrict__ be = static_cast<const T*>(p.be);
  const int tid = threadIdx.x, warp = tid >> 5;
  const int wm = warp % Cfg::WMP, wn = warp / Cfg::WMP;
  const int nchunks = (p.E + EC - 1) / EC;
  const int tiles_img = p.tiles_h * p.tiles_w;
  const int items = p.tiles * p.npass;

  for (int item = blockIdx.x; item < items; item += gridDim.x) {
    const int pass = item % p.npass, tile = item / p.npass;
    const int n = tile / tiles_img, t_in = tile - n * tiles_img;
    const int th = t_in / p.tiles_w, tw = t_in - th * p.tiles_w;
    const int oy0 = th * TH, ox0 = tw * TW;
    const int h0 = oy0 * s - p.pad, w0 = ox0 * s - p.pad;
    const int k0 = pass * NB;
    const T* __restrict__ xn = x + n * p.xs[0];
    // The halo clipped to the image: rows y_lo..y_hi-1, columns x_lo..x_hi-1 of the IH x IW halo.
    const int y_lo = h0 < 0 ? -h0 : 0, x_lo = w0 < 0 ? -w0 : 0;
    const int y_hi = min(IH, p.H - h0), x_hi = min(IW, p.W - w0);
    const int rw = x_hi > x_lo ? x_hi - x_lo : 0, rh = y_hi > y_lo ? y_hi - y_lo : 0;
    const int mx = rw * rh, mxp = round_up(mx, 16);
    // Output row r of the tile -> image pixel, or -1 (outside the image).
    auto out_pix = [&](int r) -> int {
      const int oy = r / TW, ox = r - (r / TW) * TW;
      return r < Cfg::P && oy0 + oy < p.Ho && ox0 + ox < p.Wo ? (oy0 + oy) * p.Wo + ox0 + ox : -1;
    };

    __syncthreads();  // the previous item's readers of every buffer are done
    auto issue_weights = [&](int c) {
      const int e0 = c * EC, buf = c & 1;
      if (MODE != kSePass2 && expand) {
        T* dst = reinterpret_cast<T*>(smem + L.we + buf * L.we_buf);
        stages::copy_rows<T, NT>(p.webytes, dst, LDX, EC, p.Cp, p.C, we, 1, false, [&](int r) -> const T* {
          return e0 + r < p.E ? we + int64_t(e0 + r) * p.C : nullptr;
        });
      }
      if (MODE == kFused) {
        T* dst = reinterpret_cast<T*>(smem + L.wpb + buf * L.wp_buf);
        auto wp_row = [&](int r) -> const T* { return k0 + r < p.K ? wp + int64_t(k0 + r) * p.E + e0 : nullptr; };
        if constexpr (kWgProj) stages::copy_tile<T, NT, true>(p.wpbytes, dst, 8 * EC, nbr, EC, p.E - e0, wp, wp_row);
        else stages::copy_rows<T, NT>(p.wpbytes, dst, LDA, nbr, EC, p.E - e0, wp, 1, false, wp_row);
      }
    };
    if constexpr (MODE != kSePass2) {
      for (int r = tid; r < round_up(IH * IW, 16); r += NT)
        xpos[r] = r < mx ? (y_lo + r / rw) * IW + x_lo + r % rw : -1;
      if (expand) {
        if (mx < IH * IW) {  // halo pixels outside the image: the depthwise conv's zero padding of h
          // Only those pixels, and only the EC channels the depthwise reads (not the pitch padding): the
          // expand epilogue rewrites every pixel inside the image in every chunk.
          constexpr int VP = EC * int(sizeof(T)) / 16;  // 16-byte vectors per pixel
          for (int i = tid; i < IH * IW * VP; i += NT) {
            const int q = i / VP, y = q / IW, xq = q - y * IW;
            if (y < y_lo || y >= y_hi || xq < x_lo || xq >= x_hi)
              stages::sts16(hid + q * HP + (i - q * VP) * (16 / int(sizeof(T))), uint4{0, 0, 0, 0});
          }
        }
        stages::copy_rows<T, NT>(p.xbytes, xh, LDX, mxp, p.Cp, p.C, x, p.xs[1], !p.nhwc, [&](int r) -> const T* {
          if (r >= mx) return nullptr;
          const int hi = h0 + y_lo + r / rw, wi = w0 + x_lo + r % rw;
          return xn + hi * p.xs[2] + wi * p.xs[3];
        });
      }
      issue_weights(0);
      stages::cp_async_commit();
    }

    ProjTile acc;
    acc.zero();
    // Warp's project extent: m tiles wm, wm + WMP, ..., n8 tiles wn NT8P .. of this pass's channels.
    const int kpass = min(NB, p.K - k0);
    const int nt8_all = (kpass + 7) / 8 - wn * NT8P;
    const int nt8 = nt8_all < 0 ? 0 : (nt8_all > NT8P ? NT8P : nt8_all);
    const int mt_all = (Cfg::MTILES - wm + Cfg::WMP - 1) / Cfg::WMP;
    const int mt = mt_all > Cfg::MTW ? Cfg::MTW : mt_all;

    for (int c = 0; c < nchunks; ++c) {
      const int e0 = c * EC, ecl = min(EC, p.E - e0), buf = c & 1;
      // Channels a short last chunk convolves: ecl rounded to 16, all the project GEMM reads (its k steps
      // are (ecl + 15) / 16); the depthwise skips the items of the other channel groups. fp16/bf16 fast
      // paths only: in the generic-k and fp32 variants (at 255 registers) it spilled 8-24 B. (Trimming
      // the expand to cw columns too, a runtime n8 count in its unrolled warp tile, spilled 24-1192 B.)
      const int cw = KS > 0 && sizeof(T) == 2 ? (ecl + 15) & ~15 : EC;
      // T14, fp16/bf16: a 16-channel chunk copied from x (no expansion: MobileNetV3's 16 -> 16 -> 16) sits
      // at pixel pitch 24, not HP, so the depthwise's loads spread over the banks (model, T14 RW 7 k3:
      // 456 wavefronts per chunk against 834 at HP). Literal widths and pitches on both sides of the
      // branch (a runtime pitch spilled 8-24 B); T14 only: the second inlined depthwise spilled 64 B at
      // T8 k5 s2.
      constexpr bool kNarrowOk = TH == 14 && sizeof(T) == 2 && KS > 0;
      const bool narrow = kNarrowOk && !expand && cw == 16;
      const T* wpc = reinterpret_cast<const T*>(smem + L.wpb + (MODE == kSePass2 ? 0 : buf * L.wp_buf));
      if constexpr (MODE != kSePass2) {
        // Taps and biases of this chunk: the last readers (previous chunk's depthwise) passed a barrier.
        DW::load_weights(wt, dwb, static_cast<const T*>(p.wd), static_cast<const T*>(p.bd), e0, p.E, kk, EC);
        if (expand) {
          for (int i = tid; i < EC; i += NT) eb[i] = be != nullptr && e0 + i < p.E ? to_float(be[e0 + i]) : 0.f;
        } else {  // the hidden chunk is x itself, at hid's pixel pitch HP
          if (narrow) DW::load_input(p.xbytes, hid, x, p.xs, n, h0, w0, p.H, p.W, IH, IW, e0, p.C, 16, 24);
          else DW::load_input(p.xbytes, hid, x, p.xs, n, h0, w0, p.H, p.W, IH, IW, e0, p.C, EC, HP);
          stages::cp_async_commit();
        }
        stages::cp_async_wait<0>();
        if constexpr (kWgProj) stages::fence_proxy_async();  // Wp_c landed by cp.async, read by wgmma
        __syncthreads();  // x halo, We_c, Wp_c landed; everyone finished chunk c-1 (buffers c+1 free)
        if (c + 1 < nchunks) {
          issue_weights(c + 1);
          stages::cp_async_commit();
        }
        if (expand) {
          const T* wec = reinterpret_cast<const T*>(smem + L.we + buf * L.we_buf);
          const int mtiles = mxp / 16;
          const int act = p.act;
          const int q = min(EMT, max(2, (mtiles + 7) / 8));
          const int g = (tid & 31) >> 2, c2 = (tid & 3) * 2;
          for (int mi = q * warp; mi < mtiles; mi += 8 * q) {
            stages::WarpTile<T, EMT, EC / 8> te;
            te.init_cols(eb, EC / 8);  // the expand bias: 6 LDS.64 per pass
            const int mte = min(q, mtiles - mi);
            // All EC columns even for a short last chunk: the padded channels come out act(0), finite,
            // and meet zero Wp columns (no stale or NaN smem enters the project GEMM). (Trimming the
            // expand to cw columns, a runtime n8 count in this unrolled tile, spilled 24-1192 B.)
            te.mma(xh + mi * 16 * LDX, LDX, 16, wec, LDX, p.Cp / 16, mte, EC / 8);
            // One packed 4-byte (fp32: 8-byte) store per lane and row: conflict-free at pitch HP; the rows'
            // halo pixels are read once per m tile (2 LDS), not per store.
#pragma unroll
            for (int i = 0; i < EMT; ++i)
              if (i < mte) {
                const int r0 = (mi + i) * 16 + g;
                const int x0 = r0 < mx ? xpos[r0] : -1, x1 = r0 + 8 < mx ? xpos[r0 + 8] : -1;
#pragma unroll
                for (int j = 0; j < EC / 8; ++j) {
                  const float(&v)[4] = te.acc[i][j];
                  if (x0 >= 0) sts_pair<T>(hid + x0 * HP + 8 * j + c2, apply_act(v[0], act), apply_act(v[1], act));
                  if (x1 >= 0) sts_pair<T>(hid + x1 * HP + 8 * j + c2, apply_act(v[2], act), apply_act(v[3], act));
                }
              }
          }
        }
        __syncthreads();  // hid complete
        {
          auto to_ap = [&](int row, int g, float (&v)[8]) { stages::sts8<T>(ap + row * LDA + g * 8, v); };
          if (narrow) DW::compute(hid, wt, dwb, p.act, ksz, s, 1, IW, EC, to_ap, 24, 16);
          else DW::compute(hid, wt, dwb, p.act, ksz, s, 1, IW, EC, to_ap, HP, cw);
        }
        __syncthreads();  // ap complete
        if constexpr (MODE == kSePass1) {
          // h tile -> hbuf and the tile's channel sums in one pass over ap: thread (q, g), g < EC / 8 a group of
          // 8 channels and q < R = sum_rows(P) a row phase, copies rows q, q + R, .. of its group (16-byte loads,
          // and 16-byte stores where hbuf allows, else element by element) and adds them into 8 fp32 sums;
          // red[q][EC] is then reduced over q in order, a thread per channel: deterministic, with serial
          // chains of ~4 rows (a separate pass of a lane per channel pair over all P rows re-read ap and ran
          // P-long chains: 196 at T14).
          T* __restrict__ hb = static_cast<T*>(p.hbuf);
          const int64_t img = int64_t(n) * p.Ho * p.Wo;
          float* red = reinterpret_cast<float*>(smem + L.red);
          constexpr int V = stages::kVec16<T>;
          const bool vec = p.hbytes == 16 && p.E % 8 == 0;
          constexpr int kSumRows = sum_rows(Cfg::P);
          if (tid < kSumGroups * kSumRows) {
            const int g = tid % kSumGroups, q = tid / kSumGroups;
            float sum[8];
#pragma unroll
            for (int c = 0; c < 8; ++c) sum[c] = 0.f;
            if (g * 8 < ecl)
              for (int r = q; r < Cfg::P; r += kSumRows) {
                const int pix = out_pix(r);
                if (pix < 0) continue;
                const T* a = ap + r * LDA + g * 8;
                T* dst = hb + (img + pix) * p.E + e0 + g * 8;
                uint4 u[stages::kWords8<T>];
#pragma unroll
                for (int w = 0; w < stages::kWords8<T>; ++w) u[w] = stages::lds16(a + w * V);
                if (vec) {
#pragma unroll
                  for (int w = 0; w < stages::kWords8<T>; ++w) stages::stg16(dst + w * V, u[w]);
                } else {
                  for (int c = 0; c < 8 && g * 8 + c < ecl; ++c) dst[c] = a[c];
                }
                float v[8];
                stages::unpack8<T>(u, v);
#pragma unroll
                for (int c = 0; c < 8; ++c) sum[c] += v[c];
              }
            // red[q]: channels 8 g .. 8 g + 3 at slots 4 g .., 8 g + 4 .. 8 g + 7 at EC / 2 + 4 g ..: a warp's
            // 16-byte stores land in consecutive slots (5 wavefronts each; 8 in channel order, 32 bytes apart).
            *reinterpret_cast<float4*>(red + q * EC + g * 4) = make_float4(sum[0], sum[1], sum[2], sum[3]);
            *reinterpret_cast<float4*>(red + q * EC + EC / 2 + g * 4) = make_float4(sum[4], sum[5], sum[6], sum[7]);
          }
          __syncthreads();
          {
            // Thread tid < EC adds slot tid over the row phases (consecutive words: one wavefront per load).
            const int hi = tid >= EC / 2 ? 1 : 0, sl = tid - hi * (EC / 2);
            const int ch = (sl >> 2) * 8 + hi * 4 + (sl & 3);
            if (tid < EC && ch < ecl) {
              float total = 0.f;
#pragma unroll 4
              for (int q = 0; q < kSumRows; ++q) total += red[q * EC + tid];
              p.partial[int64_t(tile) * p.E + e0 + ch] = total;
            }
          }
          continue;  // the next chunk's barriers order these reads of ap and red before they are rewritten
        }
      } else {  // kSePass2: ap = h tile, A columns scaled by the image's gate (in registers, WarpTile::mma<true>)
        __syncthreads();  // previous chunk's GEMM readers of ap / Wp done
        const T* __restrict__ hb = static_cast<const T*>(p.hbuf);
        const int64_t img = int64_t(n) * p.Ho * p.Wo;
        stages::copy_rows<T, NT>(p.hbytes, ap, LDA, MP, EC, ecl, hb, 1, false, [&](int r) -> const T* {
          const int pix = out_pix(r);
          return pix >= 0 ? hb + (img + pix) * p.E + e0 : nullptr;
        });
        T* wdst = reinterpret_cast<T*>(smem + L.wpb);
        auto wp_row = [&](int r) -> const T* { return k0 + r < p.K ? wp + int64_t(k0 + r) * p.E + e0 : nullptr; };
        if constexpr (kWgProj) stages::copy_tile<T, NT, true>(p.wpbytes, wdst, 8 * EC, nbr, EC, ecl, wp, wp_row);
        else stages::copy_rows<T, NT>(p.wpbytes, wdst, LDA, nbr, EC, ecl, wp, 1, false, wp_row);
        stages::cp_async_commit();
        const float* gt = p.gate + int64_t(n) * p.E + e0;
        if (tid < EC) gs[tid] = tid < ecl ? gt[tid] : 0.f;
        stages::cp_async_wait<0>();
        if constexpr (kWgProj) stages::fence_proxy_async();  // Wp landed by cp.async, read by wgmma
        __syncthreads();
      }
      if constexpr (kWgProj)  // (ecl + 15) / 16 k steps: ap columns < cw (fused), or zero-filled h and gate 0
        acc.template mma<EC / 16, MODE == kSePass2>(ap, LDA, wpc, 8 * EC, kpass, gs, (ecl + 15) / 16);
      else if constexpr (MODE != kSePass1)
        acc.template mma<MODE == kSePass2>(ap + wm * 16 * LDA, LDA, 16 * Cfg::WMP, wpc + wn * NT8P * 8 * LDA, LDA,
                                           (ecl + 15) / 16, mt, nt8, gs);
    }

    if constexpr (MODE != kSePass1) {
      const int ldc = nbr + 8;
      __syncthreads();  // cs aliases hid / ap / the weight buffers
      if constexpr (kWgProj)
        acc.for_each(kpass, [&](int r, int col, float v0, float v1) {
          *reinterpret_cast<float2*>(cs + r * ldc + col) = make_float2(v0, v1);
        });
      else
        acc.for_each(mt, nt8, [&](int i, int r, int col, float v0, float v1) {  // one STS.64 per pair
          *reinterpret_cast<float2*>(cs + ((wm + i * Cfg::WMP) * 16 + r) * ldc + wn * NT8P * 8 + col) = make_float2(v0, v1);
        });
      __syncthreads();
      stages::store_tile<T, MP, NB, NT>(
          cs, ldc,
          [&](int r) {
            const int pix = out_pix(r);
            if (pix < 0) return stages::RowOffsets{-1, -1};
            const int ho = pix / p.Wo, wo = pix - ho * p.Wo;
            return stages::RowOffsets{n * p.os[0] + ho * p.os[2] + wo * p.os[3],
                                      n * p.xs[0] + ho * p.xs[2] + wo * p.xs[3]};
          },
          k0, p.K, static_cast<const T*>(p.bp), kNone, p.residual ? x : nullptr, p.xs[1], static_cast<T*>(p.out),
          p.os[1], p.vec_out);
    }
  }
}

// SE MLP building block: one warp computes kSeRows = 8 consecutive rows r0 .. r0 + 7 (< M) of y_i = W v_i for
// the nimg <= kSeImgs images i of its block, W an M x D row-major matrix of T in global memory, v_i (D fp32, row i of
// v at pitch ldv) in shared memory. Lanes run along D (the reduction dimension), so each weight load of a warp
// is one contiguous 512-byte run of one row (VEC: 16-byte loads, D * sizeof(T) % 16 == 0 and W 16-byte
// aligned) or 32 consecutive elements (scalar fallback), and serves all the block's images: the weights are
// read once per nimg images, not once per image. Each image's slice of v is loaded once per 8 rows. Then per
// image a reduce-scatter across the lanes: halving steps at xor 16, 8, 4 leave lane l with row (l >> 2) & 7
// summed over 8 lanes, xor 2, 1 finish it: 9 shuffles per 8 rows (a plain butterfly per row would take 40).
// Every sum is in a fixed order: deterministic.
constexpr int kSeRows = 8;
constexpr int kSeImgs = 4;  // images per se_mlp block at most (32 accumulators)
// Images per block: one while a grid of N blocks leaves SMs idle (a block of 4 images does ~2x the work of one,
// so at N <= SMs it would only lengthen the critical path: model, E = 960, 21960 against 11430 wavefronts per
// block), then up to kSeImgs as the batch grows (N >= 4 SMs: a quarter of the weight reads).
inline int se_mlp_imgs(int N, int sms) { const int i = sms > 0 ? N / sms : 1; return i < 1 ? 1 : (i > kSeImgs ? kSeImgs : i); }
inline int se_mlp_grid(int N, int imgs) { return (N + imgs - 1) / imgs; }
// One halving step: lanes with bit 4 H set keep rows H .. 2H - 1 of their live 2H, the others rows 0 .. H - 1,
// and each adds its xor partner's copy of the rows it keeps (compile-time indices: acc stays in registers).
template <int H> __device__ __forceinline__ void se_halve(float (&acc)[kSeRows], int lane) {
  const bool upper = (lane & (4 * H)) != 0;
#pragma unroll
  for (int i = 0; i < H; ++i) {
    const float send = upper ? acc[i] : acc[i + H], keep = upper ? acc[i + H] : acc[i];
    acc[i] = keep + __shfl_xor_sync(0xffffffffu, send, 4 * H);
  }
}
// y[i]: lane's row r0 + ((lane >> 2) & 7) of image i (valid on every lane; rows >= M are 0).
template <typename T, bool VEC>
__device__ __forceinline__ void se_rows(float (&y)[kSeImgs], const T* __restrict__ w, const float* v, int ldv, int r0,
                                        int M, int D, int lane, int nimg) {
  constexpr int V = VEC ? 16 / int(sizeof(T)) : 1;
  float acc[kSeImgs][kSeRows];
#pragma unroll
  for (int i = 0; i < kSeImgs; ++i)
#pragma unroll
    for (int r = 0; r < kSeRows; ++r) acc[i][r] = 0.f;
#pragma unroll 1
  for (int d = lane * V; d < D; d += 32 * V) {
    float vv[kSeImgs][V];
#pragma unroll
    for (int i = 0; i < kSeImgs; ++i) {
      if (i >= nimg) break;  // block-uniform
      const float* vi = v + i * ldv + d;
      if constexpr (VEC) {
        // V = 8: 32 fp32 bytes per lane; lanes 4-7 of each 8 read their halves in the other order, so each
        // LDS.128 of the warp covers all 32 banks (4 wavefronts, not 8).
        const int sw = V == 8 ? (lane >> 2) & 1 : 0;
        uint4 u[V / 4];
#pragma unroll
        for (int q = 0; q < V / 4; ++q) u[q] = stages::lds16(vi + 4 * (q ^ sw));
        if (V == 8 && sw) {
          const uint4 t = u[0];
          u[0] = u[V / 4 - 1];
          u[V / 4 - 1] = t;
        }
#pragma unroll
        for (int q = 0; q < V / 4; ++q) {
          vv[i][4 * q] = __uint_as_float(u[q].x); vv[i][4 * q + 1] = __uint_as_float(u[q].y);
          vv[i][4 * q + 2] = __uint_as_float(u[q].z); vv[i][4 * q + 3] = __uint_as_float(u[q].w);
        }
      } else {
        vv[i][0] = vi[0];
      }
    }
#pragma unroll
    for (int r = 0; r < kSeRows; ++r)
      if (r0 + r < M) {
        const T* src = w + int64_t(r0 + r) * D + d;
        float wr[V];
        if constexpr (VEC) {
          const uint4 u = stages::ldg16(src);
#pragma unroll
          for (int e = 0; e < V; ++e)
            wr[e] = sizeof(T) == 2 ? stages::half_bits<T>(stages::word_at(u, e / 2), e % 2) : __uint_as_float(stages::word_at(u, e));
        } else {
          wr[0] = to_float(src[0]);
        }
#pragma unroll
        for (int i = 0; i < kSeImgs; ++i)
          if (i < nimg)
#pragma unroll
            for (int e = 0; e < V; ++e) acc[i][r] = fmaf(wr[e], vv[i][e], acc[i][r]);
      }
  }
#pragma unroll
  for (int i = 0; i < kSeImgs; ++i) {
    if (i >= nimg) break;
    se_halve<4>(acc[i], lane);
    se_halve<2>(acc[i], lane);
    se_halve<1>(acc[i], lane);
    acc[i][0] += __shfl_xor_sync(0xffffffffu, acc[i][0], 2);
    acc[i][0] += __shfl_xor_sync(0xffffffffu, acc[i][0], 1);
    y[i] = acc[i][0];
  }
}

// SE squeeze/excite MLP, one block per p.imgs images n0 = imgs blockIdx.x ..: gate[n] = gate_act(W2 se_act(W1
// mean_n(h) + b1) + b2). mean: a thread per (image, channel) over the per-tile sums (coalesced fp32); a last
// block's images past N are skipped (nimg). FC1 (S x E) and FC2 (E x S): se_rows, 8 rows per warp pass, the warps
// round-robin over row groups; FC2 reads W2 along its rows (S), so no load touches more than the lines of the
// 8 rows it needs. Shared: mean (kSeImgs x E, rows padded to 4) + z (kSeImgs x S, padded to 4) fp32.
// Per block: E S sizeof(T) / 128 weight wavefronts per FC (+ row-boundary lines), per image D / 128 (VEC)
// fp32 v loads and 9 shuffles per 8 rows. ptxas sm_90: see the header.
template <typename T>
__global__ void __launch_bounds__(NT) se_mlp_kernel(const SeParams p) {
  extern __shared__ __align__(16) float sm[];
  const int lde = round_up(p.E, 4), lds = round_up(p.S, 4);
  float* mean = sm;                   // kSeImgs x lde
  float* z = sm + kSeImgs * lde;      // kSeImgs x lds (16-byte aligned rows for the vector loads of FC2)
  const T* __restrict__ w1 = static_cast<const T*>(p.w1);
  const T* __restrict__ b1 = static_cast<const T*>(p.b1);
  const T* __restrict__ w2 = static_cast<const T*>(p.w2);
  const T* __restrict__ b2 = static_cast<const T*>(p.b2);
  const int n0 = blockIdx.x * p.imgs, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int nimg = min(p.imgs, p.N - n0);
  if (stages::vec_bytes(p.partial, p.E, int(sizeof(float))) == 16) {
    // 4 channels per thread, 16-byte loads (every MobileNetV3 E is a multiple of 8): a quarter of the load
    // instructions of the per-channel loop below, which stays for odd E (not unrolled: a cold path).
    const int E4 = p.E / 4;
    for (int ie = tid; ie < nimg * E4; ie += NT) {
      const int i = ie / E4, e = 4 * (ie - i * E4);
      const float4* src = reinterpret_cast<const float4*>(p.partial + int64_t(n0 + i) * p.tiles * p.E + e);
      float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
      for (int t = 0; t < p.tiles; ++t) {
        const float4 v = src[int64_t(t) * E4];
        acc.x += v.x; acc.y += v.y; acc.z += v.z; acc.w += v.w;
      }
      *reinterpret_cast<float4*>(mean + i * lde + e) =
          make_float4(acc.x * p.inv_hw, acc.y * p.inv_hw, acc.z * p.inv_hw, acc.w * p.inv_hw);
    }
  } else {
#pragma unroll 1
    for (int ie = tid; ie < nimg * p.E; ie += NT) {
      const int i = ie / p.E, e = ie - i * p.E, n = n0 + i;
      float acc = 0.f;
#pragma unroll 1
      for (int t = 0; t < p.tiles; ++t) acc += p.partial[(int64_t(n) * p.tiles + t) * p.E + e];
      mean[i * lde + e] = acc * p.inv_hw;
    }
  }
  __syncthreads();
  const int rl = (lane >> 2) & (kSeRows - 1);
  const bool v1 = stages::vec_bytes(w1, p.E, int(sizeof(T))) == 16;  // rows of 16-byte multiples, aligned
  const bool v2 = stages::vec_bytes(w2, p.S, int(sizeof(T))) == 16;
  float y[kSeImgs];
  for (int j0 = warp * kSeRows; j0 < p.S; j0 += NT / 32 * kSeRows) {
    if (v1) se_rows<T, true>(y, w1, mean, lde, j0, p.S, p.E, lane, nimg);
    else se_rows<T, false>(y, w1, mean, lde, j0, p.S, p.E, lane, nimg);
    const int j = j0 + rl;
    if ((lane & 3) == 0 && j < p.S) {
      const float bj = b1 ? to_float(b1[j]) : 0.f;
#pragma unroll
      for (int i = 0; i < kSeImgs; ++i)
        if (i < nimg) z[i * lds + j] = apply_act(y[i] + bj, p.se_act);
    }
  }
  __syncthreads();
  for (int e0 = warp * kSeRows; e0 < p.E; e0 += NT / 32 * kSeRows) {
    if (v2) se_rows<T, true>(y, w2, z, lds, e0, p.E, p.S, lane, nimg);
    else se_rows<T, false>(y, w2, z, lds, e0, p.E, p.S, lane, nimg);
    const int e = e0 + rl;
    if ((lane & 3) == 0 && e < p.E) {
      const float be = b2 ? to_float(b2[e]) : 0.f;
#pragma unroll
      for (int i = 0; i < kSeImgs; ++i)
        if (i < nimg) p.gate[int64_t(n0 + i) * p.E + e] = apply_act(y[i] + be, p.se_gate);
    }
  }
}
// Dynamic shared memory of se_mlp_kernel: mean + z of imgs images.
inline size_t se_mlp_smem(int E, int S, int imgs) { return size_t(imgs) * (round_up(E, 4) + round_up(S, 4)) * sizeof(float); }

// ---------------------------------------------------------------------------------------------
// Host-side plan (shared by the launcher and the host emulator test, so both run the same variant).
// ---------------------------------------------------------------------------------------------

struct IrVariant {
  int tile;   // 14 (T14) or 8 (T8)
  int nt8p;   // project n8 tiles per warp
  int ks, s;  // depthwise instantiation (0, 0: generic)
  size_t smem;
};

inline int nb_of(int tile, int nt8p) { return 8 / proj_wmp(tile, nt8p) * nt8p * 8; }
inline int nbr_of(int tile, int nt8p, int K) { return std::min(nb_of(tile, nt8p), round_up(K, 16)); }

// Fills p's tiling fields for `mode` and returns the variant; smem 0 = nothing fits in max_smem.
// Candidates, first that fits: T14 (when eligible), T8 with NB covering K, T8 with NB = 64 (more
// passes), T4 (generic depthwise, NB = 128).
template <typename T> inline IrVariant plan(IrParams& p, int mode, size_t max_smem) {
  const bool expand = p.we != nullptr;
  const bool fast = (p.k == 3 || p.k == 5) && (p.stride == 1 || p.stride == 2);
  p.Cp = round_up(p.C, 16);
  IrVariant cand[4];
  int nc = 0;
  // T14 for the fused kernel with K <= 96, and for SE pass 1 (no project GEMM: any K).
  if (fast && p.stride == 1 && p.Ho >= 9 && p.Wo >= 9 && (mode == kSePass1 || (mode == kFused && p.K <= 96)))
    cand[nc++] = IrVariant{14, mode == kSePass1 || p.K <= 32 ? 4 : 6, p.k, p.stride, 0};
  const int ks = fast ? p.k : 0, st = fast ? p.stride : 0;
  if (mode != kSePass1 && p.K > 64) cand[nc++] = IrVariant{8, 10, ks, st, 0};
  cand[nc++] = IrVariant{8, 4, ks, st, 0};
  cand[nc++] = IrVariant{4, 2, 0, 0, 0};
  IrVariant v{};
  for (int i = 0; i < nc && v.smem == 0; ++i) {
    const size_t bytes =
        ir_layout<T>(mode, expand, p.k, p.stride, cand[i].tile, cand[i].tile, p.Cp, nbr_of(cand[i].tile, cand[i].nt8p, p.K)).bytes;
    if (bytes <= max_smem) {
      v = cand[i];
      v.smem = bytes;
    }
  }
  if (v.smem == 0) return v;
  const int nb = nb_of(v.tile, v.nt8p);
  p.tiles_h = (p.Ho + v.tile - 1) / v.tile;
  p.tiles_w = (p.Wo + v.tile - 1) / v.tile;
  p.tiles = p.N * p.tiles_h * p.tiles_w;
  p.npass = mode == kSePass1 ? 1 : (p.K + nb - 1) / nb;
  const int es = int(sizeof(T));
  p.xbytes = p.nhwc ? stages::vec_bytes(p.x, p.C, es) : 0;
  p.webytes = expand ? stages::vec_bytes(p.we, p.C, es) : 0;
  p.wpbytes = stages::vec_bytes(p.wp, p.E, es);
  p.hbytes = p.hbuf ? stages::vec_bytes(p.hbuf, p.E, es) : 0;
  auto a16 = [](const void* q) { return q == nullptr || reinterpret_cast<uintptr_t>(q) % 16 == 0; };
  p.vec_out = p.nhwc && p.K % 8 == 0 && a16(p.out) && a16(p.bp) && (!p.residual || a16(p.x));
  return v;
}

// Calls f(kernel) with the instantiation of variant v for MODE (f launches it).
// The depthwise strip (stages::Depthwise RW) of the fast T14 / T8 instantiations: a row-wide strip
// (7 of 14, 8 of 8) reads ~2x fewer smem vectors per output than RW = 2 (taps per filter row and the
// window's overlap amortised over 7-8 outputs) but keeps RW x 8 more accumulators live, next to the
// project accumulators: NB = 32 / 64 (NT8P = 4) have the registers; NB = 96 / 320 spilled (ptxas
// sm_90 fp16: 56-644 B at RW 7/8) and keep RW = 2 (NB 320: RW = 4).
template <typename T, int NT8P> constexpr int kRw14 = NT8P <= 4 ? 7 : 2;
template <typename T, int NT8P> constexpr int kRw8 = NT8P <= 4 ? 8 : 4;

template <typename T, int MODE, int TH, int NT8P, class F> inline void dispatch_ks(const IrVariant& v, F&& f) {
  constexpr int R14 = kRw14<T, NT8P>, R8 = kRw8<T, NT8P>;
  if constexpr (MODE == kSePass2 || TH == 4) {
    f(ir_kernel<T, 0, 0, TH, TH, 2, NT8P, MODE>);
  } else if constexpr (TH == 14) {
    if (v.ks == 3) f(ir_kernel<T, 3, 1, 14, 14, R14, NT8P, MODE>);
    else f(ir_kernel<T, 5, 1, 14, 14, R14, NT8P, MODE>);
  } else {
    if (v.ks == 3 && v.s == 1) f(ir_kernel<T, 3, 1, 8, 8, R8, NT8P, MODE>);
    else if (v.ks == 3) f(ir_kernel<T, 3, 2, 8, 8, R8, NT8P, MODE>);
    else if (v.ks == 5 && v.s == 1) f(ir_kernel<T, 5, 1, 8, 8, R8, NT8P, MODE>);
    else if (v.ks == 5) f(ir_kernel<T, 5, 2, 8, 8, R8, NT8P, MODE>);
    else f(ir_kernel<T, 0, 0, 8, 8, 2, NT8P, MODE>);
  }
}

template <typename T, int MODE, class F> inline void dispatch(const IrVariant& v, F&& f) {
  if (v.tile == 4) {
    dispatch_ks<T, MODE, 4, 2>(v, f);
  } else if constexpr (MODE == kSePass1) {
    if (v.tile == 14) dispatch_ks<T, MODE, 14, 4>(v, f);
    else dispatch_ks<T, MODE, 8, 4>(v, f);
  } else {
    if (v.tile == 14) {
      if constexpr (MODE == kFused) {
        if (v.nt8p == 4) dispatch_ks<T, MODE, 14, 4>(v, f);
        else dispatch_ks<T, MODE, 14, 6>(v, f);
      }
    } else if (v.nt8p == 4) {
      dispatch_ks<T, MODE, 8, 4>(v, f);
    } else {
      dispatch_ks<T, MODE, 8, 10>(v, f);
    }
  }
}

}  // namespace ir
}  // namespace fastconv
