// Host-visible parameters of the depthwise_conv2d forward kernel (see depthwise_conv2d_kernel.cuh).
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace fastconv {

struct DepthwiseParams {
  const void* x;     // (N, C, H, W), strides xs (NCHW or NHWC)
  const void* w;     // (C, 1, k, k) contiguous
  const void* b;     // (C,) or nullptr
  void* out;         // (N, C, Ho, Wo), strides os (x's memory format)
  int N, C, H, W, Ho, Wo;
  int k, stride, pad_h, pad_w, dil, act;
  int cc;            // channels per CTA (a multiple of 8)
  int chunks;        // ceil(C / cc)
  int tiles_w;       // output tiles along W
  int in_bytes;      // cp.async width of the halo copy (16/8/4), 0 = synchronous scalar loads (NCHW)
  bool vec_out;      // 16-byte output stores (NHWC, C % 8 == 0, aligned)
  int64_t xs[4], os[4];  // element strides in (n, c, h, w) order
};

// Launches the forward kernel for element type T (float, __half, __nv_bfloat16) on `stream`;
// fills cc, chunks, tiles_w (the launcher's tile choice).
template <typename T> void launch_depthwise_conv2d(DepthwiseParams& p, cudaStream_t stream);

}  // namespace fastconv
