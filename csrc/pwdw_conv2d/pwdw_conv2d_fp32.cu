// Explicit instantiation of the fused pw -> dw kernels for float (one file per dtype so nvcc
// compiles the dtypes in parallel).
#include "pwdw_conv2d/pwdw_conv2d.cuh"

namespace fastconv {
template void launch_pwdw_conv2d<float>(const PwdwParams&, cudaStream_t);
}  // namespace fastconv
