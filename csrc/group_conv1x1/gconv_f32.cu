// Explicit instantiations of the gconv kernel family for float (plain, DW stride 1/2 x NCHW/NHWC); one file per
// dtype so nvcc compiles them in parallel.
// ptxas sm_90 and sm_90a (CUDA 13.0, scripts/nvcc_check.sh; FMA, no wgmma), registers/thread, 0 bytes
// spilled in every variant:
//   94/96 plain NHWC/NCHW; DW s1/s2: NHWC 128/128, NCHW 127/128.
//   __launch_bounds__(256, 2) -> 2 CTAs (16 warps)/SM in every variant, DW as far as its smem allows
//   (it took 186-217 registers at 1 CTA/SM while its scalar fallback loaders were unrolled).
#include "group_conv1x1/gconv_launch.cuh"

namespace fastconv {
namespace gconv {
FASTCONV_GCONV_INSTANTIATE(float)
}  // namespace gconv
}  // namespace fastconv
