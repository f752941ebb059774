// gconv_kernel: the grouped 1x1 GEMM behind group_conv1x1 and the ShuffleNet units (see gconv.h for
// the exact math and Params), built on csrc/stages. Two CTA bodies share the epilogue:
//
// Plain (DW = false): one 256-thread CTA computes 128 pixels x 128 output channels (fp32: 64 x 64;
//   Tiles<T>) of one group, stepping over the group's Cg input channels in BK = 32 slices through a
//   3-stage cp.async pipeline (weight rows and NHWC x pixel rows: 16/8/4-byte copies as alignment
//   allows; all 128 weight rows, zero past Kg). NCHW x with H*W a multiple of 16 / sizeof(T): one
//   16-byte load of consecutive pixels of one channel per thread, transposed into the pixel-major
//   slab (synchronous, into the same pipeline buffers); shuffle_in in NHWC and unaligned NCHW
//   planes: scalar loads. shuffle_in is folded into the loaders' channel index.
// DW (DW = true, template stride S = 1 or 2): one CTA owns an 8 x 8 output tile of one image and ALL
//   Kg output channels of its group. It computes the 3x3 depthwise of the tile ONCE per CTA from an
//   smem halo (stages::Depthwise, 8 channels x 4 outputs per thread strip, 2 in fp32 / NCHW; halo chunks of cc
//   channels double-buffered with cp.async) into a resident A tile of ca >= Cg channels (rounded to
//   BK), then loops over the ceil(Kg / DBN) output-channel tiles (DBN = 128; fp32 64) with DBN x 32
//   weight slabs double-buffered through cp.async (the next tile's first slab prefetched under the
//   epilogue). Only when Cg does not fit in shared memory is the depthwise recomputed per (tile,
//   slab); those tiles are BN = 64 wide (their partial sums accumulate in the 64-wide Cs).
//   The chunk's 3x3 taps are 16-byte loads of (channel, tap)-contiguous dw_w scattered to the
//   tap-major smem layout (dw_vec: 16-byte aligned group bases), scalar otherwise.
//   Scalar fallbacks (rows not 4-byte aligned, the tails) are rolled loops (copy_tile): unrolled at
//   every call site they were most of the load instructions, and the DW bodies took 186-217
//   registers (126-138 uncapped without them).
//   Extra CTAs (grid.y >= groups) write the side branch (avg-pool / passthrough copy) of the same
//   8 x 8 tile: 8-channel vector loads in NHWC, scalar otherwise -- except side_pair (below).
// GEMM (fp16/bf16, fp32 accumulate). The weight slabs are core-matrix tiles on every path
//   (stages::core_offset: [n/8][k/8][n%8][k%8], each 8 x 8 block 128 contiguous bytes, ldb = 8 BK =
//   256 halves; a 16-byte cp.async chunk (n, k8) lands at (n/8) 512 + k8 128 + (n%8) 16 bytes); A
//   stays row-major padded (lda = 8 mod 64 halves) and is read by ldmatrix.x4. The GEMM tile is a type
//   alias (Tiles<T>::Plain / Dw), chosen per compilation pass:
//   - sm_80 / sm_90 (mma.sync): plain Gemm<T, 128, 128, 4, 2, BCORE>, 8 warps of 32 x 64 (per 16-deep
//     k step 2 A + 4 B ldmatrix.x4 for 16 mma: 192 B per mma); DW Gemm<T, 64, 128, 2, 4, BCORE>,
//     8 warps of 32 x 32 (2 + 2 for 8 mma: 256 B). An 8 x 8 core block is one ldmatrix matrix (one
//     128-byte run: conflict-free, as the padded rows were).
//   - sm_90a (stages::kWgmma, stages/wg_gemm.cuh): plain WgGemm<T, 128, 128, 2, 1>, warpgroup g owns
//     rows 64g.. and all 128 columns (wgmma.m64n128k16, 64 accumulators per thread); DW WgGemm<T, 64,
//     128, 1, 2>, warpgroup g owns columns 64g.. (m64n64k16, 32 accumulators). Per 32-deep slab each
//     warp loads its 16 A rows for both k steps (2 ldmatrix.x4), then wgmma_fence, 2 wgmma, commit,
//     wait 0; B goes from shared memory to the tensor cores once per warpgroup (descriptor LBO 128 B,
//     SBO 512 B, no swizzle) instead of once per warp through ldmatrix. The slab's writers run
//     fence_proxy_async between their cp_async_wait and the publishing __syncthreads (publish_b).
//   A partial output tile runs only the warps (warpgroups) whose columns (64 plain mma.sync, 32 DW
//   mma.sync, 64 DW wgmma) hold valid channels; plain wgmma with <= 64 valid channels issues
//   m64n64k16 instead of m64n128k16. fp32: FMA Gemm<float, 64, 64,
//   2, 4> with row-major [64][BK+pad] slabs (16 x 16 threads, 4 x 4 each).
// Epilogue (both bodies): accumulators -> fp32 staging tile Cs (plain: the whole 128 x 128 tile,
//   pitch 136; DW: 64 x 64, pitch 72, a 128-wide tile in two passes) -> per 64 channels
//   out = act(acc + bias (+ res)), stored at out_mul * shuffle_out(k) + out_off. vec_out (NHWC,
//   out_mul 1, no shuffle_out, Kg, out_C, out_off multiples of 8, aligned): one 16-byte load of
//   Cs x2, bias, residual and one 16-byte store per 8 channels. side_pair (DW NHWC, ShuffleNetV2
//   s1: out_mul = side_mul = 2, {out_off, side_off} = {1, 0}, side_C == K, Kg % 4 == 0): the
//   passthrough copy is fused in: per 8 channels k.. one 16-byte load of Cs x2, bias and side_x[k..]
//   and two 16-byte stores of the 16 interleaved out channels 2k.. (a Kg % 8 == 4 tail: 8-byte
//   loads, one 16-byte store); no side CTAs. Otherwise scalar stores (channel-fastest in NHWC: the
//   s2 interleaved / shuffled layouts are byte-masked partial sectors), pixel-fastest in NCHW.
//
// Per-tile budget (fp16, NHWC): plain: per 32-deep slice 2 16-byte cp.async of x and 2 of w per
//   thread; mma.sync: 2 x (2 A + 4 B ldmatrix.x4, 16 mma) per warp (48 KB of ldmatrix per CTA and
//   slab); wgmma: 2 A ldmatrix.x4 per warp + 2 wgmma.m64n128k16 per warpgroup (8 KB of ldmatrix, B
//   16 KB read by the tensor cores). DW (s1, Cg = 232): halo 10 x 10 x Cg read once (1.56x the
//   tile's input; 16-byte cp.async when x_C, x_c0, Cg allow, else 8/4), taps 9 x 32 per chunk as 36
//   16-byte loads, 9 FFMA x 8 ch per output from smem, then per 128-channel output tile 8 weight
//   slabs of 128 x 32 from L2 (2 16-byte cp.async per thread each) and per slab: mma.sync 2 x (2 A +
//   2 B ldmatrix.x4, 8 mma) per warp (32 KB per CTA); wgmma 2 A ldmatrix.x4 per warp + 2 m64n64k16
//   per warpgroup (8 KB of ldmatrix, B 8 KB). Plain NCHW (fp16): per slice one 16-byte load of 8
//   pixels of x per thread (8 two-byte smem stores) instead of 8 two-byte loads.
// Shared memory (dynamic; make_layout_*): plain fp16 68.5 KB (3 stages x 18 KB: A 128 x 40 + B
//   128 x 32 core tiles; Cs 128 x 136 fp32 aliases them), fp32 54 KB; DW fp16 s1 Cg = 232: A 64 x 264
//   T (33 KB) + 2 halos 10x10x32 / 2 slabs 128 x 32 (16 KB) + Cs 18 KB + dw taps 0.8 KB = 68.25 KB;
//   Cg = 488: 100.25 KB (2 CTAs/SM fit in 228 KB). Registers (ptxas, CUDA 13.0, 0 spills, 2 CTAs/SM
//   at the 128 cap) per variant in gconv_f16.cu: fp16/bf16 sm_90a (wgmma) 121-128, sm_90 (mma.sync)
//   123-128, fp32 94-128.
#pragma once

