// Explicit instantiation of the inverted residual kernels for __half (one file per dtype so nvcc
// compiles the dtypes in parallel).
#include "inverted_residual/inverted_residual.cuh"

namespace fastconv {
template size_t ir_smem_bytes<__half>(const IrParams&, bool);
template void launch_ir_fused<__half>(const IrParams&, cudaStream_t);
template void launch_ir_se<__half>(const IrParams&, const SeParams&, cudaStream_t);
}  // namespace fastconv
