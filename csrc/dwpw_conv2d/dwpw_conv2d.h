// Host-visible parameters of the fused depthwise -> pointwise kernel (see dwpw_conv2d.cuh).
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace fastconv {

struct DwpwParams {
  const void* x;       // (N, C, H, W), strides xs (NCHW or NHWC)
  const void* dw_w;    // (C, 1, k, k) contiguous
  const void* pw_w;    // (K, C, 1, 1) contiguous
  const void* dw_b;    // (C,) or nullptr
  const void* pw_b;    // (K,) or nullptr
  const void* res;     // (N, K, Ho, Wo) strides rs, or nullptr
  void* out;           // (N, K, Ho, Wo) strides os
  int N, C, H, W, K, Ho, Wo;
  int k, stride, pad, dil, dw_act, pw_act;
  int M;               // N * Ho * Wo output pixels (checked < 2^31 by the launcher)
  int64_t xs[4], rs[4], os[4];  // element strides in (n, c, h, w) order
  bool nhwc;           // x is channels_last
  // Filled by dwpw::plan (dwpw_conv2d_kernel.cuh), shared by the launcher and the host emulator:
  int tiles_h, tiles_w;  // spatial tiles per image (grid = N * tiles_h * tiles_w CTAs)
  int cc;                // depthwise channel chunk (8..64, divides 64): one halo buffer's depth
  int ca;                // channels of the depthwise result resident in shared memory (multiple of 64)
  int xbytes, wbytes;    // cp.async width for x halo rows / 1x1 weight rows (16, 8, 4; 0 = scalar)
  bool vec_out;          // 16-byte epilogue (NHWC out and residual, K % 8 == 0, aligned)
  size_t smem;           // dynamic shared memory per CTA
};

// Launches the kernel for element type T (float, __half, __nv_bfloat16) on `stream`.
template <typename T> void launch_dwpw_conv2d(const DwpwParams& p, cudaStream_t stream);

}  // namespace fastconv