#include <initializer_list>
#include <type_traits>

#include "group_conv1x1/gconv.h"
#include "stages/depthwise.cuh"
#include "stages/gemm.cuh"
#include "stages/wg_gemm.cuh"

namespace fastconv {
namespace gconv {

constexpr int BM = 64;      // DW GEMM rows: the pixels of an 8 x 8 tile
constexpr int BN = 64;      // output channels per staging tile (Cs) and epilogue pass
constexpr int BK = 32;      // reduction channels per slab
constexpr int NT = 256;
constexpr int WM = 2, WN = 4;
constexpr int STAGES = 3;   // plain-path cp.async pipeline depth
constexpr int TH = 8, TW = 8;
constexpr int SIDE_C = 64;  // channels per side-branch CTA
constexpr int LDC = BN + 8;
constexpr size_t kHaloBudget = 48 * 1024;  // both depthwise halo buffers together
static_assert(TH * TW == BM, "the DW tile is the GEMM's row block");

// fp16/bf16 CTA tiles, both drained through the 64-channel staging tile Cs in BN-wide passes:
// plain: 128 pixels x 128 channels on 4 x 2 warps of 32 x 64 (192 B of ldmatrix per m16n8k16);
// DW: 64 pixels x 128 channels on 2 x 4 warps of 32 x 32 (256 B; the 32 x 16 tiles took 384 B).
// fp32 (FMA) keeps 64 x 64 for both.
template <typename T> __host__ __device__ constexpr int pad_elems() { return 16 / int(sizeof(T)); }

// fp16/bf16 weight slabs are core-matrix tiles (stages::core_offset, ldb = 8 BK) on both GEMM paths;
// in an sm_90a pass (stages::kWgmma) the same tiles run on warpgroup MMA: plain on 2 x 1 warpgroups
// of 64 x 128 (wgmma.m64n128k16), DW on 1 x 2 of 64 x 64 (m64n64k16). Host code (plan, layouts)
// never depends on kWgmma: both paths use the same shared-memory layout.
template <typename T> struct Tiles {
  static constexpr bool kMma = stages::kTensorCore<T>;
  static constexpr bool kCore = kMma;                // B slabs as core-matrix tiles
  static constexpr bool kWg = kMma && stages::kWgmma;  // this pass runs the wgmma tiles
  static constexpr int PBM = kMma ? 128 : 64, PBN = kMma ? 128 : 64;  // plain
  static constexpr int PWM = kMma ? 4 : 2, PWN = kMma ? 2 : 4;
  static constexpr int DBN = kMma ? 128 : 64;  // DW output channels per tile (resident A)
  using H = std::conditional_t<kMma, T, __half>;  // (names a valid WgGemm when T is float)
  using Plain = std::conditional_t<kWg, stages::WgGemm<H, 128, 128, 2, 1>, stages::Gemm<T, PBM, PBN, PWM, PWN, kMma, kCore>>;
  using Dw = std::conditional_t<kWg, stages::WgGemm<H, BM, 128, 1, 2>, stages::Gemm<T, BM, DBN, WM, WN, kMma, kCore>>;
  static constexpr int ldb() { return kCore ? 8 * BK : BK + pad_elems<T>(); }  // (core: SBO = 512 B)
  static constexpr int bslab_elems(int rows) { return rows * (kCore ? BK : ldb()); }
};
// Between the cp_async_wait that lands a weight slab and the barrier that publishes it: wgmma reads
// B through the async proxy, so each writing thread fences (stages/wgmma.cuh).
template <typename T> __device__ __forceinline__ void publish_b() {
  if constexpr (Tiles<T>::kWg) stages::fence_proxy_async();
}

__host__ __device__ inline size_t align128(size_t v) { return (v + 127) & ~size_t(127); }
__host__ __device__ inline int cdiv(int a, int b) { return (a + b - 1) / b; }

struct Layout {
  size_t a, region, halo1, b1, cs, wt, bias, rows, bytes;  // byte offsets
  size_t stage;  // plain: bytes per pipeline stage (A slab then B slab)
  int lda, ldb;
};

// Plain path: STAGES x (A [PBM][BK+pad] + B slab: fp16/bf16 core-matrix tiles of [PBN][BK], ldb = 8 BK;
// fp32 [PBN][BK+pad]); Cs [PBM][PBN+8] aliases the pipeline after the loop.
template <typename T> __host__ __device__ inline Layout make_layout_plain() {
  constexpr int PBM = Tiles<T>::PBM, PBN = Tiles<T>::PBN;
  Layout L{};
  L.lda = BK + pad_elems<T>();
  L.ldb = Tiles<T>::ldb();
  L.stage = align128((size_t(PBM) * L.lda + Tiles<T>::bslab_elems(PBN)) * sizeof(T));
  L.a = 0;
  L.cs = 0;
  const size_t pipe = STAGES * L.stage, cs = align128(size_t(PBM) * (PBN + 8) * sizeof(float));
  L.rows = pipe > cs ? pipe : cs;
  L.bytes = L.rows + align128(2 * PBM * sizeof(int));
  return L;
}

// DW path: resident A [BM][ca+pad]; a region holding either 2 halos or 2 weight slabs (DBN x BK: core-
// matrix tiles for fp16/bf16, [DBN][BK+pad] fp32); Cs [BM][LDC]; taps.
template <typename T> __host__ __device__ inline Layout make_layout_dw(int s, int cc, int ca) {
  Layout L{};
  L.lda = ca + pad_elems<T>();
  L.ldb = Tiles<T>::ldb();
  const size_t ih = stages::halo_extent(TH, 3, s, 1), iw = stages::halo_extent(TW, 3, s, 1);
  const size_t halo = align128(ih * iw * stages::halo_pitch<T>(cc) * sizeof(T));
  const size_t bslab = align128(size_t(Tiles<T>::bslab_elems(Tiles<T>::DBN)) * sizeof(T));
  L.a = 0;
  L.region = align128(size_t(BM) * L.lda * sizeof(T));
  L.halo1 = L.region + halo;
  L.b1 = L.region + bslab;
  L.cs = L.region + (halo > bslab ? 2 * halo : 2 * bslab);
  L.wt = L.cs + align128(size_t(BM) * LDC * sizeof(float));
  L.bias = L.wt + align128(size_t(9) * cc * sizeof(T));
  L.rows = L.bias + align128(size_t(cc) * sizeof(float));
  L.bytes = L.rows + align128(2 * BM * sizeof(int));
  return L;
}

struct Grid {
  int x, y;
};
template <typename T> inline Grid grid_of(const Params& p, bool dw) {
  const int side_blocks = p.side != kSideNone && !p.side_pair ? cdiv(p.side_C, SIDE_C) : 0;
  if (dw) return {p.N * p.tiles_h * p.tiles_w, p.groups + side_blocks};
  const int64_t np = int64_t(p.N) * p.Ho * p.Wo, pbm = Tiles<T>::PBM;
  return {int((np + pbm - 1) / pbm), p.groups * cdiv(p.Kg, Tiles<T>::PBN)};
}

// Fills the derived fields of p (tiling, copy widths, vector flags, smem) for a device allowing
// smem_max bytes of dynamic shared memory per CTA. Returns nullptr, or why the shape cannot run.
template <typename T> inline const char* plan(Params& p, bool dw, bool nhwc, size_t smem_max) {
  const int e = int(sizeof(T));
  auto vb = [&](const void* ptr, std::initializer_list<int64_t> pitches) {
    int b = 16;
    for (int64_t q : pitches) {
      const int v = stages::vec_bytes(ptr, q, e);
      b = v < b ? v : b;
    }
    return b;
  };
  auto al16 = [](const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; };
  p.xbytes = nhwc && p.shuffle_in == 0 ? vb(p.x, {p.x_C, p.x_c0, p.Cg}) : 0;
  p.wbytes = vb(p.w, {p.Cg});
  p.vec_out = nhwc && p.out_mul == 1 && p.shuffle_out == 0 && p.Kg % 8 == 0 && p.out_C % 8 == 0 &&
              p.out_off % 8 == 0 && al16(p.out) && (!p.bias || al16(p.bias)) && (!p.res || al16(p.res));
  p.side_vec_in = nhwc && p.side != kSideNone && p.side_xC % 8 == 0 && al16(p.side_x);
  p.side_vec_out = p.side_vec_in && p.side_mul == 1 && p.side_off % 8 == 0 && p.out_C % 8 == 0 && al16(p.out);
  // The passthrough copy interleaved with the GEMM output (ShuffleNetV2 s1: out[2c + side_off] =
  // side_x[c], out[2k + out_off] = branch[k], side channel c pairs with k = c): the DW epilogue
  // stores both as 16-byte runs of out (8 GEMM channels -> 16 out channels), no side CTAs. 8-channel
  // items start at k % 8 == 0 (groups 1 or Kg % 8 == 0); a Kg % 8 == 4 tail is one 8-element store.
  p.side_pair = dw && nhwc && p.side == kSideCopy && p.stride == 1 && p.out_mul == 2 && p.side_mul == 2 &&
                ((p.out_off == 1 && p.side_off == 0) || (p.out_off == 0 && p.side_off == 1)) &&
                p.shuffle_out == 0 && !p.res && p.side_C == p.groups * p.Kg && p.Kg % 4 == 0 &&
                (p.groups == 1 || p.Kg % 8 == 0) && p.out_C % 8 == 0 && p.side_xC % 8 == 0 && al16(p.out) &&
                al16(p.side_x) && (!p.bias || al16(p.bias));
  // NCHW pixel runs of 16 bytes never straddle an image plane (HW % E == 0) and stay aligned.
  p.x_pix_vec = !dw && !nhwc && int64_t(p.H) * p.W % (16 / e) == 0 && al16(p.x);
  // Every group's and chunk's taps start 16-byte aligned: cbase * 9 and c0 * 9 elements, c0 % 8 == 0.
  p.dw_vec = dw && al16(p.dw_w) && (!p.dw_b || al16(p.dw_b)) && (p.groups == 1 || p.Cg % 8 == 0);
  if (!dw) {
    p.smem = make_layout_plain<T>().bytes;
    return p.smem > smem_max ? "the GEMM pipeline does not fit in shared memory" : nullptr;
  }
  if (p.stride != 1 && p.stride != 2) return "the depthwise loader supports stride 1 and 2";
  p.tiles_h = cdiv(p.Ho, TH);
  p.tiles_w = cdiv(p.Wo, TW);
  const size_t ih = stages::halo_extent(TH, 3, p.stride, 1), iw = stages::halo_extent(TW, 3, p.stride, 1);
  p.cc = 8;
  for (int cc = BK; cc > 8; cc /= 2)
    if (2 * ih * iw * stages::halo_pitch<T>(cc) * sizeof(T) <= kHaloBudget) {
      p.cc = cc;
      break;
    }
  const int cpad = cdiv(p.Cg, BK) * BK;
  if (make_layout_dw<T>(p.stride, p.cc, BK).bytes > smem_max) return "the depthwise halo does not fit in shared memory";
  long ca = cpad;
  while (ca > BK && make_layout_dw<T>(p.stride, p.cc, int(ca)).bytes > smem_max) ca -= BK;
  p.ca = int(ca);
  p.smem = make_layout_dw<T>(p.stride, p.cc, p.ca).bytes;
  return nullptr;
}

// Logical (shuffled) channel ch of a tensor with C channels -> the unshuffled source channel.
__device__ __forceinline__ int shuffle_src(int ch, int s, int C) { return (ch % s) * (C / s) + ch / s; }
// Unshuffled channel k of a tensor with K channels -> its position after a shuffle with s groups.
__device__ __forceinline__ int shuffle_dst(int k, int s, int K) {
  const int cpg = K / s;
  return (k % cpg) * s + k / cpg;
}

// Element j of a 16-byte vector of T (a bit copy through the 32-bit words, as stages::unpack8).
template <typename T> __device__ __forceinline__ T elem_of(const uint4& u, int j) {
  T e;
  if constexpr (sizeof(T) == 2) {
    const uint16_t b = uint16_t(stages::word_at(u, j / 2) >> (16 * (j % 2)));
    memcpy(&e, &b, 2);
  } else {
    const uint32_t b = stages::word_at(u, j);
    memcpy(&e, &b, 4);
  }
  return e;
}

// Element offset of (img, c, pixel index hw) in a tensor with C channels and HW pixels per plane.
template <bool NHWC> __device__ __forceinline__ int64_t act_offset(int img, int c, int hw, int C, int HW) {
  return NHWC ? ((int64_t)img * HW + hw) * C + c : ((int64_t)img * C + c) * HW + hw;
}

// 4 consecutive elements of T from global memory (8 bytes for fp16/bf16, 16 for fp32; aligned).
template <typename T, int N> __device__ __forceinline__ void load4(const T* p, float (&v)[N]) {
  static_assert(N >= 4, "four values");
  if constexpr (sizeof(T) == 2) {
    const unsigned long long u = *reinterpret_cast<const unsigned long long*>(p);  // one LDG.64
    const uint32_t lo = uint32_t(u), hi = uint32_t(u >> 32);
    v[0] = stages::half_bits<T>(lo, 0);
    v[1] = stages::half_bits<T>(lo, 1);
    v[2] = stages::half_bits<T>(hi, 0);
    v[3] = stages::half_bits<T>(hi, 1);
  } else {
    const uint4 u = stages::ldg16(p);
    v[0] = __uint_as_float(u.x);
    v[1] = __uint_as_float(u.y);
    v[2] = __uint_as_float(u.z);
    v[3] = __uint_as_float(u.w);
  }
}

// The side_pair epilogue (see plan): GEMM channels k.. of pixel row r with the passthrough
// channels k.. of side_x, interleaved into out channels 2k.. . V = 8: one 16-byte load each of Cs
// (x2), bias and side_x, two 16-byte stores; V = 4 (the Kg % 8 == 4 tail): one 16-byte load of Cs,
// 8-byte loads of bias and side_x, one 16-byte store.
template <typename T, int V>
__device__ __forceinline__ void pair_store(const Params& p, const float* cs, const T* __restrict__ bias,
                                           const T* __restrict__ sx, T* __restrict__ out) {
  float v[8], q[8];
  if constexpr (V == 8) {
    stages::lds8f(cs, v);
    if (bias) {
      float b[8];
      stages::ldg8(bias, b);
#pragma unroll
      for (int c = 0; c < 8; ++c) v[c] += b[c];
    }
    stages::ldg8(sx, q);
  } else {  // 4 channels: 8-byte (fp32: 16-byte) loads, k % 4 == 0 keeps them aligned
    float b[4] = {0.f, 0.f, 0.f, 0.f};
    const float4 c4 = *reinterpret_cast<const float4*>(cs);
    if (bias) load4(bias, b);
    load4(sx, q);
    v[0] = c4.x + b[0];
    v[1] = c4.y + b[1];
    v[2] = c4.z + b[2];
    v[3] = c4.w + b[3];
#pragma unroll
    for (int c = 4; c < 8; ++c) v[c] = q[c] = 0.f;  // (unused)
  }
  stages::act_n(v, p.act);
  stages::act_n(q, p.side_act);
  const bool branch_odd = p.out_off == 1;
#pragma unroll
  for (int h = 0; h < V / 4; ++h) {
    float o[8];
#pragma unroll
    for (int c = 0; c < 4; ++c) {  // (selects: a runtime slot index would put o in local memory)
      o[2 * c] = branch_odd ? q[4 * h + c] : v[4 * h + c];
      o[2 * c + 1] = branch_odd ? v[4 * h + c] : q[4 * h + c];
    }
    stages::stg8(out + 8 * h, o);
  }
}

// Output tile m0.. (within group grp) from the staging tile Cs; rows[r] / rows[ROWS + r] = image
// (-1: masked row) / output pixel index. PAIR: the side_pair path is compiled in (DW bodies only).
template <typename T, bool NHWC, int ROWS, bool PAIR>
__device__ __forceinline__ void epilogue(const Params& p, const float* Cs, int ldc, const int* rows, int grp, int m0) {
  const T* __restrict__ bias = static_cast<const T*>(p.bias);
  const T* __restrict__ res = static_cast<const T*>(p.res);
  T* __restrict__ out = static_cast<T*>(p.out);
  const int HWo = p.Ho * p.Wo, K = p.groups * p.Kg, kb = grp * p.Kg + m0;
  if constexpr (NHWC) {
    if (PAIR && p.side_pair) {  // (Ho == H, Wo == W)
      const T* __restrict__ sx = static_cast<const T*>(p.side_x);
      constexpr int G = BN / 8;
      for (int i = threadIdx.x; i < ROWS * G; i += NT) {
        const int r = i / G, n = (i - r * G) * 8;
        const int img = rows[r];
        if (img < 0 || m0 + n >= p.Kg) continue;
        const int64_t pix = int64_t(img) * HWo + rows[ROWS + r];
        const int k = kb + n;
        const float* cs = Cs + r * ldc + n;
        const T* bk = bias ? bias + k : nullptr;
        const T* sk = sx + pix * p.side_xC + k;
        T* ok = out + pix * p.out_C + 2 * k;
        if (m0 + n + 8 <= p.Kg) pair_store<T, 8>(p, cs, bk, sk, ok);
        else pair_store<T, 4>(p, cs, bk, sk, ok);
      }
      return;
    }
    if (p.vec_out) {
      constexpr int G = BN / 8;
      for (int i = threadIdx.x; i < ROWS * G; i += NT) {
        const int r = i / G, n = (i - r * G) * 8;
        const int img = rows[r];
        if (img < 0 || m0 + n >= p.Kg) continue;
        float v[8];
        stages::lds8f(Cs + r * ldc + n, v);
        if (bias) {
          float b[8];
          stages::ldg8(bias + kb + n, b);
#pragma unroll
          for (int c = 0; c < 8; ++c) v[c] += b[c];
        }
        const int64_t off = act_offset<true>(img, p.out_off + kb + n, rows[ROWS + r], p.out_C, HWo);
        if (res) {
          float q[8];
          stages::ldg8(res + off, q);
#pragma unroll
          for (int c = 0; c < 8; ++c) v[c] += q[c];
        }
        stages::act_n(v, p.act);
        stages::stg8(out + off, v);
      }
      return;
    }
  }
  for (int i = threadIdx.x; i < ROWS * BN; i += NT) {
    const int n = NHWC ? i % BN : i / ROWS, r = NHWC ? i / BN : i % ROWS;
    const int img = rows[r];
    if (img < 0 || m0 + n >= p.Kg) continue;
    const int k = kb + n;
    float v = Cs[r * ldc + n];
    if (bias) v += to_float(bias[k]);
    const int oc = p.out_mul * (p.shuffle_out ? shuffle_dst(k, p.shuffle_out, K) : k) + p.out_off;
    const int64_t off = act_offset<NHWC>(img, oc, rows[ROWS + r], p.out_C, HWo);
    if (res) v += to_float(res[off]);
    out[off] = from_float<T>(apply_act(v, p.act));
  }
}

// Side branch of the DW CTA's 8 x 8 output tile: channels [cb*SIDE_C, +SIDE_C) of side_x.
template <typename T, bool NHWC>
__device__ __forceinline__ void side_job(const Params& p, int cb, int n, int oy0, int ox0) {
  const T* __restrict__ sx = static_cast<const T*>(p.side_x);
  T* __restrict__ out = static_cast<T*>(p.out);
  const int HW = p.H * p.W, HWo = p.Ho * p.Wo;
  const int c_lo = cb * SIDE_C, c_hi = min(p.side_C, c_lo + SIDE_C);
  const bool pool = p.side == kSideAvgPool;
  // Sum of channel c over the pooling window (or the pixel itself) of output (oy, ox).
  auto gather = [&](int c, int oy, int ox) {
    if (!pool) return to_float(sx[act_offset<NHWC>(n, c, oy * p.W + ox, p.side_xC, HW)]);
    float s = 0.f;
    for (int dy = 0; dy < 3; ++dy) {
      const int hi = oy * p.stride - 1 + dy;
      if (unsigned(hi) >= unsigned(p.H)) continue;
      for (int dx = 0; dx < 3; ++dx) {
        const int wi = ox * p.stride - 1 + dx;
        if (unsigned(wi) < unsigned(p.W)) s += to_float(sx[act_offset<NHWC>(n, c, hi * p.W + wi, p.side_xC, HW)]);
      }
    }
    return s * (1.f / 9.f);  // count_include_pad=True: always the full window
  };
  if constexpr (NHWC) {
    if (p.side_vec_in) {
      constexpr int G = SIDE_C / 8;
      for (int i = threadIdx.x; i < BM * G; i += NT) {
        const int r = i / G, c = c_lo + (i - r * G) * 8;
        const int oy = oy0 + r / TW, ox = ox0 + r % TW;
        if (c >= c_hi || oy >= p.Ho || ox >= p.Wo) continue;
        const int nv = min(8, c_hi - c);
        if (nv < 8) {  // the last partial vector: rolled over its channels (gather inlined once)
#pragma unroll 1
          for (int j = 0; j < nv; ++j)
            out[act_offset<true>(n, p.side_mul * (c + j) + p.side_off, oy * p.Wo + ox, p.out_C, HWo)] =
                from_float<T>(apply_act(gather(c + j, oy, ox), p.side_act));
          continue;
        }
        float v[8];
        if (!pool) {
          stages::ldg8(sx + act_offset<true>(n, c, oy * p.W + ox, p.side_xC, HW), v);
        } else {
#pragma unroll
          for (int j = 0; j < 8; ++j) v[j] = 0.f;
          for (int dy = 0; dy < 3; ++dy) {
            const int hi = oy * p.stride - 1 + dy;
            if (unsigned(hi) >= unsigned(p.H)) continue;
            for (int dx = 0; dx < 3; ++dx) {
              const int wi = ox * p.stride - 1 + dx;
              if (unsigned(wi) >= unsigned(p.W)) continue;
              float q[8];
              stages::ldg8(sx + act_offset<true>(n, c, hi * p.W + wi, p.side_xC, HW), q);
#pragma unroll
              for (int j = 0; j < 8; ++j) v[j] += q[j];
            }
          }
#pragma unroll
          for (int j = 0; j < 8; ++j) v[j] *= 1.f / 9.f;
        }
        stages::act_n(v, p.side_act);
        const int64_t ob = act_offset<true>(n, 0, oy * p.Wo + ox, p.out_C, HWo);
        if (p.side_vec_out) {
          stages::stg8(out + ob + p.side_off + c, v);
        } else {
#pragma unroll
          for (int j = 0; j < 8; ++j) out[ob + p.side_mul * (c + j) + p.side_off] = from_float<T>(v[j]);
        }
      }
      return;
    }
  }
  for (int i = threadIdx.x; i < BM * SIDE_C; i += NT) {
    const int r = NHWC ? i / SIDE_C : i % BM, c = c_lo + (NHWC ? i % SIDE_C : i / BM);
    const int oy = oy0 + r / TW, ox = ox0 + r % TW;
    if (c >= c_hi || oy >= p.Ho || ox >= p.Wo) continue;
    const float v = apply_act(gather(c, oy, ox), p.side_act);
    out[act_offset<NHWC>(n, p.side_mul * c + p.side_off, oy * p.Wo + ox, p.out_C, HWo)] = from_float<T>(v);
  }
}

template <typename T, bool NHWC>
__device__ __forceinline__ void plain_body(const Params& p, unsigned char* smem) {
  constexpr int BM = Tiles<T>::PBM, PBN = Tiles<T>::PBN, PLDC = PBN + 8;  // (BM shadows the DW rows)
  using Gemm = typename Tiles<T>::Plain;
  const Layout L = make_layout_plain<T>();
  int* rows = reinterpret_cast<int*>(smem + L.rows);
  float* Cs = reinterpret_cast<float*>(smem + L.cs);
  const int HW = p.H * p.W, NP = p.N * HW;  // Ho == H, Wo == W
  const int p0 = blockIdx.x * BM;
  const int mtiles = cdiv(p.Kg, PBN);
  const int grp = blockIdx.y / mtiles, m0 = (blockIdx.y - grp * mtiles) * PBN;
  // Valid output channels of this tile (the warps past them skip the mma). All PBN weight rows are
  // copied (zero past Kg): a runtime row count cost the NHWC body 16 bytes of spills.
  const int ncols = min(PBN, p.Kg - m0);
  const int cbase = grp * p.Cg;
  const int cin = p.groups * p.Cg;
  for (int r = threadIdx.x; r < BM; r += NT) {
    const int P = p0 + r, img = P < NP ? P / HW : -1;
    rows[r] = img;
    rows[BM + r] = P < NP ? P - img * HW : 0;
  }
  __syncthreads();
  const T* __restrict__ x = static_cast<const T*>(p.x);
  const T* __restrict__ w = static_cast<const T*>(p.w);
  const T* wg = w + int64_t(grp * p.Kg + m0) * p.Cg;
  // Pipeline buffers as base + stage * step (a runtime-indexed pointer array would go to local memory).
  auto abuf = [&](int s) { return reinterpret_cast<T*>(smem + L.a + s * L.stage); };
  auto bbuf = [&](int s) { return abuf(s) + BM * L.lda; };
  // A slab = x channels k0.. of the tile's pixels: NHWC unshuffled -> cp.async rows (xbytes);
  // NCHW with whole 16-byte pixel runs -> one 16-byte load of E consecutive pixels of one channel,
  // transposed into the pixel-major slab by element stores; otherwise (shuffle_in in NHWC,
  // unaligned planes or channel rows) scalar loads.
  auto load = [&](int s, int k0) {
    T* a = abuf(s);
    const int valid = p.Cg - k0;
    auto xch = [&](int c) {
      const int ch = cbase + k0 + c;
      return p.x_c0 + (p.shuffle_in ? shuffle_src(ch, p.shuffle_in, cin) : ch);
    };
    if (NHWC && p.xbytes) {  // (xbytes is 0 under shuffle_in)
      const int c0 = p.x_c0 + cbase + k0;
      stages::copy_tile<T, NT>(p.xbytes, a, L.lda, BM, BK, valid, x, [&](int r) -> const T* {
        return rows[r] >= 0 ? x + int64_t(p0 + r) * p.x_C + c0 : nullptr;
      });
    } else if (!NHWC && p.x_pix_vec) {
      constexpr int E = 16 / int(sizeof(T)), G = BM / E;
      static_assert(G % 2 == 0, "pixel runs go in pairs");
      for (int i = threadIdx.x; i < G * BK; i += NT) {
        // A lane pair takes two adjacent runs of one channel (a whole 32-byte sector), a warp 16
        // channels: the transposed element stores then conflict 2-way (4 channels x 8 runs: 8-way).
        const int c = (i >> 1) % BK, r0 = ((i / (2 * BK)) * 2 + (i & 1)) * E;
        const int img = rows[r0];  // a run lies in one image: HW % E == 0, p0 % E == 0
        uint4 u = make_uint4(0u, 0u, 0u, 0u);
        if (img >= 0 && c < valid) u = stages::ldg16(x + act_offset<false>(img, xch(c), rows[BM + r0], p.x_C, HW));
#pragma unroll
        for (int j = 0; j < E; ++j) a[(r0 + j) * L.lda + c] = elem_of<T>(u, j);
      }
    } else {
      for (int i = threadIdx.x; i < BM * BK; i += NT) {
        const int r = NHWC ? i / BK : i % BM, c = NHWC ? i % BK : i / BM;
        const int img = rows[r];
        T v = from_float<T>(0.f);
        if (img >= 0 && c < valid) v = x[act_offset<NHWC>(img, xch(c), rows[BM + r], p.x_C, HW)];
        a[r * L.lda + c] = v;
      }
    }
    stages::copy_tile<T, NT, Tiles<T>::kCore>(p.wbytes, bbuf(s), L.ldb, PBN, BK, valid, w, [&](int r) -> const T* {
      return m0 + r < p.Kg ? wg + int64_t(r) * p.Cg + k0 : nullptr;
    });
  };

  const int nk = cdiv(p.Cg, BK);
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < nk) load(s, s * BK);
    stages::cp_async_commit();
  }
  Gemm g;
  g.zero();
  int cur = 0;
  for (int kc = 0; kc < nk; ++kc) {
    stages::cp_async_wait<STAGES - 2>();
    publish_b<T>();
    __syncthreads();  // slab kc visible to all; slab kc - 1 (the one refilled below) consumed by all
    const int nx = kc + STAGES - 1;
    if (nx < nk) load(cur == 0 ? STAGES - 1 : cur - 1, nx * BK);
    stages::cp_async_commit();
    g.template mma<BK / 16>(abuf(cur), L.lda, bbuf(cur), L.ldb, ncols);
    cur = cur == STAGES - 1 ? 0 : cur + 1;
  }
  stages::cp_async_wait<0>();
  __syncthreads();  // pipeline buffers free: Cs aliases them
  // The whole tile goes to Cs at once (draining it in passes kept the second half's accumulators
  // live across the first epilogue: 16 bytes spilled), then the epilogue runs per BN channels.
  g.store(Cs, PLDC, false, 0, cdiv(ncols, Gemm::kColStep) * Gemm::kColStep);  // (idle warps skip)
  __syncthreads();
#pragma unroll 1
  for (int h = 0; h * BN < ncols; ++h) epilogue<T, NHWC, BM, false>(p, Cs + h * BN, PLDC, rows, grp, m0 + h * BN);
}

