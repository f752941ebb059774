// Host-visible parameters of the fused pointwise -> depthwise kernel (see pwdw_conv2d_kernel.cuh).
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace fastconv {

struct PwdwParams {
  const void* x;       // (N, C, H, W), strides xs (NCHW or NHWC)
  const void* pw_w;    // (M, C, 1, 1) contiguous
  const void* dw_w;    // (M * mult, 1, k, k) contiguous
  const void* pw_b;    // (M,) or nullptr
  const void* dw_b;    // (M * mult,) or nullptr
  const void* res;     // shaped like out, strides rs, or nullptr
  void* out;           // (N, M * mult [+ M with concat], Ho, Wo), strides os
  int N, C, H, W, M, mult, Ho, Wo;
  int k, stride, pad, dil, pw_act, dw_act;
  bool concat;         // h in out[:, :M], y in out[:, M:] (stride 1, Ho == H, Wo == W)
  int64_t xs[4], rs[4], os[4];  // element strides in (n, c, h, w) order
  // Filled by pwdw::plan (pwdw_conv2d_kernel.cuh), shared by the launcher and the host emulator:
  int tiles_h, tiles_w, mtiles;  // grid = (N * tiles_h * tiles_w, mtiles) CTAs
  int xbytes, wbytes;            // cp.async width for x halo rows / 1x1 weight rows (16, 8, 4; 0 = scalar)
  size_t smem;                   // dynamic shared memory per CTA
};

// Launches the kernel for element type T (float, __half, __nv_bfloat16) on `stream`.
template <typename T> void launch_pwdw_conv2d(const PwdwParams& p, cudaStream_t stream);

}  // namespace fastconv
