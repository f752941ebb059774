// Explicit instantiations of the gconv kernel family for __half (plain/DW x NCHW/NHWC); one file per
// dtype so nvcc compiles them in parallel.
// ptxas registers, order plain-NCHW/plain-NHWC/DW-NCHW/DW-NHWC, __launch_bounds__(128, 4), 0 spills:
//   sm_90: 100/98/79/94   sm_80: 102/100/80/80   (18176 B static smem)
#include "group_conv1x1/gconv_launch.cuh"

namespace fastconv {
namespace gconv {
FASTCONV_GCONV_INSTANTIATE(__half)
}  // namespace gconv
}  // namespace fastconv
