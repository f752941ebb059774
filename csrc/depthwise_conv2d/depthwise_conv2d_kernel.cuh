// Kernel: fastconv::depthwise_conv2d forward, built on the shared stages (csrc/stages/depthwise.cuh).
//
// depthwise_conv2d_fwd_kernel<T, KS, S, TILE>: grid (ceil(Ho/TILE) * ceil(Wo/TILE), chunks, N),
// NT = TILE * TILE threads. A CTA computes one TILE x TILE output tile of image n for one chunk of
// cc channels (cc a multiple of 8, <= 32):
//   1. the input halo ((TILE-1)*s + (k-1)*d + 1)^2 x cc is staged in shared memory (NHWC: cp.async,
//      16-byte when C and the base allow it; NCHW: synchronous loads, coalesced along w), zero outside
//      the image (the conv's zero padding) and past C; the cc x k*k taps and the bias as fp32;
//   2. Depthwise::compute: each thread owns 4 adjacent outputs x 8 channels in fp32 registers and slides
//      along the staged input row (KS, S compile-time: 3/5/7 x stride 1/2, dilation 1; KS = S = 0:
//      any k, stride, dilation, e.g. the 9..31 kernels of large-kernel nets);
//   3. bias + act in registers, stored straight from registers: NHWC with C % 8 == 0 as 16-byte
//      vectors (8 channels of one pixel), else scalar stores.
// Fuses: zero padding, bias, activation. Per CTA (fp16, k=3, s=1, TILE 16, cc 32): 18 x 18 x 32 x 2 B
// = 20.7 KB halo + 1.2 KB taps; 256 threads x 32 fp32 accumulators. Budget per item and filter row:
// 2k LDS.128 (weights) + 3 + k LDS.128 (inputs), 32k FFMA.
#pragma once

#include "depthwise_conv2d/depthwise_conv2d.h"
#include "stages/depthwise.cuh"

namespace fastconv {
namespace dwconv {

constexpr int RW = 4;  // outputs per thread along W (the stage's sliding-window strip)

struct Layout {
  int ih, iw;
  size_t in, wt, bias, bytes;
};

__host__ __device__ inline size_t align128(size_t v) { return (v + 127) & ~size_t(127); }

__host__ __device__ inline Layout make_layout(int elem, int tile, int k, int s, int d, int cc) {
  Layout L;
  L.ih = stages::halo_extent(tile, k, s, d);
  L.iw = L.ih;
  L.in = 0;
  L.wt = align128(size_t(L.ih) * L.iw * cc * elem);
  L.bias = L.wt + size_t(k) * k * cc * elem;
  L.bytes = align128(L.bias + size_t(cc) * sizeof(float));
  return L;
}

// Largest channel chunk (multiple of 8, <= 32, <= C rounded up) whose halo + taps fit `budget` bytes.
__host__ __device__ inline int pick_cc(int elem, int tile, int C, int k, int s, int d, size_t budget) {
  int cc = (C + 7) / 8 * 8;
  cc = cc < 32 ? cc : 32;
  while (cc > 8 && make_layout(elem, tile, k, s, d, cc).bytes > budget) cc -= 8;
  return cc;
}

template <typename T, int KS, int S, int TILE>
__global__ void __launch_bounds__(TILE * TILE) depthwise_conv2d_fwd_kernel(const DepthwiseParams p) {
  constexpr int NT = TILE * TILE;
  using DW = stages::Depthwise<T, KS, S, TILE, TILE, RW, NT>;
  constexpr bool kFast = KS > 0 && S > 0;
  // Compile-time geometry on the fast path: halo pitch and smem offsets become constants.
  const int k = kFast ? KS : p.k, s = kFast ? S : p.stride, d = kFast ? 1 : p.dil;
  // pick_cc keeps cc in 8..32, so items <= NT: each thread has at most one item and the stage's item
  // loop runs once (the compiler drops its back edge and the loop-carried state).
  const int cc = p.cc;
  if (cc < 8 || cc > 32) __builtin_unreachable();
  extern __shared__ __align__(128) unsigned char smem[];
  const Layout L = make_layout(int(sizeof(T)), TILE, k, s, d, cc);
  T* in = reinterpret_cast<T*>(smem + L.in);
  T* wt = reinterpret_cast<T*>(smem + L.wt);
  float* bias = reinterpret_cast<float*>(smem + L.bias);

  // n and the chunk come straight from blockIdx.z / .y: uniform registers, so the sink's image
  // and channel base costs no per-thread register across the compute loop (as a quotient of a
  // runtime division it did, and pushed 3 variants into an 8-byte spill).
  const int ty = int(blockIdx.x) / p.tiles_w, tx = int(blockIdx.x) - ty * p.tiles_w;
  const int n = int(blockIdx.z), c0 = int(blockIdx.y) * cc;
  const int oy0 = ty * TILE, ox0 = tx * TILE;
  const T* x = static_cast<const T*>(p.x);
  DW::load_input(p.in_bytes, in, x, p.xs, n, oy0 * s - p.pad_h, ox0 * s - p.pad_w, p.H, p.W, L.ih, L.iw, c0, p.C, cc);
  DW::load_weights(wt, bias, static_cast<const T*>(p.w), static_cast<const T*>(p.b), c0, p.C, k * k, cc);
  stages::cp_async_commit();
  stages::cp_async_wait<0>();
  __syncthreads();

  T* out = static_cast<T*>(p.out) + int64_t(n) * p.os[0];
  DW::compute(in, wt, bias, p.act, k, s, d, L.iw, cc, [&](int row, int g, float (&v)[8]) {
    const int oy = oy0 + row / TILE, ox = ox0 + row % TILE;
    const int c = c0 + g * 8;
    if (oy >= p.Ho || ox >= p.Wo || c >= p.C) return;
    T* o = out + oy * p.os[2] + ox * p.os[3] + c * p.os[1];
    if (p.vec_out && c + 8 <= p.C) {
      stages::stg8<T>(o, v);
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i)
        if (c + i < p.C) o[i * p.os[1]] = from_float<T>(v[i]);
    }
  });
}

}  // namespace dwconv
}  // namespace fastconv
