// Explicit instantiation of the inverted residual kernels for float (one file per dtype so nvcc
// compiles the dtypes in parallel).
#include "inverted_residual/inverted_residual.cuh"

namespace fastconv {
template size_t ir_smem_bytes<float>(const IrParams&, bool);
template void launch_ir_fused<float>(const IrParams&, cudaStream_t);
template void launch_ir_se<float>(const IrParams&, const SeParams&, cudaStream_t);
}  // namespace fastconv
