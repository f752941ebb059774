// Explicit instantiation of the depthwise_conv2d forward kernels for float (one file per dtype so nvcc
// compiles the dtypes in parallel).
#include "depthwise_conv2d/depthwise_conv2d.cuh"

namespace fastconv {
template void launch_depthwise_conv2d<float>(DepthwiseParams&, cudaStream_t);
}  // namespace fastconv
