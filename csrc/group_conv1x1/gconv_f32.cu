// Explicit instantiations of the gconv kernel family for float (plain/DW x NCHW/NHWC); one file per
// dtype so nvcc compiles them in parallel.
// ptxas registers, order plain-NCHW/plain-NHWC/DW-NCHW/DW-NHWC, __launch_bounds__(128, 4), 0 spills:
//   sm_90: 91/80/87/94   sm_80: 89/80/80/80   (18176 B static smem)
#include "group_conv1x1/gconv_launch.cuh"

namespace fastconv {
namespace gconv {
FASTCONV_GCONV_INSTANTIATE(float)
}  // namespace gconv
}  // namespace fastconv
