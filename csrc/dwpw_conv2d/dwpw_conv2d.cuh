// Host launch code for the kernels in dwpw_conv2d_kernel.cuh (kept apart so the kernels can also be
// compiled by a host-side emulation harness that has no CUDA runtime).
#pragma once

#include "dwpw_conv2d/dwpw_conv2d_kernel.cuh"

namespace fastconv {
namespace dwpw {

template <typename T, int KS, int BN>
void launch_cfg(const DwpwParams& p, cudaStream_t stream) {
  const Layout L = make_layout<T, BN>(p.k);
  int dev = 0, max_optin = 0;
  C10_CUDA_CHECK(cudaGetDevice(&dev));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&max_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  TORCH_CHECK(L.bytes <= size_t(max_optin), "dwpw_conv2d_cuda: kernel size ", p.k, " needs ", L.bytes,
              " bytes of shared memory per block, the device allows ", max_optin);
  auto kernel = dwpw_conv2d_kernel<T, KS, BN>;
  if (L.bytes > 48 * 1024)
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(L.bytes)));
  const int64_t blocks = int64_t((p.M + TP - 1) / TP) * ((p.K + BN - 1) / BN);
  TORCH_CHECK(blocks <= INT32_MAX, "dwpw_conv2d_cuda: problem too large (", blocks, " blocks)");
  kernel<<<unsigned(blocks), NT, L.bytes, stream>>>(p);
  FASTCONV_CHECK_LAUNCH();
}

template <typename T, int BN>
void launch_k(const DwpwParams& p, cudaStream_t stream) {
  switch (p.k) {
    case 3: launch_cfg<T, 3, BN>(p, stream); break;
    case 5: launch_cfg<T, 5, BN>(p, stream); break;
    case 7: launch_cfg<T, 7, BN>(p, stream); break;
    default: launch_cfg<T, 0, BN>(p, stream); break;
  }
}

}  // namespace dwpw

// BN = 128 halves the depthwise recomputation for wide layers, but on small late-stage feature maps
// it leaves SMs idle; fall back to 64 when the grid would not cover the GPU twice.
template <typename T> void launch_dwpw_conv2d(const DwpwParams& p, cudaStream_t stream) {
  int dev = 0, sms = 0;
  C10_CUDA_CHECK(cudaGetDevice(&dev));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  const int64_t tiles = (p.M + dwpw::TP - 1) / dwpw::TP;
  if (p.K <= 64 || tiles * ((p.K + 127) / 128) < 2 * int64_t(sms)) dwpw::launch_k<T, 64>(p, stream);
  else dwpw::launch_k<T, 128>(p, stream);
}

}  // namespace fastconv
