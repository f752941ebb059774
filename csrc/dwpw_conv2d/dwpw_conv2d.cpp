// fastconv::dwpw_conv2d_cuda: host launcher for the fused depthwise -> pointwise kernel
// (dwpw_conv2d.cuh; per-dtype instantiations in dwpw_conv2d_{fp32,fp16,bf16}.cu).
//
// x arrives NCHW- or NHWC-contiguous; the kernel reads both natively through strides (no
// conversion copy) and the output is allocated in x's memory format.
//
// ptxas (CUDA 13.0, scripts/nvcc_check.sh), 256 threads, 0 bytes stack / spilled in every
// variant, registers for KS/S = 3/1, 3/2, 5/1, 5/2, 7/1, 7/2, generic 0/0:
//   sm_90a (the build's Hopper target; fp16/bf16 pointwise GEMM on wgmma.m64n64k16, 128-channel tiles),
//   with cpad = C rounded to 32 and the bank-spread halo pitch (stages::halo_pitch):
//     fp16 128, 128, 123, 126, 120, 124, 128; bf16 128, 127, 123, 122, 120, 119, 128;
//   sm_80 (mma.sync; A is 64-column padded so the half slab runs the one 64-deep Gemm::mma: a second,
//   32-deep instance spilled 36-48 B at <T, 3, 1/2>): fp16 128, 128, 118, 126, 116, 124, 122;
//     bf16 128, 128, 112, 118, 112, 124, 122 (sm_90 mma.sync not re-measured with these changes);
//     all __launch_bounds__(256, 2), 2 CTAs (16 warps) per SM while shared memory allows it (C <= ~512
//     at k3; above that 1 CTA: A holds 64 x C halves);
//   fp32 sm_90a 152, 157, 130, 140, 128, 138, 128 (sm_80 148, 158, 139, 146, 134, 144, 96) at
//     __launch_bounds__(256, 1):
//     1 CTA (8 warps) per SM, correctness path.
//   (before the cpad / halo pitch change, sm_80 fp16 128, 127, 110, 120, 118, 124, 94.)
//   (session 2 had <T, 3, 2> at the 128 cap with an 8-byte spill: the copy loops' index math,
//   unrolled for impossible trip counts and hoisted, was live through the kernel.)
//   (before the stages rebuild: fp16 80-106, fp32 80-108, all scalar 2-byte global loads.)
// Shared memory: dwpw::plan / make_layout, e.g. fp16 k3: 61 KiB at C = 128, 173 KiB at C = 1024.
#include "common.h"
#include "dwpw_conv2d/dwpw_conv2d.h"

