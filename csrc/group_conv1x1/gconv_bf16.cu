// Explicit instantiations of the gconv kernel family for __nv_bfloat16 (plain, DW stride 1/2 x NCHW/NHWC); one file per
// dtype so nvcc compiles them in parallel.
// ptxas (CUDA 13.0, scripts/nvcc_check.sh), registers/thread, 0 bytes spilled in every variant:
//   sm_90a (wgmma GEMMs): 126/124 plain NHWC/NCHW; DW s1/s2: NHWC 121/125, NCHW 126/128.
//   sm_90 (mma.sync, core-matrix B): 128/126 plain; DW NHWC 123/126, NCHW 127/127 (row-major B
//   slabs before: 128/126; NHWC 128/128, NCHW 128/128).
//   __launch_bounds__(256, 2) -> 2 CTAs (16 warps)/SM in every variant, DW as far as its smem allows
//   (it took 186-217 registers at 1 CTA/SM while its scalar fallback loaders were unrolled).
#include "group_conv1x1/gconv_launch.cuh"

namespace fastconv {
namespace gconv {
FASTCONV_GCONV_INSTANTIATE(__nv_bfloat16)
}  // namespace gconv
}  // namespace fastconv
