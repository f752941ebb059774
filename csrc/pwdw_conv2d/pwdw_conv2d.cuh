// Host launch code for the kernel in pwdw_conv2d_kernel.cuh (kept apart so the kernel can also be
// compiled by the host emulation harness, which has no CUDA runtime).
#pragma once

#include "pwdw_conv2d/pwdw_conv2d_kernel.cuh"

namespace fastconv {
namespace pwdw {

template <typename T, int KS, int S>
void launch_cfg(const PwdwParams& p, cudaStream_t stream) {
  auto kernel = pwdw_conv2d_kernel<T, KS, S>;
  if (p.smem > 48 * 1024)
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(p.smem)));
  const int64_t blocks = int64_t(p.N) * p.tiles_h * p.tiles_w;
  TORCH_CHECK(blocks <= INT32_MAX && p.mtiles <= 65535, "pwdw_conv2d_cuda: problem too large (", blocks, " x ",
              p.mtiles, " blocks)");
  kernel<<<dim3(unsigned(blocks), unsigned(p.mtiles)), NT, p.smem, stream>>>(p);
  FASTCONV_CHECK_LAUNCH();
}

template <typename T, int S>
void launch_k(const PwdwParams& p, cudaStream_t stream) {
  switch (p.k) {
    case 3: launch_cfg<T, 3, S>(p, stream); break;
    case 5: launch_cfg<T, 5, S>(p, stream); break;
    default: launch_cfg<T, 7, S>(p, stream); break;
  }
}

}  // namespace pwdw

template <typename T> void launch_pwdw_conv2d(const PwdwParams& params, cudaStream_t stream) {
  PwdwParams p = params;
  int dev = 0, max_optin = 0;
  C10_CUDA_CHECK(cudaGetDevice(&dev));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&max_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  const char* why = pwdw::plan<T>(p, size_t(max_optin));
  TORCH_CHECK(why == nullptr, "pwdw_conv2d_cuda: kernel size ", p.k, ", stride ", p.stride, ", dilation ", p.dil,
              ": ", why ? why : "", " (the device allows ", max_optin, " bytes per block)");
  if (!pwdw::fast_path(p)) pwdw::launch_cfg<T, 0, 0>(p, stream);
  else if (p.stride == 1) pwdw::launch_k<T, 1>(p, stream);
  else pwdw::launch_k<T, 2>(p, stream);
}

}  // namespace fastconv
