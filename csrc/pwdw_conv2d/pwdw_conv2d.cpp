// fastconv::pwdw_conv2d_cuda: host launcher for the fused pointwise -> depthwise kernel
// (pwdw_conv2d.cuh; per-dtype instantiations in pwdw_conv2d_{fp32,fp16,bf16}.cu).
//
// x arrives NCHW- or NHWC-contiguous; the kernel reads both through strides and the output is
// allocated in x's memory format.
//
// ptxas (CUDA 13.0, scripts/nvcc_check.sh ... 90), registers/thread, 0 bytes spilled in every variant,
// 256 threads, __launch_bounds__(256, 2) (7x7 stride 2: (256, 1)):
//   sm_90  fp16/bf16: 128 (k3/k5/k7 s1, k3/k5 s2), 156 (k7 s2), 118 (generic) | fp32: 122-130, 84 (generic)
#include "common.h"
#include "pwdw_conv2d/pwdw_conv2d.h"

namespace fastconv {

extern template void launch_pwdw_conv2d<float>(const PwdwParams&, cudaStream_t);
extern template void launch_pwdw_conv2d<__half>(const PwdwParams&, cudaStream_t);
extern template void launch_pwdw_conv2d<__nv_bfloat16>(const PwdwParams&, cudaStream_t);

namespace {

struct Launch {
  const PwdwParams& p;
  template <typename T> void operator()() const { launch_pwdw_conv2d<T>(p, stream()); }
};

void fill_strides(int64_t* dst, const at::Tensor& t) {
  for (int i = 0; i < 4; ++i) dst[i] = t.stride(i);
}

at::Tensor pwdw_conv2d_cuda(const at::Tensor& x, const at::Tensor& pw_weight, const at::Tensor& dw_weight,
                            const std::optional<at::Tensor>& pw_bias, const std::optional<at::Tensor>& dw_bias,
                            const std::optional<at::Tensor>& residual, int64_t stride, int64_t padding,
                            int64_t dilation, int64_t pw_act, int64_t dw_act, bool concat) {
  check_cuda(x, "x");
  c10::cuda::CUDAGuard guard(x.device());
  TORCH_CHECK(x.dim() == 4 && dw_weight.dim() == 4 && pw_weight.dim() == 4, "pwdw_conv2d_cuda: 4-D tensors expected");
  const bool nhwc = is_nhwc(x);
  TORCH_CHECK(nhwc || x.is_contiguous(), "pwdw_conv2d_cuda: x must be NCHW- or NHWC-contiguous");
  TORCH_CHECK(dw_weight.is_contiguous() && pw_weight.is_contiguous(), "pwdw_conv2d_cuda: weights must be contiguous");
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t M = pw_weight.size(0), k = dw_weight.size(-1);
  TORCH_CHECK(pw_weight.size(1) == C && k % 2 == 1 && dw_weight.size(0) % M == 0 && dw_weight.size(0) >= M,
              "pwdw_conv2d_cuda: weight shapes");
  const int64_t mult = dw_weight.size(0) / M;
  TORCH_CHECK(stride >= 1 && dilation >= 1 && padding >= 0, "pwdw_conv2d_cuda: bad stride/padding/dilation");
  const int64_t Ho = (H + 2 * padding - dilation * (k - 1) - 1) / stride + 1;
  const int64_t Wo = (W + 2 * padding - dilation * (k - 1) - 1) / stride + 1;
  TORCH_CHECK(Ho >= 1 && Wo >= 1, "pwdw_conv2d_cuda: empty output");
  TORCH_CHECK(!concat || (stride == 1 && Ho == H && Wo == W), "pwdw_conv2d_cuda: concat needs stride 1, same size");
  TORCH_CHECK(H * W < (int64_t(1) << 31) && C < (1 << 30) && M * mult < (1 << 30),
              "pwdw_conv2d_cuda: tensor too large for 32-bit pixel indexing");
  TORCH_CHECK(padding < (1 << 20) && dilation < (1 << 20) && stride < (1 << 20) && k < 256,
              "pwdw_conv2d_cuda: stride/padding/dilation/kernel size out of range");

  const int64_t K = M * mult + (concat ? M : 0);
  at::Tensor out = at::empty({N, K, Ho, Wo}, x.options().memory_format(nhwc ? at::MemoryFormat::ChannelsLast
                                                                              : at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  for (auto* t : {&pw_bias, &dw_bias, &residual})
    if (t->has_value()) {
      check_cuda(**t, "bias/residual");
      TORCH_CHECK((*t)->scalar_type() == x.scalar_type(), "pwdw_conv2d_cuda: dtype mismatch");
    }
  if (pw_bias) TORCH_CHECK(pw_bias->numel() == M && pw_bias->is_contiguous(), "pwdw_conv2d_cuda: pw_bias shape");
  if (dw_bias) TORCH_CHECK(dw_bias->numel() == M * mult && dw_bias->is_contiguous(), "pwdw_conv2d_cuda: dw_bias shape");
  if (residual)
    TORCH_CHECK(residual->sizes() == out.sizes(), "pwdw_conv2d_cuda: residual must have the output's shape");

  PwdwParams p{};
  p.x = x.data_ptr();
  p.pw_w = pw_weight.data_ptr();
  p.dw_w = dw_weight.data_ptr();
  p.pw_b = opt_ptr(pw_bias);
  p.dw_b = opt_ptr(dw_bias);
  p.res = opt_ptr(residual);
  p.out = out.data_ptr();
  p.N = int(N); p.C = int(C); p.H = int(H); p.W = int(W); p.M = int(M); p.mult = int(mult);
  p.Ho = int(Ho); p.Wo = int(Wo);
  p.k = int(k); p.stride = int(stride); p.pad = int(padding); p.dil = int(dilation);
  p.pw_act = int(pw_act); p.dw_act = int(dw_act); p.concat = concat;
  fill_strides(p.xs, x);
  fill_strides(p.os, out);
  if (residual) fill_strides(p.rs, *residual);
  dispatch_dtype(x.scalar_type(), "pwdw_conv2d_cuda", Launch{p});
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastconv, CUDA, m) { m.impl("pwdw_conv2d_cuda", &pwdw_conv2d_cuda); }

}  // namespace fastconv
