// Explicit instantiation of the inverted residual kernels for __half (one file per dtype so nvcc
// compiles the dtypes in parallel).
#include "inverted_residual/inverted_residual.cuh"

namespace fastconv {
template int ir_se_tiles<__half>(IrParams);
template void launch_ir_fused<__half>(IrParams, cudaStream_t);
template void launch_ir_se<__half>(IrParams, SeParams, cudaStream_t);
}  // namespace fastconv
