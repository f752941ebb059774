// Host-visible parameters of the inverted residual kernels (see inverted_residual_kernel.cuh).
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace fastconv {

struct IrParams {
  const void* x;     // (N, C, H, W), strides xs (NCHW or NHWC)
  const void* we;    // expand (E, C, 1, 1) contiguous, or nullptr (no expansion: E == C, h = x)
  const void* wd;    // depthwise (E, 1, k, k) contiguous
  const void* wp;    // project (K, E, 1, 1) contiguous
  const void* be;    // (E,) or nullptr
  const void* bd;    // (E,) or nullptr
  const void* bp;    // (K,) or nullptr
  void* out;         // (N, K, Ho, Wo), strides os
  void* hbuf;        // SE pass 1 output h: (N * Ho * Wo, E) row-major (pixel-major), element type T
  float* partial;    // SE pass 1 output: (N * tiles_h * tiles_w, E) per-tile channel sums of h
  const float* gate; // SE pass 2 input: (N, E) gate values
  int N, C, H, W, E, K, Ho, Wo;
  int k, stride, pad, act;
  int tiles_h, tiles_w, tiles;  // output tiles (TH x TW fixed by the kernel instantiation); tiles = N th tw
  int npass;                    // project passes per tile: ceil(K / NB) (1 whenever K fits one CTA)
  int Cp;                       // C rounded up to 16: the expand GEMM's reduction depth
  int xbytes, webytes, wpbytes, hbytes;  // cp.async widths for x rows, We rows, Wp rows, h rows (0: scalar)
  int64_t xs[4], os[4];         // element strides, (n, c, h, w) order
  bool nhwc, residual, vec_out; // vec_out: 16-byte epilogue (NHWC, K % 8 == 0, aligned pointers)
};

struct SeParams {
  const float* partial;  // (N * tiles, E)
  const void* w1;        // (S, E)
  const void* b1;        // (S,) or nullptr
  const void* w2;        // (E, S)
  const void* b2;        // (E,) or nullptr
  float* gate;           // (N, E)
  int N, E, S, tiles;
  int imgs;              // images per se_mlp block, 1 .. ir::kSeImgs (ir::se_mlp_imgs)
  float inv_hw;
  int se_act, se_gate;
};

// Fused kernel (no SE), or the SE path's pass 1 + MLP + pass 2. p.tiles_* / p.npass / widths are
// filled in by the launcher (ir::plan, inverted_residual_kernel.cuh).
template <typename T> int ir_se_tiles(IrParams p);  // SE pass 1 tiles per image (partial-sum rows)
template <typename T> void launch_ir_fused(IrParams p, cudaStream_t stream);
template <typename T> void launch_ir_se(IrParams p, SeParams s, cudaStream_t stream);

}  // namespace fastconv
