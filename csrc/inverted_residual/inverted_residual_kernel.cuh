// Inverted residual / MBConv block: expand 1x1 -> act -> depthwise k x k -> act -> [SE] ->
// project 1x1 (+ x).
//
// ir_fused_kernel (no SE): one kernel; the expanded tensor never reaches HBM.
//   A 256-thread block owns a TH x TW output tile (TH * TW <= 64, 8 x 8 or 7 x 7) of one image x KB
//   output channels (KB = 64 when K <= 64, else 128; larger K runs ceil(K / KB) blocks per tile,
//   each recomputing expand + dw). It walks the hidden channels in chunks of EC = 64:
//   1. expand: the halo tile ((TH-1)s + k) x ((TW-1)s + k) pixels, recomputed by every tile that
//      needs it, padded to 64-row bands. Per band: x rows (32 input channels at a time) and the
//      expand weight chunk go to shared memory, TileAcc<T, 64> accumulates over all C, then
//      bias + act, rounded to T, land in the shared halo buffer `hexp`. No expansion: hexp = x.
//   2. depthwise from hexp (+bias, act) into a 64 x EC tile. hexp rows of halo pixels outside the
//      image hold 0: the conv pads h (not x, not act(bias)) with zeros.
//   3. project: TileAcc<T, KB> (registers, lives across all hidden chunks) += dw tile x Wp chunk.
//   Epilogue: project bias, residual x, store in x's layout.
//   HBM traffic: x (halo tiles re-read from L2 once per hidden chunk), weights, out. Nothing else.
//
// With SE (the gate needs the global mean of h, so h must be complete before projecting):
//   pass 1 ir_se_pass1 (same kernel, SE = true): expand + dw as above; writes h (N*Ho*Wo x E, T,
//          pixel-major) and per-tile channel sums (fp32, N * tiles x E). Moves: reads x, writes h.
//   se_mlp: one block per image: mean, FC1 + se_act, FC2 + gate -> gate (N x E fp32). Tiny.
//   pass 2 se_project: out = (h * gate) @ Wp^T + bias (+ x); 64 flattened pixels x KB channels per
//          block, 32 hidden channels per step. Moves: reads h (once per output-channel block) and
//          x for the residual, writes out.
//   Per-tile sums reduced in a fixed order make the SE result deterministic (no atomics).
//
// Template KS = 3, 5, 7 unrolls the depthwise taps; KS = 0 is the generic odd-k path.
// ptxas, sm_90: fused 110-128, SE pass 1 92-101, pass 2 64-96 registers/thread, no spills
// (per-variant numbers in inverted_residual.cu).
#pragma once

#include "dwpw_conv2d/tile_gemm.cuh"
#include "inverted_residual/inverted_residual.h"

