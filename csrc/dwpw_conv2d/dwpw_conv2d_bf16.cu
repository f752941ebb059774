// Explicit instantiation of the fused dw -> pw kernels for __nv_bfloat16 (one file per dtype so nvcc
// compiles the dtypes in parallel).
#include "dwpw_conv2d/dwpw_conv2d.cuh"

namespace fastconv {
template void launch_dwpw_conv2d<__nv_bfloat16>(const DwpwParams&, cudaStream_t);
}  // namespace fastconv
