// Host-visible parameters of the inverted residual kernels (see inverted_residual.cuh).
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
  int TH, TW, tiles_h, tiles_w;  // output tile (TH * TW <= 64) and tiles per image
  int M;                         // N * Ho * Wo
  int64_t xs[4], os[4];          // element strides, (n, c, h, w) order
  bool nhwc, residual;
};

struct SeParams {
  const float* partial;  // (N * tiles, E)
  const void* w1;        // (S, E)
  const void* b1;        // (S,) or nullptr
  const void* w2;        // (E, S)
  const void* b2;        // (E,) or nullptr
  float* gate;           // (N, E)
  int N, E, S, tiles;
  float inv_hw;
  int se_act, se_gate;
};

// Shared memory bytes the fused / SE-pass-1 kernel needs for this tile shape (0 if it cannot run).
template <typename T> size_t ir_smem_bytes(const IrParams& p, bool se);
template <typename T> void launch_ir_fused(const IrParams& p, cudaStream_t stream);
template <typename T> void launch_ir_se(const IrParams& p, const SeParams& s, cudaStream_t stream);

}  // namespace fastconv
