// Explicit instantiations of the gconv kernel family for float (plain, DW stride 1/2 x NCHW/NHWC); one file per
// dtype so nvcc compiles them in parallel.
// ptxas sm_90 (CUDA 13.0, scripts/nvcc_check.sh), registers/thread, 0 bytes spilled in every variant:
//   92/92 plain NHWC/NCHW; DW s1/s2: NHWC 186/194, NCHW 207/215.
//   plain: __launch_bounds__(256, 2) -> 2 CTAs (16 warps)/SM; DW: (256, 1) -> 1 CTA (8 warps)/SM.
#include "group_conv1x1/gconv_launch.cuh"

namespace fastconv {
namespace gconv {
FASTCONV_GCONV_INSTANTIATE(float)
}  // namespace gconv
}  // namespace fastconv
