// Explicit instantiation of the depthwise_conv2d forward kernels for __nv_bfloat16 (one file per dtype so nvcc
// compiles the dtypes in parallel).
#include "depthwise_conv2d/depthwise_conv2d.cuh"

namespace fastconv {
template void launch_depthwise_conv2d<__nv_bfloat16>(DepthwiseParams&, cudaStream_t);
}  // namespace fastconv
