// Explicit instantiation of the inverted residual kernels for float (one file per dtype so nvcc
// compiles the dtypes in parallel).
#include "inverted_residual/inverted_residual.cuh"

namespace fastconv {
template int ir_se_tiles<float>(IrParams);
template void launch_ir_fused<float>(IrParams, cudaStream_t);
template void launch_ir_se<float>(IrParams, SeParams, cudaStream_t);
}  // namespace fastconv