template <typename T, bool NHWC, int S>
__device__ __forceinline__ void dw_body(const Params& p, unsigned char* smem) {
  // Outputs per depthwise strip: 4 with packed fp16/bf16 taps (as dwpw k3) on the NHWC fast path; 2 for
  // fp32 (RW = 4 spilled 10 B under the 128-register cap) and for NCHW, whose scalar staging next to
  // the 64 x 128 DW tiles spilled 12-24 B at RW = 4.
  constexpr int RW = sizeof(T) == 2 && NHWC ? 4 : 2;
  using DW = stages::Depthwise<T, 3, S, TH, TW, RW, NT, true>;
  using Gemm = typename Tiles<T>::Dw;
  const int cc = p.cc, ldh = stages::halo_pitch<T>(cc);
  const Layout L = make_layout_dw<T>(S, cc, p.ca);
  T* A = reinterpret_cast<T*>(smem + L.a);
  T* const region = reinterpret_cast<T*>(smem + L.region);
  const size_t halo_step = (L.halo1 - L.region) / sizeof(T), b_step = (L.b1 - L.region) / sizeof(T);
  auto halo = [&](int j) { return region + (j & 1) * halo_step; };
  auto bbuf = [&](int j) { return region + (j & 1) * b_step; };
  float* Cs = reinterpret_cast<float*>(smem + L.cs);
  T* wt = reinterpret_cast<T*>(smem + L.wt);
  float* dwb = reinterpret_cast<float*>(smem + L.bias);
  int* rows = reinterpret_cast<int*>(smem + L.rows);

  int t = blockIdx.x;
  const int tw = t % p.tiles_w;
  t /= p.tiles_w;
  const int th = t % p.tiles_h, n = t / p.tiles_h;
  const int oy0 = th * TH, ox0 = tw * TW;
  if ((int)blockIdx.y >= p.groups) {  // uniform per CTA
    side_job<T, NHWC>(p, blockIdx.y - p.groups, n, oy0, ox0);
    return;
  }
  const int grp = blockIdx.y;
  for (int r = threadIdx.x; r < BM; r += NT) {
    const int oy = oy0 + r / TW, ox = ox0 + r % TW;
    const bool ok = oy < p.Ho && ox < p.Wo;
    rows[r] = ok ? n : -1;
    rows[BM + r] = ok ? oy * p.Wo + ox : 0;
  }
  // (the first barrier below publishes rows before the epilogue reads them)
  const int HW = p.H * p.W;
  const int64_t xs[4] = {int64_t(p.x_C) * HW, NHWC ? 1 : HW, NHWC ? int64_t(p.W) * p.x_C : p.W, NHWC ? p.x_C : 1};
  const int cbase = grp * p.Cg;
  const T* xg = static_cast<const T*>(p.x) + (p.x_c0 + cbase) * xs[1];
  const T* dww = static_cast<const T*>(p.dw_w) + cbase * 9;
  const T* dwbias = p.dw_b ? static_cast<const T*>(p.dw_b) + cbase : nullptr;
  const T* __restrict__ w = static_cast<const T*>(p.w);
  const T* wg = w + int64_t(grp) * p.Kg * p.Cg;
  const int h0 = oy0 * S - 1, w0 = ox0 * S - 1;
  constexpr int ih = stages::halo_extent(TH, 3, S, 1), iw = stages::halo_extent(TW, 3, S, 1);
  const int cpad = cdiv(p.Cg, BK) * BK;
  const bool resident = p.ca >= cpad;
  // Output channels per tile: DBN with A resident; the recompute path (partial sums over Cg
  // splits accumulate in Cs) only what Cs holds, BN.
  const int tbn = resident ? Tiles<T>::DBN : BN;
  const int nkt = cdiv(p.Kg, tbn);
  // Weight rows a tile's warps read: its valid channels rounded up to a warp's columns (zero past Kg).
  auto brows = [&](int nt) { return min(tbn, cdiv(p.Kg - nt * tbn, Gemm::kColStep) * Gemm::kColStep); };

  // Weight slab [brows][BK] of output tile nt, reduction channels c0.. (zero past Kg and Cg).
  auto load_b = [&](T* dst, int nt, int c0) {
    stages::copy_tile<T, NT, Tiles<T>::kCore>(p.wbytes, dst, L.ldb, brows(nt), BK, p.Cg - c0, w, [&](int r) -> const T* {
      const int ko = nt * tbn + r;
      return ko < p.Kg ? wg + int64_t(ko) * p.Cg + c0 : nullptr;
    });
  };
  // Halo of channels c0.. -> dst [ih][iw][ldh] (pixel pitch stages::halo_pitch: fp16 cc = 32 pixels padded to
  // 80 B, so the depthwise reads spread over the banks). NHWC: cp.async pixel rows (stages::Depthwise's
  // loader with the rolled fallback of copy_tile); NCHW: the stage's pixel-fastest scalar loads.
  auto load_halo = [&](T* dst, int c0) {
    if constexpr (NHWC) {
      const T* xb = xg + n * xs[0] + c0;
      stages::copy_tile<T, NT>(p.xbytes, dst, ldh, ih * iw, cc, p.Cg - c0, xg, [&](int r) -> const T* {
        const int iy = r / iw, ix = r - iy * iw;
        const int hi = h0 + iy, wi = w0 + ix;
        return unsigned(hi) < unsigned(p.H) && unsigned(wi) < unsigned(p.W) ? xb + hi * xs[2] + wi * xs[3] : nullptr;
      });
    } else {
      DW::load_input(p.xbytes, dst, xg, xs, n, h0, w0, p.H, p.W, ih, iw, c0, p.Cg, cc, ldh);
    }
  };
  // Taps of channels c0.. -> wt [9][cc] (tap-major, as DW::compute reads them), bias -> dwb (fp32).
  // dw_w rows are 9 contiguous taps, so with dw_vec E consecutive (channel, tap) elements are one
  // 16-byte load, scattered to their transposed slots; the tail and the zero fill past Cg are scalar.
  auto load_taps = [&](int c0) {
    constexpr int E = 16 / int(sizeof(T));
    const int nc = max(0, min(cc, p.Cg - c0)), ne = nc * 9;
    const T* src = dww + c0 * 9;
    const int nv = p.dw_vec ? ne / E : 0;
    for (int v = threadIdx.x; v < nv; v += NT) {
      const uint4 u = stages::ldg16(src + v * E);
#pragma unroll
      for (int j = 0; j < E; ++j) {
        const int e = v * E + j, c = e / 9;
        wt[(e - c * 9) * cc + c] = elem_of<T>(u, j);
      }
    }
#pragma unroll 1
    for (int e = nv * E + threadIdx.x; e < cc * 9; e += NT) {
      const int c = e / 9;
      wt[(e - c * 9) * cc + c] = e < ne ? src[e] : from_float<T>(0.f);
    }
    const int nb = dwbias && p.dw_vec ? nc / 8 : 0;
    for (int g8 = threadIdx.x; g8 < nb; g8 += NT) {
      float b[8];
      stages::ldg8(dwbias + c0 + g8 * 8, b);
#pragma unroll
      for (int j = 0; j < 8; ++j) dwb[g8 * 8 + j] = b[j];
    }
#pragma unroll 1
    for (int c = nb * 8 + threadIdx.x; c < cc; c += NT) dwb[c] = dwbias && c < nc ? to_float(dwbias[c0 + c]) : 0.f;
  };

  Gemm g;
  bool prefetched = false;
  // Loops kept rolled: unrolled copies of the slab loop (loads inlined 4 ways) spilled at 128 regs.
#pragma unroll 1
  for (int nt = 0; nt < nkt; ++nt) {
    const int ncols = min(tbn, p.Kg - nt * tbn);
#pragma unroll 1
    for (int sc0 = 0; sc0 < cpad; sc0 += p.ca) {
      const int scw = min(p.ca, cpad - sc0);
      if (!resident || nt == 0) {
        const int nch = scw / cc;
        load_halo(halo(0), sc0);
        stages::cp_async_commit();
#pragma unroll 1
        for (int j = 0; j < nch; ++j) {
          if (j + 1 < nch)
            load_halo(halo(j + 1), sc0 + (j + 1) * cc);
          stages::cp_async_commit();
          load_taps(sc0 + j * cc);
          stages::cp_async_wait<1>();
          __syncthreads();  // halo j, taps j visible
          T* acol = A + j * cc;
          DW::compute(halo(j), wt, dwb, kNone, 3, S, 1, iw, cc,
                      [&](int row, int g8, float (&v)[8]) { stages::sts8<T>(acol + row * L.lda + g8 * 8, v); }, ldh);
          __syncthreads();  // halo j & 1, taps free; (last chunk) A complete, region free
        }
      }
      g.zero();
      const int nk = scw / BK;
      if (!prefetched) {
        load_b(bbuf(0), nt, sc0);
        stages::cp_async_commit();
      }
      prefetched = false;
#pragma unroll 1
      for (int kc = 0; kc < nk; ++kc) {
        if (kc + 1 < nk) load_b(bbuf(kc + 1), nt, sc0 + (kc + 1) * BK);
        stages::cp_async_commit();
        stages::cp_async_wait<1>();
        publish_b<T>();
        __syncthreads();  // slab kc visible
        g.template mma<BK / 16>(A + kc * BK, L.lda, bbuf(kc), L.ldb, ncols);
        __syncthreads();  // slab kc & 1 free
      }
      // Partial sums of a Cg split go to the staging tile: no accumulator stays live across the
      // next slab's depthwise phase (tbn == BN here).
      if (!resident) g.store(Cs, LDC, sc0 > 0, 0, BN);
    }
    // The tile drains through Cs in BN-channel passes (two for a full DBN = 128 tile).
#pragma unroll 1
    for (int h = 0; h * BN < ncols; ++h) {
      if (resident) g.store(Cs, LDC, false, h * BN, h * BN + BN);
      if (h == 0 && resident && nt + 1 < nkt) {  // overlap the next tile's first slab with this epilogue
        load_b(bbuf(0), nt + 1, 0);
        stages::cp_async_commit();
        prefetched = true;
      }
      __syncthreads();
      epilogue<T, NHWC, BM, true>(p, Cs, LDC, rows, grp, nt * tbn + h * BN);
      __syncthreads();  // Cs free for the next pass / tile
    }
  }
  stages::cp_async_wait<0>();
}

// Both bodies: 2 CTAs (16 warps) per SM, 128-register cap. The DW bodies took 186-217 registers
// (1 CTA/SM) while the scalar fallback loaders were unrolled at each call site; with them rolled
// (copy_tile, load_taps) they fit 115-128 without spilling (DW fp16 s1 Cg 232: 2 x 66 KB smem).
template <typename T, bool DW, bool NHWC, int S>
__global__ void __launch_bounds__(NT, 2) gconv_kernel(const Params p) {
  extern __shared__ __align__(128) unsigned char smem[];
  if constexpr (DW) dw_body<T, NHWC, S>(p, smem);
  else plain_body<T, NHWC>(p, smem);
}

}  // namespace gconv
}  // namespace fastconv
