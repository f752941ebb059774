// Explicit instantiation of the fused pw -> dw kernels for __nv_bfloat16 (one file per dtype so nvcc
// compiles the dtypes in parallel).
#include "pwdw_conv2d/pwdw_conv2d.cuh"

namespace fastconv {
template void launch_pwdw_conv2d<__nv_bfloat16>(const PwdwParams&, cudaStream_t);
}  // namespace fastconv
