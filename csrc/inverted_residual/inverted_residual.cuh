// Host launch code for the kernels in inverted_residual_kernel.cuh (kept apart so the kernels can also be
// compiled by a host-side emulation harness that has no CUDA runtime).
#pragma once

#include "inverted_residual/inverted_residual_kernel.cuh"

namespace fastconv {
namespace ir {

struct Device {
  int max_optin = 0, sms = 0;
};

inline Device device_info() {
  int dev = 0;
  Device d;
  C10_CUDA_CHECK(cudaGetDevice(&dev));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&d.max_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount, dev));
  return d;
}

template <typename T>
IrVariant checked_plan(IrParams& p, int mode, const Device& d) {
  const IrVariant v = plan<T>(p, mode, size_t(d.max_optin));
  TORCH_CHECK(v.smem > 0, "inverted_residual_cuda: ", p.C, " input channels with kernel size ", p.k, " and stride ",
              p.stride, " need more shared memory per block than the device allows");
  return v;
}

// Persistent launch: grid = min(work items, SMs x resident CTAs of this instantiation).
template <typename T, int MODE> void launch_mode(const IrParams& p, const IrVariant& v, const Device& d, cudaStream_t st) {
  dispatch<T, MODE>(v, [&](auto kernel) {
    if (v.smem > 48 * 1024)
      C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(v.smem)));
    int occ = 0;
    C10_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, kernel, NT, v.smem));
    const int64_t items = int64_t(p.tiles) * p.npass;
    const int64_t grid = std::min<int64_t>(items, int64_t(d.sms) * std::max(occ, 1));
    TORCH_CHECK(grid >= 1 && grid <= INT32_MAX, "inverted_residual_cuda: bad grid size ", grid);
    kernel<<<unsigned(grid), NT, v.smem, st>>>(p);
    FASTCONV_CHECK_LAUNCH();
  });
}

}  // namespace ir

template <typename T> int ir_se_tiles(IrParams p) {
  const ir::Device d = ir::device_info();
  ir::checked_plan<T>(p, ir::kSePass1, d);
  return p.tiles_h * p.tiles_w;
}

template <typename T> void launch_ir_fused(IrParams p, cudaStream_t stream) {
  const ir::Device d = ir::device_info();
  const ir::IrVariant v = ir::checked_plan<T>(p, ir::kFused, d);
  ir::launch_mode<T, ir::kFused>(p, v, d, stream);
}

template <typename T> void launch_ir_se(IrParams p, SeParams s, cudaStream_t stream) {
  const ir::Device d = ir::device_info();
  IrParams p1 = p;
  const ir::IrVariant v1 = ir::checked_plan<T>(p1, ir::kSePass1, d);
  TORCH_CHECK(p1.tiles_h * p1.tiles_w == s.tiles, "inverted_residual_cuda: SE tile count mismatch");
  ir::launch_mode<T, ir::kSePass1>(p1, v1, d, stream);
  s.imgs = ir::se_mlp_imgs(s.N, d.sms);
  const size_t mlp_smem = ir::se_mlp_smem(s.E, s.S, s.imgs);
  TORCH_CHECK(mlp_smem <= size_t(d.max_optin), "inverted_residual_cuda: SE with ", s.E, " + ", s.S,
              " channels needs too much shared memory");
  if (mlp_smem > 48 * 1024)
    C10_CUDA_CHECK(cudaFuncSetAttribute(ir::se_mlp_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(mlp_smem)));
  ir::se_mlp_kernel<T><<<unsigned(ir::se_mlp_grid(s.N, s.imgs)), ir::NT, mlp_smem, stream>>>(s);
  FASTCONV_CHECK_LAUNCH();
  const ir::IrVariant v2 = ir::checked_plan<T>(p, ir::kSePass2, d);
  ir::launch_mode<T, ir::kSePass2>(p, v2, d, stream);
}

}  // namespace fastconv
