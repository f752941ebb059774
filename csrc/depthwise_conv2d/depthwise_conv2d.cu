// fastconv::depthwise_conv2d_cuda: host launcher of the depthwise forward kernel
// (depthwise_conv2d_kernel.cuh on csrc/stages; per-dtype instantiations in depthwise_conv2d_{fp32,fp16,bf16}.cu).
//
// Scope: weight (C, 1, k, k) (channel multiplier 1, square kernel), equal stride and dilation in both
// dimensions; padding may differ per dimension. fastconv/ops/depthwise_conv2d.py routes everything else
// (and every backward) to the Triton kernels. x arrives NCHW- or NHWC-contiguous; the output is
// allocated in x's memory format.
//
// ptxas (CUDA 13.0, scripts/nvcc_check.sh, sm_90), 14 instantiations per dtype (KS/S in {3,5,7}x{1,2} +
// generic, TILE 16/8), registers/thread, 0 bytes stack and 0 bytes spilled in every one:
//   fp16 64-124, bf16 64-124, fp32 65-122 (fp16/bf16 3 x 3 at TILE 16: 80 = 3 CTAs per SM;
//   5 x 5 and 7 x 7 at TILE 16: 98-124, 2 CTAs).
// (Before grid (tiles, chunks, N) and compile-time fast-path geometry: 3 variants spilled 8 bytes.)
#include "common.h"
#include "depthwise_conv2d/depthwise_conv2d.h"
#include "stages/tile_copy.cuh"

namespace fastconv {

extern template void launch_depthwise_conv2d<float>(DepthwiseParams&, cudaStream_t);
extern template void launch_depthwise_conv2d<__half>(DepthwiseParams&, cudaStream_t);
extern template void launch_depthwise_conv2d<__nv_bfloat16>(DepthwiseParams&, cudaStream_t);

namespace {

struct Launch {  // a functor rather than a templated lambda: also builds as C++17
  DepthwiseParams& p;
  template <typename T> void operator()() const {
    if (p.in_bytes) p.in_bytes = std::min(stages::vec_bytes(p.x, p.C, sizeof(T)), stages::vec_bytes(p.x, 8, sizeof(T)));
    p.vec_out = p.vec_out && p.C % 8 == 0 && stages::vec_bytes(p.out, 8, sizeof(T)) == 16;
    launch_depthwise_conv2d<T>(p, stream());
  }
};

at::Tensor depthwise_conv2d_cuda(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                                 at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t act) {
  check_cuda(x, "x");
  check_cuda(weight, "weight");
  c10::cuda::CUDAGuard guard(x.device());
  TORCH_CHECK(x.dim() == 4 && weight.dim() == 4, "depthwise_conv2d_cuda: 4-D x and weight expected");
  TORCH_CHECK(stride.size() == 2 && padding.size() == 2 && dilation.size() == 2,
              "depthwise_conv2d_cuda: stride, padding, dilation must have 2 elements");
  const bool nhwc = is_nhwc(x);
  TORCH_CHECK(nhwc || x.is_contiguous(), "depthwise_conv2d_cuda: x must be NCHW- or NHWC-contiguous");
  TORCH_CHECK(weight.is_contiguous() && weight.scalar_type() == x.scalar_type(), "depthwise_conv2d_cuda: weight");
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), k = weight.size(-1);
  TORCH_CHECK(weight.size(0) == C && weight.size(1) == 1 && weight.size(2) == k,
              "depthwise_conv2d_cuda: weight must be (C, 1, k, k) (no channel multiplier, square kernel)");
  TORCH_CHECK(stride[0] == stride[1] && dilation[0] == dilation[1] && stride[0] >= 1 && dilation[0] >= 1 &&
                  padding[0] >= 0 && padding[1] >= 0,
              "depthwise_conv2d_cuda: needs equal stride and dilation in both dimensions");
  const int64_t s = stride[0], d = dilation[0];
  const int64_t Ho = (H + 2 * padding[0] - d * (k - 1) - 1) / s + 1;
  const int64_t Wo = (W + 2 * padding[1] - d * (k - 1) - 1) / s + 1;
  TORCH_CHECK(Ho >= 1 && Wo >= 1, "depthwise_conv2d_cuda: empty output");
  // Spatial indices are 32-bit inside the kernel; element offsets are 64-bit.
  TORCH_CHECK(H < (1 << 24) && W < (1 << 24) && C < (1 << 24) && k < 64 && s < 64 && d < 64 && padding[0] < 4096 &&
                  padding[1] < 4096,
              "depthwise_conv2d_cuda: sizes out of range");
  if (bias) {
    check_cuda(*bias, "bias");
    TORCH_CHECK(bias->scalar_type() == x.scalar_type() && bias->numel() == C && bias->is_contiguous(),
                "depthwise_conv2d_cuda: bias must be a contiguous (C,) tensor of x's dtype");
  }
  at::Tensor out = at::empty({N, C, Ho, Wo}, x.options().memory_format(nhwc ? at::MemoryFormat::ChannelsLast
                                                                            : at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  DepthwiseParams p{};
  p.x = x.data_ptr();
  p.w = weight.data_ptr();
  p.b = opt_ptr(bias);
  p.out = out.data_ptr();
  p.N = int(N); p.C = int(C); p.H = int(H); p.W = int(W); p.Ho = int(Ho); p.Wo = int(Wo);
  p.k = int(k); p.stride = int(s); p.dil = int(d); p.pad_h = int(padding[0]); p.pad_w = int(padding[1]);
  p.act = int(act);
  for (int i = 0; i < 4; ++i) { p.xs[i] = x.stride(i); p.os[i] = out.stride(i); }
  p.in_bytes = nhwc ? 16 : 0;  // narrowed to what C and the pointer allow in Launch
  p.vec_out = nhwc;
  dispatch_dtype(x.scalar_type(), "depthwise_conv2d_cuda", Launch{p});
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastconv, CUDA, m) { m.impl("depthwise_conv2d_cuda", &depthwise_conv2d_cuda); }

}  // namespace fastconv
