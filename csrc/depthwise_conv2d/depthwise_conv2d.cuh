// Host launch code for depthwise_conv2d_kernel.cuh (kept apart so the kernel also compiles in the
// host emulator, which has no CUDA runtime): tile and channel-chunk choice, shared-memory checks,
// the (kernel size, stride) -> instantiation switch.
#pragma once

#include "depthwise_conv2d/depthwise_conv2d_kernel.cuh"

namespace fastconv {
namespace dwconv {

template <typename T, int KS, int S, int TILE>
void launch_cfg(DepthwiseParams& p, cudaStream_t stream) {
  int dev = 0, max_optin = 0;
  C10_CUDA_CHECK(cudaGetDevice(&dev));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&max_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  // About 100 KB keeps two CTAs per SM on sm_80/sm_90 (large kernels shrink the chunk first).
  const size_t budget = size_t(max_optin) < size_t(100) * 1024 ? size_t(max_optin) : size_t(100) * 1024;
  p.cc = pick_cc(int(sizeof(T)), TILE, p.C, p.k, p.stride, p.dil, budget);
  const Layout L = make_layout(int(sizeof(T)), TILE, p.k, p.stride, p.dil, p.cc);
  TORCH_CHECK(L.bytes <= size_t(max_optin), "depthwise_conv2d_cuda: kernel ", p.k, " stride ", p.stride, " dilation ",
              p.dil, " needs ", L.bytes, " bytes of shared memory per block, the device allows ", max_optin);
  p.chunks = (p.C + p.cc - 1) / p.cc;
  p.tiles_w = (p.Wo + TILE - 1) / TILE;
  const int64_t tiles = int64_t((p.Ho + TILE - 1) / TILE) * p.tiles_w;
  TORCH_CHECK(tiles <= INT32_MAX && p.chunks <= 65535 && p.N <= 65535, "depthwise_conv2d_cuda: problem too large for the grid");
  auto kernel = depthwise_conv2d_fwd_kernel<T, KS, S, TILE>;
  if (L.bytes > 48 * 1024)
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(L.bytes)));
  kernel<<<dim3(unsigned(tiles), unsigned(p.chunks), unsigned(p.N)), TILE * TILE, L.bytes, stream>>>(p);
  FASTCONV_CHECK_LAUNCH();
}

template <typename T, int TILE>
void launch_tile(DepthwiseParams& p, cudaStream_t stream) {
  const int key = p.dil == 1 ? p.k * 10 + p.stride : 0;
  switch (key) {
    case 31: launch_cfg<T, 3, 1, TILE>(p, stream); break;
    case 32: launch_cfg<T, 3, 2, TILE>(p, stream); break;
    case 51: launch_cfg<T, 5, 1, TILE>(p, stream); break;
    case 52: launch_cfg<T, 5, 2, TILE>(p, stream); break;
    case 71: launch_cfg<T, 7, 1, TILE>(p, stream); break;
    case 72: launch_cfg<T, 7, 2, TILE>(p, stream); break;
    default: launch_cfg<T, 0, 0, TILE>(p, stream); break;  // any k / stride / dilation
  }
}

}  // namespace dwconv

// 16 x 16 tiles (256 threads) for maps of 16 and more; 8 x 8 (64 threads) for the small late-stage
// maps, where a 16 x 16 tile would leave most of the CTA idle.
template <typename T> void launch_depthwise_conv2d(DepthwiseParams& p, cudaStream_t stream) {
  if (p.Ho > 8 || p.Wo > 8) dwconv::launch_tile<T, 16>(p, stream);
  else dwconv::launch_tile<T, 8>(p, stream);
}

}  // namespace fastconv
