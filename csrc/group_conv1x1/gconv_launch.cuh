// Host launch code for gconv_kernel.cuh (kept apart so the emulator compiles the kernels without a
// CUDA runtime): plan the tiling for this device, pick the instantiation, opt in to > 48 KB smem.
#pragma once

#include "group_conv1x1/gconv_kernel.cuh"

namespace fastconv {
namespace gconv {

template <typename T, bool DW, bool NHWC, int S> static void launch_cfg(const Params& p, cudaStream_t stream) {
  auto kernel = gconv_kernel<T, DW, NHWC, S>;
  if (p.smem > 48 * 1024)
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(p.smem)));
  const Grid g = grid_of<T>(p, DW);
  kernel<<<dim3(unsigned(g.x), unsigned(g.y)), NT, p.smem, stream>>>(p);
  FASTCONV_CHECK_LAUNCH();
}

template <typename T, bool DW, bool NHWC> void launch(const Params& params, cudaStream_t stream) {
  Params p = params;
  int dev = 0, max_optin = 0;
  C10_CUDA_CHECK(cudaGetDevice(&dev));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&max_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  const char* why = plan<T>(p, DW, NHWC, size_t(max_optin));
  TORCH_CHECK(why == nullptr, "gconv: ", why ? why : "", " (the device allows ", max_optin, " bytes per block)");
  if (!DW) launch_cfg<T, false, NHWC, 1>(p, stream);
  else if (p.stride == 1) launch_cfg<T, true, NHWC, 1>(p, stream);
  else launch_cfg<T, true, NHWC, 2>(p, stream);
}

#define FASTCONV_GCONV_INSTANTIATE(T)                                   \
  template void launch<T, false, false>(const Params&, cudaStream_t); \
  template void launch<T, false, true>(const Params&, cudaStream_t);  \
  template void launch<T, true, false>(const Params&, cudaStream_t);  \
  template void launch<T, true, true>(const Params&, cudaStream_t);

}  // namespace gconv
}  // namespace fastconv