namespace fastconv {
namespace ir {

constexpr int TP = tile::kRows;  // output pixels per block (tile padded to 64 rows)
constexpr int NT = tile::kThreads;
constexpr int EC = 64;           // hidden channels per chunk
constexpr int CX = 32;           // input channels per expand step
constexpr int BAND = 64;         // halo rows per expand GEMM
constexpr int CH = 32;           // hidden channels per step in SE pass 2

// Byte offsets are 32-bit on purpose: 64-bit ones cost the kernel registers (and spills).
struct Layout {
  int HH, WW, Q, Qpad;
  uint32_t qoff, pout, pres, wdw, hexp, xs, bx, scratch, ds, ps, cf;
  size_t bytes;
};

// Shared-memory layout of ir_fused_kernel / SE pass 1; host sizes the launch with the same code.
// Buffers in the union region are live in disjoint phases separated by __syncthreads():
// {xs, bx} (expand GEMM) -> scratch (expand accumulators) -> {ds, ps} (dw tile, Wp chunk) -> cf.
template <typename T, int KB, bool SE>
__host__ __device__ inline Layout make_layout(int k, int stride, int TH, int TW) {
  constexpr int LDX = tile::pad_ld<T>(CX), LDH = tile::pad_ld<T>(EC);
  Layout L;
  L.HH = (TH - 1) * stride + k;
  L.WW = (TW - 1) * stride + k;
  L.Q = L.HH * L.WW;
  L.Qpad = (L.Q + BAND - 1) / BAND * BAND;
  tile::SmemCarver s;
  L.qoff = s.take<int64_t>(L.Qpad);
  L.pout = s.take<int64_t>(TP);
  L.pres = s.take<int64_t>(TP);
  L.wdw = s.take<float>(EC * k * k);
  L.hexp = s.take<T>(size_t(L.Qpad) * LDH);
  const size_t u = s.off;
  size_t end = u;
  s.off = u;
  L.xs = s.take<T>(BAND * LDX);
  L.bx = s.take<T>(EC * LDX);
  end = end > s.off ? end : s.off;
  s.off = u;
  L.scratch = s.take<float>(BAND * tile::acc_ld(EC));
  end = end > s.off ? end : s.off;
  s.off = u;
  L.ds = s.take<T>(TP * LDH);
  L.ps = s.take<T>(SE ? 0 : KB * LDH);
  end = end > s.off ? end : s.off;
  s.off = u;
  L.cf = s.take<float>(SE ? 0 : TP * tile::acc_ld(KB));
  end = end > s.off ? end : s.off;
  L.bytes = end;
  return L;
}

// One kernel for both modes: SE = false fuses the project GEMM, SE = true is pass 1 (writes h and
// per-tile sums instead). KB is ignored when SE.
template <typename T, int KS, int KB, bool SE>
__global__ void __launch_bounds__(NT, 2) ir_fused_kernel(const IrParams p) {
  constexpr int LDX = tile::pad_ld<T>(CX), LDH = tile::pad_ld<T>(EC);
  constexpr int LDS = tile::acc_ld(EC), LDC = tile::acc_ld(KB);
  const int ksz = KS > 0 ? KS : p.k;
  const int kk = ksz * ksz;
  const int s = p.stride;
  extern __shared__ __align__(128) unsigned char smem[];
  const Layout L = make_layout<T, KB, SE>(ksz, s, p.TH, p.TW);
  int64_t* qoff = reinterpret_cast<int64_t*>(smem + L.qoff);
  int64_t* pout = reinterpret_cast<int64_t*>(smem + L.pout);
  int64_t* pres = reinterpret_cast<int64_t*>(smem + L.pres);
  float* wdw = reinterpret_cast<float*>(smem + L.wdw);
  T* hexp = reinterpret_cast<T*>(smem + L.hexp);
  T* xs = reinterpret_cast<T*>(smem + L.xs);
  T* bx = reinterpret_cast<T*>(smem + L.bx);
  float* scratch = reinterpret_cast<float*>(smem + L.scratch);
  T* ds = reinterpret_cast<T*>(smem + L.ds);
  T* ps = reinterpret_cast<T*>(smem + L.ps);
  float* cf = reinterpret_cast<float*>(smem + L.cf);

  const T* __restrict__ we = static_cast<const T*>(p.we);
  const T* __restrict__ wd = static_cast<const T*>(p.wd);
  const T* __restrict__ wp = static_cast<const T*>(p.wp);
  const T* __restrict__ be = static_cast<const T*>(p.be);
  const T* __restrict__ bd = static_cast<const T*>(p.bd);
  const int tid = threadIdx.x;
  const int nkb = SE ? 1 : (p.K + KB - 1) / KB;
  const int kb = blockIdx.x % nkb;
  const int tile_id = blockIdx.x / nkb;  // (n * tiles_h + th) * tiles_w + tw
  const int tiles_img = p.tiles_h * p.tiles_w;
  const int n = tile_id / tiles_img;
  const int t_in = tile_id - n * tiles_img;
  const int th = t_in / p.tiles_w, tw = t_in - th * p.tiles_w;
  const int ho0 = th * p.TH, wo0 = tw * p.TW;
  const int hi_org = ho0 * s - p.pad, wi_org = wo0 * s - p.pad;
  const int k0 = kb * KB;
  const T* __restrict__ xn = static_cast<const T*>(p.x) + n * p.xs[0];

  // Halo pixel q -> offset inside image n, or -1 outside the image (or past the halo).
  for (int q = tid; q < L.Qpad; q += NT) {
    int64_t off = -1;
    if (q < L.Q) {
      const int qh = q / L.WW, qw = q - qh * L.WW;
      const int hi = hi_org + qh, wi = wi_org + qw;
      if (unsigned(hi) < unsigned(p.H) && unsigned(wi) < unsigned(p.W)) off = hi * p.xs[2] + wi * p.xs[3];
    }
    qoff[q] = off;
  }
  // Output pixel p -> out offset (fused) or h row (SE), and residual offset; -1 when masked.
  if (tid < TP) {
    const int ph = tid / p.TW, pw = tid - ph * p.TW;
    const int ho = ho0 + ph, wo = wo0 + pw;
    const bool ok = tid < p.TH * p.TW && ho < p.Ho && wo < p.Wo;
    if (SE) pout[tid] = ok ? (int64_t(n) * p.Ho + ho) * p.Wo + wo : -1;
    else pout[tid] = ok ? n * p.os[0] + ho * p.os[2] + wo * p.os[3] : -1;
    pres[tid] = ok ? n * p.xs[0] + ho * p.xs[2] + wo * p.xs[3] : -1;
  }

  tile::TileAcc<T, (SE ? 32 : KB)> acc_p;
  if constexpr (!SE) acc_p.zero();

  for (int e0 = 0; e0 < p.E; e0 += EC) {
    {  // dw weights (E, k*k) contiguous: the chunk is one run. Last read before the previous
       // chunk's final barrier, first read after this chunk's expand barriers.
      const int64_t base = int64_t(e0) * kk, lim = int64_t(p.E) * kk;
      for (int i = tid; i < EC * kk; i += NT) wdw[i] = base + i < lim ? to_float(wd[base + i]) : 0.f;
    }
    __syncthreads();  // qoff/pout ready (first chunk); the previous chunk's readers of ds/ps are done

    if (we != nullptr) {
      for (int b0 = 0; b0 < L.Qpad; b0 += BAND) {
        tile::TileAcc<T, EC> acc_e;
        acc_e.zero();
        for (int c0 = 0; c0 < p.C; c0 += CX) {
          for (int i = tid; i < BAND * CX; i += NT) {
            const int cl = p.nhwc ? i % CX : i / BAND;
            const int r = p.nhwc ? i / CX : i % BAND;
            const int c = c0 + cl;
            const int64_t off = qoff[b0 + r];
            xs[r * LDX + cl] = (off >= 0 && c < p.C) ? xn[off + c * p.xs[1]] : from_float<T>(0.f);
          }
          for (int i = tid; i < EC * CX; i += NT) {
            const int e = i / CX, cl = i - e * CX;
            const int eg = e0 + e, c = c0 + cl;
            bx[e * LDX + cl] = (eg < p.E && c < p.C) ? we[int64_t(eg) * p.C + c] : from_float<T>(0.f);
          }
          __syncthreads();
          acc_e.template mma<CX / 16>(xs, LDX, bx, LDX);
          __syncthreads();  // xs/bx reused next step; scratch aliases them
        }
        acc_e.store(scratch, LDS);
        __syncthreads();
        for (int i = tid; i < BAND * EC; i += NT) {
          const int r = i / EC, e = i - r * EC;
          const int eg = e0 + e;
          float v = scratch[r * LDS + e];
          if (be != nullptr && eg < p.E) v += to_float(be[eg]);
          // Halo pixels outside the image are the depthwise conv's zero padding of h.
          hexp[(b0 + r) * LDH + e] = from_float<T>(qoff[b0 + r] >= 0 ? apply_act(v, p.act) : 0.f);
        }
        __syncthreads();  // next band's xs aliases scratch; dw below reads hexp
      }
    } else {
      for (int i = tid; i < L.Qpad * EC; i += NT) {
        const int e = p.nhwc ? i % EC : i / L.Qpad;
        const int q = p.nhwc ? i / EC : i % L.Qpad;
        const int eg = e0 + e;
        const int64_t off = qoff[q];
        hexp[q * LDH + e] = (off >= 0 && eg < p.E) ? xn[off + eg * p.xs[1]] : from_float<T>(0.f);
      }
      __syncthreads();
    }

    // Depthwise from the halo buffer; ds/ps alias the expand buffers (all readers passed a barrier).
    for (int i = tid; i < TP * EC; i += NT) {
      const int px = i / EC, e = i - px * EC;
      const int eg = e0 + e;
      float v = 0.f;
      if (pout[px] >= 0 && eg < p.E) {
        const int ph = px / p.TW, pw = px - ph * p.TW;
        const float* wk = wdw + e * kk;
        float acc = bd != nullptr ? to_float(bd[eg]) : 0.f;
        // ksz is a compile-time constant when KS > 0, so these loops unroll fully.
#pragma unroll
        for (int ky = 0; ky < ksz; ++ky) {
          const int qrow = (ph * s + ky) * L.WW + pw * s;
#pragma unroll
          for (int kx = 0; kx < ksz; ++kx) {
            acc = fmaf(to_float(hexp[(qrow + kx) * LDH + e]), wk[ky * ksz + kx], acc);
          }
        }
        v = apply_act(acc, p.act);
      }
      ds[px * LDH + e] = from_float<T>(v);
    }
    if constexpr (!SE) {
      for (int i = tid; i < KB * EC; i += NT) {
        const int kl = i / EC, e = i - kl * EC;
        const int ko = k0 + kl, eg = e0 + e;
        ps[kl * LDH + e] = (ko < p.K && eg < p.E) ? wp[int64_t(ko) * p.E + eg] : from_float<T>(0.f);
      }
    }
    __syncthreads();

    if constexpr (!SE) {
      acc_p.template mma<EC / 16>(ds, LDH, ps, LDH);
    } else {
      T* __restrict__ hbuf = static_cast<T*>(p.hbuf);
      for (int i = tid; i < TP * EC; i += NT) {
        const int px = i / EC, e = i - px * EC;
        const int64_t row = pout[px];
        if (row >= 0 && e0 + e < p.E) hbuf[row * p.E + e0 + e] = ds[px * LDH + e];
      }
      if (tid < EC && e0 + tid < p.E) {
        float sum = 0.f;
        for (int px = 0; px < TP; ++px)
          if (pout[px] >= 0) sum += to_float(ds[px * LDH + tid]);
        p.partial[int64_t(tile_id) * p.E + e0 + tid] = sum;
      }
    }
    // The next chunk's first barrier (after the wdw load, which nobody reads here) orders these
    // reads of ds/ps before the expand phase overwrites them.
  }

  if constexpr (!SE) {
    __syncthreads();  // cf aliases ds/ps
    acc_p.store(cf, LDC);
    __syncthreads();
    tile::write_tile<T, KB>(cf, LDC, pout, pres, k0, p.K, static_cast<const T*>(p.bp), kNone,
                            p.residual ? static_cast<const T*>(p.x) : nullptr, p.xs[1], static_cast<T*>(p.out),
                            p.os[1], p.nhwc);
  }
}

// SE squeeze/excite MLP, one block per image: gate[n] = gate_act(W2 se_act(W1 mean_n(h) + b1) + b2).
template <typename T>
__global__ void __launch_bounds__(NT) se_mlp_kernel(const SeParams p) {
  extern __shared__ __align__(16) float sm[];
  float* mean = sm;        // E
  float* z = sm + p.E;     // S
  const T* __restrict__ w1 = static_cast<const T*>(p.w1);
  const T* __restrict__ b1 = static_cast<const T*>(p.b1);
  const T* __restrict__ w2 = static_cast<const T*>(p.w2);
  const T* __restrict__ b2 = static_cast<const T*>(p.b2);
  const int n = blockIdx.x, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  for (int e = tid; e < p.E; e += NT) {
    float acc = 0.f;
    for (int t = 0; t < p.tiles; ++t) acc += p.partial[(int64_t(n) * p.tiles + t) * p.E + e];
    mean[e] = acc * p.inv_hw;
  }
  __syncthreads();
  for (int j = warp; j < p.S; j += NT / 32) {
    float acc = 0.f;
    for (int e = lane; e < p.E; e += 32) acc = fmaf(to_float(w1[int64_t(j) * p.E + e]), mean[e], acc);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (lane == 0) z[j] = apply_act(acc + (b1 ? to_float(b1[j]) : 0.f), p.se_act);
  }
  __syncthreads();
  for (int e = tid; e < p.E; e += NT) {
    float acc = b2 ? to_float(b2[e]) : 0.f;
    for (int j = 0; j < p.S; ++j) acc = fmaf(to_float(w2[int64_t(e) * p.S + j]), z[j], acc);
    p.gate[int64_t(n) * p.E + e] = apply_act(acc, p.se_gate);
  }
}

struct ProjLayout {
  uint32_t a, b, cf, pout, pres, pn;
  size_t bytes;
};

template <typename T, int KB>
__host__ __device__ inline ProjLayout make_proj_layout() {
  constexpr int LDA = tile::pad_ld<T>(CH);
  tile::SmemCarver s;
  ProjLayout L;
  L.a = s.take<T>(TP * LDA);
  L.b = s.take<T>(KB * LDA);
  const size_t ab_end = s.off;
  s.off = 0;
  L.cf = s.take<float>(TP * tile::acc_ld(KB));
  s.at_least(ab_end);
  L.pout = s.take<int64_t>(TP);
  L.pres = s.take<int64_t>(TP);
  L.pn = s.take<int>(TP);
  L.bytes = s.off;
  return L;
}

// SE pass 2: out[m, :] = (h[m, :] * gate[n(m), :]) @ Wp^T + bp (+ x); 64 flattened pixels x KB.
template <typename T, int KB>
__global__ void __launch_bounds__(NT, 2) se_project_kernel(const IrParams p) {
  constexpr int LDA = tile::pad_ld<T>(CH), LDC = tile::acc_ld(KB);
  extern __shared__ __align__(128) unsigned char smem[];
  const ProjLayout L = make_proj_layout<T, KB>();
  T* As = reinterpret_cast<T*>(smem + L.a);
  T* Bs = reinterpret_cast<T*>(smem + L.b);
  float* cf = reinterpret_cast<float*>(smem + L.cf);
  int64_t* pout = reinterpret_cast<int64_t*>(smem + L.pout);
  int64_t* pres = reinterpret_cast<int64_t*>(smem + L.pres);
  int* pn = reinterpret_cast<int*>(smem + L.pn);
  const T* __restrict__ hbuf = static_cast<const T*>(p.hbuf);
  const T* __restrict__ wp = static_cast<const T*>(p.wp);
  const int tid = threadIdx.x;
  const int nkb = (p.K + KB - 1) / KB;
  const int kb = blockIdx.x % nkb;
  const int m0 = (blockIdx.x / nkb) * TP;
  const int k0 = kb * KB;
  if (tid < TP) {
    const int m = m0 + tid;
    if (m < p.M) {
      const int hw = p.Ho * p.Wo;
      const int n = m / hw, r = m - n * hw;
      const int ho = r / p.Wo, wo = r - ho * p.Wo;
      pn[tid] = n;
      pout[tid] = n * p.os[0] + ho * p.os[2] + wo * p.os[3];
      pres[tid] = n * p.xs[0] + ho * p.xs[2] + wo * p.xs[3];
    } else {
      pn[tid] = -1;
      pout[tid] = -1;
      pres[tid] = -1;
    }
  }
  __syncthreads();
  tile::TileAcc<T, KB> acc;
  acc.zero();
  for (int e0 = 0; e0 < p.E; e0 += CH) {
    for (int i = tid; i < TP * CH; i += NT) {
      const int px = i / CH, e = i - px * CH;
      const int eg = e0 + e, n = pn[px];
      float v = 0.f;
      if (n >= 0 && eg < p.E) v = to_float(hbuf[int64_t(m0 + px) * p.E + eg]) * p.gate[int64_t(n) * p.E + eg];
      As[px * LDA + e] = from_float<T>(v);
    }
    for (int i = tid; i < KB * CH; i += NT) {
      const int kl = i / CH, e = i - kl * CH;
      const int ko = k0 + kl, eg = e0 + e;
      Bs[kl * LDA + e] = (ko < p.K && eg < p.E) ? wp[int64_t(ko) * p.E + eg] : from_float<T>(0.f);
    }
    __syncthreads();
    acc.template mma<CH / 16>(As, LDA, Bs, LDA);
    __syncthreads();
  }
  acc.store(cf, LDC);
  __syncthreads();
  tile::write_tile<T, KB>(cf, LDC, pout, pres, k0, p.K, static_cast<const T*>(p.bp), kNone,
                          p.residual ? static_cast<const T*>(p.x) : nullptr, p.xs[1], static_cast<T*>(p.out),
                          p.os[1], p.nhwc);
}

}  // namespace ir
}  // namespace fastconv
