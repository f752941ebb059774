// Explicit instantiation of the inverted residual kernels for __nv_bfloat16 (one file per dtype so nvcc
// compiles the dtypes in parallel).
#include "inverted_residual/inverted_residual.cuh"

namespace fastconv {
template int ir_se_tiles<__nv_bfloat16>(IrParams);
template void launch_ir_fused<__nv_bfloat16>(IrParams, cudaStream_t);
template void launch_ir_se<__nv_bfloat16>(IrParams, SeParams, cudaStream_t);
}  // namespace fastconv
