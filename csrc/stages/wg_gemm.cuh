// Stage: the CTA tile GEMM on warpgroup MMA (sm_90a wgmma, stages/wgmma.cuh), with the interface of
// stages::Gemm (zero / mma<KSTEPS> / store / for_each, kColStep), so a kernel switches between the
// two by a type alias (stages::kWgmma: in this compilation pass the path exists).
//
// WgGemm<T, BM, BN, WGM, WGN>: BM x BN fp32 accumulators on WGM x WGN warpgroups (NT = 128 WGM WGN;
// warpgroup wg = warp / 4 -> wgm = wg % WGM, wgn = wg / WGM owns rows 64 wgm.. and columns NW wgn..,
// BM = 64 WGM, NW = BN / WGN in {64, 128}): acc += A[BM][16 KSTEPS] * B[BN][16 KSTEPS]^T.
//   A: row-major [BM][lda] T in shared memory (pixels x reduction channels), as for Gemm: per 16-deep
//      k step each warp loads its 16 rows with one ldmatrix.x4 (lda = 8 mod 64 halves: conflict-free).
//   B: core-matrix tiles (core_offset, stages/tile_copy.cuh; the layout Gemm<..., kBCore> reads too): element (n, k)
//      at (n / 8) ldb + (k / 8) 64 + (n % 8) 8 + k % 8 elements, ldb = 8 x (the slab's depth), so a
//      k offset k0 (multiple of 8) is B + 8 k0. Descriptor: LBO = 128 B (core matrices adjacent in
//      K), SBO = 2 ldb B (adjacent in N), start = B + wgn NW/8 ldb + 128 ks (k step ks) elements.
//   Per call: every warp issues KSTEPS ldmatrix.x4 (its A rows for all k steps) into registers, then
//   the warpgroup wgmma_fence -> KSTEPS x wgmma.m64nNWk16 -> commit -> wait<0> (accumulators and A
//   registers free again before returning; B reads done, so the caller may refill the slab after a
//   barrier). The A fragments are loaded before the fence (PTX: registers an other instruction wrote
//   need a wgmma.fence before a wgmma reads them), so KSTEPS x 4 registers hold them.
//   The caller must have run fence_proxy_async() after its cp_async_wait (each thread that wrote B)
//   and before the __syncthreads that publishes the slab.
//   mma(..., ncols): warpgroups whose NW columns all lie at or past ncols skip (kColStep = NW); a
//   128-wide warpgroup tile with ncols <= 64 issues m64n64k16 on its first 32 accumulators.
//   store(Cs, ldc, accumulate, c_lo, c_hi), for_each(f(row, col, v0, v1)): as Gemm (the D layout per
//   n8 chunk is mma.sync's C layout, see stages/wgmma.cuh).
#pragma once

#include <type_traits>

#include "stages/gemm.cuh"
#include "stages/mma.cuh"
#include "stages/wgmma.cuh"

namespace fastconv {
namespace stages {

template <typename T, int BM, int BN, int WGM, int WGN> struct WgGemm {
  static_assert(sizeof(T) == 2, "wgmma tiles take fp16/bf16 operands");
  static constexpr int NT = 128 * WGM * WGN;
  static constexpr int NW = BN / WGN;  // columns per warpgroup
  static_assert(BM == 64 * WGM, "a warpgroup owns 64 rows");
  static_assert(NW == 64 || NW == 128, "wgmma.m64n64k16 / m64n128k16");
  static constexpr int kColStep = NW;
  float acc[NW / 2];

  __device__ __forceinline__ void zero() {
#pragma unroll
    for (int i = 0; i < NW / 2; ++i) acc[i] = 0.f;
  }

  template <int KSTEPS>
  __device__ __forceinline__ void mma(const T* A, int lda, const T* B, int ldb, int ncols = BN) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int wg = warp >> 2, wgm = wg % WGM, wgn = wg / WGM;
    if (ncols < BN && wgn * NW >= ncols) return;  // warpgroup-uniform (folds away for ncols = BN)
    // ldmatrix.x4 row addresses (stages/mma.cuh): matrices j = (rows +8 (j & 1), k +8 (j >> 1)).
    const T* a_row = A + (wgm * 64 + (warp & 3) * 16 + (lane & 15)) * lda + (lane >> 4) * 8;
    uint32_t a[KSTEPS][4];
#pragma unroll
    for (int ks = 0; ks < KSTEPS; ++ks) ldmatrix_x4(a[ks], a_row + ks * 16);
    const uint32_t b0 = smem_addr(B + wgn * (NW / 8) * ldb);
    const uint32_t sbo = uint32_t(ldb) * uint32_t(sizeof(T));
    wgmma_fence_operand(acc);
    wgmma_fence();
    if constexpr (NW == 128) {
      // A 128-wide warpgroup tile with at most 64 valid columns (warpgroup-uniform): m64n64k16 on the
      // first 32 accumulators (columns 0..63 in the D layout); the others keep their zeros. Each
      // branch commits and waits itself (a join of two open batches made ptxas add a dummy HGMMA).
      if (ncols <= 64) {
        float(&lo)[32] = *reinterpret_cast<float(*)[32]>(acc);
#pragma unroll
        for (int ks = 0; ks < KSTEPS; ++ks) wgmma_m64nNk16<T, 64>(lo, a[ks], wgmma_desc(b0 + ks * 256, 128, sbo), 1);
        wgmma_commit();
        wgmma_wait<0>();
      } else {
#pragma unroll
        for (int ks = 0; ks < KSTEPS; ++ks) wgmma_m64nNk16<T, 128>(acc, a[ks], wgmma_desc(b0 + ks * 256, 128, sbo), 1);
        wgmma_commit();
        wgmma_wait<0>();
      }
    } else {
#pragma unroll
      for (int ks = 0; ks < KSTEPS; ++ks)
        wgmma_m64nNk16<T, NW>(acc, a[ks], wgmma_desc(b0 + ks * 256, 128, sbo), 1);
      wgmma_commit();
      wgmma_wait<0>();
    }
    wgmma_fence_operand(acc);
  }

