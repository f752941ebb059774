// Explicit instantiation of the fused dw -> pw kernels for __half (one file per dtype so nvcc
// compiles the dtypes in parallel).
#include "dwpw_conv2d/dwpw_conv2d.cuh"

namespace fastconv {
template void launch_dwpw_conv2d<__half>(const DwpwParams&, cudaStream_t);
}  // namespace fastconv
