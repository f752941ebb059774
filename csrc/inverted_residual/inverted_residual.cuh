// Host launch code for the kernels in inverted_residual_kernel.cuh (kept apart so the kernels can also be
// compiled by a host-side emulation harness that has no CUDA runtime).
#pragma once

#include "inverted_residual/inverted_residual_kernel.cuh"

namespace fastconv {
namespace ir {

// ---------------------------------------------------------------------------------------------
// launch helpers
// ---------------------------------------------------------------------------------------------

inline int max_smem_optin() {
  int dev = 0, v = 0;
  C10_CUDA_CHECK(cudaGetDevice(&dev));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  return v;
}

template <typename K>
void launch_dyn(K kernel, int64_t blocks, size_t smem, cudaStream_t stream, const IrParams& p, const char* what) {
  TORCH_CHECK(smem <= size_t(max_smem_optin()), "inverted_residual_cuda: ", what, " needs ", smem,
              " bytes of shared memory per block, more than the device allows");
  TORCH_CHECK(blocks >= 1 && blocks <= INT32_MAX, "inverted_residual_cuda: bad grid size ", blocks);
  if (smem > 48 * 1024)
    C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  kernel<<<unsigned(blocks), NT, smem, stream>>>(p);
  FASTCONV_CHECK_LAUNCH();
}

template <typename T, int KB, bool SE>
void launch_fused_k(const IrParams& p, cudaStream_t stream) {
  const Layout L = make_layout<T, KB, SE>(p.k, p.stride, p.TH, p.TW);
  const int64_t blocks = int64_t(p.N) * p.tiles_h * p.tiles_w * (SE ? 1 : (p.K + KB - 1) / KB);
  switch (p.k) {
    case 3: launch_dyn(ir_fused_kernel<T, 3, KB, SE>, blocks, L.bytes, stream, p, "the fused kernel"); break;
    case 5: launch_dyn(ir_fused_kernel<T, 5, KB, SE>, blocks, L.bytes, stream, p, "the fused kernel"); break;
    case 7: launch_dyn(ir_fused_kernel<T, 7, KB, SE>, blocks, L.bytes, stream, p, "the fused kernel"); break;
    default: launch_dyn(ir_fused_kernel<T, 0, KB, SE>, blocks, L.bytes, stream, p, "the fused kernel"); break;
  }
}

template <typename T, int KB>
void launch_proj(const IrParams& p, cudaStream_t stream) {
  const int64_t blocks = int64_t((p.M + TP - 1) / TP) * ((p.K + KB - 1) / KB);
  launch_dyn(se_project_kernel<T, KB>, blocks, make_proj_layout<T, KB>().bytes, stream, p, "SE pass 2");
}

}  // namespace ir

template <typename T> size_t ir_smem_bytes(const IrParams& p, bool se) {
  if (se) return ir::make_layout<T, 32, true>(p.k, p.stride, p.TH, p.TW).bytes;
  return p.K <= 64 ? ir::make_layout<T, 64, false>(p.k, p.stride, p.TH, p.TW).bytes
                   : ir::make_layout<T, 128, false>(p.k, p.stride, p.TH, p.TW).bytes;
}

template <typename T> void launch_ir_fused(const IrParams& p, cudaStream_t stream) {
  if (p.K <= 64) ir::launch_fused_k<T, 64, false>(p, stream);
  else ir::launch_fused_k<T, 128, false>(p, stream);
}

template <typename T> void launch_ir_se(const IrParams& p, const SeParams& s, cudaStream_t stream) {
  ir::launch_fused_k<T, 32, true>(p, stream);
  const size_t mlp_smem = size_t(s.E + s.S) * sizeof(float);
  TORCH_CHECK(mlp_smem <= size_t(ir::max_smem_optin()), "inverted_residual_cuda: SE with ", s.E, " + ", s.S,
              " channels needs too much shared memory");
  if (mlp_smem > 48 * 1024)
    C10_CUDA_CHECK(cudaFuncSetAttribute(ir::se_mlp_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(mlp_smem)));
  ir::se_mlp_kernel<T><<<unsigned(s.N), ir::NT, mlp_smem, stream>>>(s);
  FASTCONV_CHECK_LAUNCH();
  if (p.K <= 64) ir::launch_proj<T, 64>(p, stream);
  else ir::launch_proj<T, 128>(p, stream);
}

}  // namespace fastconv