  // f(row, col, v0, v1): the accumulators of (row, col) and (row, col + 1).
  template <class F> __device__ __forceinline__ void for_each(F&& f) const {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, wg = warp >> 2;
    const int r0 = (wg % WGM) * 64 + (warp & 3) * 16 + (lane >> 2), c0 = (wg / WGM) * NW + (lane & 3) * 2;
#pragma unroll
    for (int i = 0; i < NW / 8; ++i) {
      f(r0, c0 + i * 8, acc[4 * i], acc[4 * i + 1]);
      f(r0 + 8, c0 + i * 8, acc[4 * i + 2], acc[4 * i + 3]);
    }
  }

  __device__ __forceinline__ void store(float* Cs, int ldc, bool accumulate = false, int c_lo = 0, int c_hi = BN) const {
    const bool part = c_lo > 0 || c_hi < BN;
    const int wgn = ((threadIdx.x >> 5) >> 2) / WGM;
    if (part && (wgn * NW >= c_hi || (wgn + 1) * NW <= c_lo)) return;
    for_each([&](int r, int c, float v0, float v1) {
      if (part && (c < c_lo || c >= c_hi)) return;
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

// WgStrip<T, NBLK>: a warpgroup's 64 x 16 NBLK fp32 tile as NBLK column blocks of wgmma.m64n16k16, of which a
// runtime count is issued: a 1x1 projection whose width is known only at run time (the inverted residual's T8
// project GEMM, fused and SE pass 2: 16 .. 320 output channels on one 64-pixel tile). Every warpgroup wg =
// warp / 4 of the CTA reads the same 64 rows of A and owns column blocks [wg NBLK, (wg + 1) NBLK) of B.
//   A: row-major [64][lda] T in shared memory (pixels x reduction channels): per k step each warp loads its
//      16 rows with one ldmatrix.x4; mma<..., true> scales column k by kscale[k] (fp32, shared) in registers
//      after the load (2 LDS.64 per k step and warp, as WarpTile::mma<true>: the SE gate).
//   B: core-matrix tiles (core_offset, ldb = 8 x the depth): block j (columns 16 j..) starts at B + 2 j ldb
//      elements, k step ks at + 128 ks; descriptor LBO = 128 B, SBO = 2 ldb B.
//   mma<KSTEPS, KSCALE>(A, lda, B, ldb, ncols, kscale, ksteps): nb = the warpgroup's blocks below
//      ceil(ncols / 16) (none: it returns); fence, ksteps (1 .. KSTEPS, default KSTEPS) x nb wgmma, commit,
//      wait 0, with ksteps and nb dispatched to compile-time counts (one branch per pair, each its own batch:
//      no batch joins two branches; a short reduction, e.g. the inverted residual's last hidden chunk of 16,
//      issues only its k steps and reads only its columns of A). The caller fences
//      the proxy after the cp.async of B landed (fence_proxy_async) and before the publishing barrier.
//   for_each(ncols, f(row, col, v0, v1)): the issued blocks' accumulators, col CTA-wide.
// Per k step and warpgroup: 16 wavefronts of A ldmatrix, 4 per issued block of B (the tensor cores' reads);
// WarpTile on 8 warps loads A once per warp column and B once per warp row (K = 112 on the T8 NB 320 grid:
// 88 wavefronts per k step, against 16 + 7 x 4 = 44 here).
template <typename T, int NBLK> struct WgStrip {
  static_assert(sizeof(T) == 2, "wgmma tiles take fp16/bf16 operands");
  float acc[NBLK * 8];

  __device__ __forceinline__ void zero() {
#pragma unroll
    for (int i = 0; i < NBLK * 8; ++i) acc[i] = 0.f;
  }

  static __device__ __forceinline__ int blocks(int ncols) {
    const int nb = (ncols + 15) / 16 - int(threadIdx.x >> 7) * NBLK;
    return nb < 0 ? 0 : (nb > NBLK ? NBLK : nb);
  }

  template <int KSTEPS, bool KSCALE = false>
  __device__ __forceinline__ void mma(const T* A, int lda, const T* B, int ldb, int ncols,
                                      const float* kscale = nullptr, int ksteps = KSTEPS) {
    if constexpr (KSTEPS > 1) {
      if (ksteps < KSTEPS) {  // CTA-uniform
        mma<KSTEPS - 1, KSCALE>(A, lda, B, ldb, ncols, kscale, ksteps);
        return;
      }
    }
    const int nb = blocks(ncols);
    if (nb == 0) return;  // warpgroup-uniform
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const T* a_row = A + ((warp & 3) * 16 + (lane & 15)) * lda + (lane >> 4) * 8;
    uint32_t a[KSTEPS][4];
#pragma unroll
    for (int ks = 0; ks < KSTEPS; ++ks) {
      ldmatrix_x4(a[ks], a_row + ks * 16);
      if constexpr (KSCALE) {  // a0, a1: columns 2t, 2t + 1 of the k step; a2, a3: 2t + 8, 2t + 9
        const float2 lo = *reinterpret_cast<const float2*>(kscale + ks * 16 + (lane & 3) * 2);
        const float2 hi = *reinterpret_cast<const float2*>(kscale + ks * 16 + (lane & 3) * 2 + 8);
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          const float2 sc = r < 2 ? lo : hi;
          a[ks][r] = word_bits<T>(half_bits<T>(a[ks][r], 0) * sc.x, half_bits<T>(a[ks][r], 1) * sc.y);
        }
      }
    }
    // SBO: core matrices adjacent in N are ldb elements apart; block j starts 2 j SBO bytes in.
    issue<KSTEPS, NBLK>(a, smem_addr(B + (threadIdx.x >> 7) * NBLK * 2 * ldb), uint32_t(ldb) * uint32_t(sizeof(T)), nb);
  }

  template <class F> __device__ __forceinline__ void for_each(int ncols, F&& f) const {
    const int nb = blocks(ncols);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int r0 = (warp & 3) * 16 + (lane >> 2), c0 = (warp >> 2) * NBLK * 16 + (lane & 3) * 2;
#pragma unroll
    for (int j = 0; j < NBLK; ++j)
      if (j < nb)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int i = 2 * j + h;
          f(r0, c0 + 8 * i, acc[4 * i], acc[4 * i + 1]);
          f(r0 + 8, c0 + 8 * i, acc[4 * i + 2], acc[4 * i + 3]);
        }
  }

 private:
  // NB blocks in one batch if nb == NB, else fewer (recursion down to 1): each count its own batch.
  template <int KSTEPS, int NB>
  __device__ __forceinline__ void issue(const uint32_t (&a)[KSTEPS][4], uint32_t b0, uint32_t sbo, int nb) {
    if constexpr (NB > 1) {
      if (nb < NB) {
        issue<KSTEPS, NB - 1>(a, b0, sbo, nb);
        return;
      }
    }
    wgmma_fence_operand(acc);
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < KSTEPS; ++ks)
#pragma unroll
      for (int j = 0; j < NB; ++j)
        wgmma_m64nNk16<T, 16>(*reinterpret_cast<float(*)[8]>(acc + 8 * j), a[ks],
                              wgmma_desc(b0 + j * 2 * sbo + ks * 256, 128, sbo), 1);
    wgmma_commit();
    wgmma_wait<0>();
    wgmma_fence_operand(acc);
  }
};

}  // namespace stages
}  // namespace fastconv