namespace fastconv {

extern template void launch_dwpw_conv2d<float>(const DwpwParams&, cudaStream_t);
extern template void launch_dwpw_conv2d<__half>(const DwpwParams&, cudaStream_t);
extern template void launch_dwpw_conv2d<__nv_bfloat16>(const DwpwParams&, cudaStream_t);

namespace {

// A functor rather than a templated lambda so the file also builds as C++17 (older torch).
struct Launch {
  const DwpwParams& p;
  template <typename T> void operator()() const { launch_dwpw_conv2d<T>(p, stream()); }
};

void fill_strides(int64_t* dst, const at::Tensor& t) {
  for (int i = 0; i < 4; ++i) dst[i] = t.stride(i);
}

at::Tensor dwpw_conv2d_cuda(const at::Tensor& x, const at::Tensor& dw_weight, const at::Tensor& pw_weight,
                            const std::optional<at::Tensor>& dw_bias, const std::optional<at::Tensor>& pw_bias,
                            const std::optional<at::Tensor>& residual, int64_t stride, int64_t padding,
                            int64_t dilation, int64_t dw_act, int64_t pw_act) {
  check_cuda(x, "x");
  c10::cuda::CUDAGuard guard(x.device());
  TORCH_CHECK(x.dim() == 4 && dw_weight.dim() == 4 && pw_weight.dim() == 4, "dwpw_conv2d_cuda: 4-D tensors expected");
  const bool nhwc = is_nhwc(x);
  TORCH_CHECK(nhwc || x.is_contiguous(), "dwpw_conv2d_cuda: x must be NCHW- or NHWC-contiguous");
  TORCH_CHECK(dw_weight.is_contiguous() && pw_weight.is_contiguous(), "dwpw_conv2d_cuda: weights must be contiguous");
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t k = dw_weight.size(-1), K = pw_weight.size(0);
  TORCH_CHECK(dw_weight.size(0) == C && k % 2 == 1 && pw_weight.size(1) == C, "dwpw_conv2d_cuda: weight shapes");
  TORCH_CHECK(stride >= 1 && dilation >= 1 && padding >= 0, "dwpw_conv2d_cuda: bad stride/padding/dilation");
  const int64_t Ho = (H + 2 * padding - dilation * (k - 1) - 1) / stride + 1;
  const int64_t Wo = (W + 2 * padding - dilation * (k - 1) - 1) / stride + 1;
  TORCH_CHECK(Ho >= 1 && Wo >= 1, "dwpw_conv2d_cuda: empty output");
  // Pixel and spatial indices are 32-bit inside the kernel; element offsets are 64-bit.
  TORCH_CHECK(N * Ho * Wo < (int64_t(1) << 31) - 64 && H * W < (int64_t(1) << 31) && C < (1 << 30) && K < (1 << 30),
              "dwpw_conv2d_cuda: tensor too large for 32-bit pixel indexing");
  TORCH_CHECK(padding < (1 << 20) && dilation < (1 << 20) && stride < (1 << 20) && k < 256,
              "dwpw_conv2d_cuda: stride/padding/dilation/kernel size out of range");

  at::Tensor out = at::empty({N, K, Ho, Wo}, x.options().memory_format(nhwc ? at::MemoryFormat::ChannelsLast
                                                                              : at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;
  for (auto* t : {&dw_bias, &pw_bias, &residual})
    if (t->has_value()) {
      check_cuda(**t, "bias/residual");
      TORCH_CHECK((*t)->scalar_type() == x.scalar_type(), "dwpw_conv2d_cuda: dtype mismatch");
    }
  if (dw_bias) TORCH_CHECK(dw_bias->numel() == C && dw_bias->is_contiguous(), "dwpw_conv2d_cuda: dw_bias shape");
  if (pw_bias) TORCH_CHECK(pw_bias->numel() == K && pw_bias->is_contiguous(), "dwpw_conv2d_cuda: pw_bias shape");
  if (residual)
    TORCH_CHECK(residual->sizes() == out.sizes(), "dwpw_conv2d_cuda: residual must have the output's shape");

  DwpwParams p{};
  p.x = x.data_ptr();
  p.dw_w = dw_weight.data_ptr();
  p.pw_w = pw_weight.data_ptr();
  p.dw_b = opt_ptr(dw_bias);
  p.pw_b = opt_ptr(pw_bias);
  p.res = opt_ptr(residual);
  p.out = out.data_ptr();
  p.N = int(N); p.C = int(C); p.H = int(H); p.W = int(W); p.K = int(K); p.Ho = int(Ho); p.Wo = int(Wo);
  p.k = int(k); p.stride = int(stride); p.pad = int(padding); p.dil = int(dilation);
  p.dw_act = int(dw_act); p.pw_act = int(pw_act);
  p.M = int(N * Ho * Wo);
  fill_strides(p.xs, x);
  fill_strides(p.os, out);
  if (residual) fill_strides(p.rs, *residual);
  p.nhwc = nhwc;
  dispatch_dtype(x.scalar_type(), "dwpw_conv2d_cuda", Launch{p});
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastconv, CUDA, m) { m.impl("dwpw_conv2d_cuda", &dwpw_conv2d_cuda); }

}  // namespace fastconv
