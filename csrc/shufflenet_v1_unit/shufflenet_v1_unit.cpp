// fastconv::shufflenet_v1_unit_cuda: gconv1 -> relu -> shuffle -> dw3x3 -> gconv2 -> add/concat -> relu
// in two launches of the gconv kernel family (csrc/group_conv1x1/gconv_kernel.cuh):
//   1. h = relu(gconv1(x)) stored straight into its shuffled channel order (shuffle_out = groups
//      in the epilogue), so no shuffle pass exists. The depthwise conv acts per channel, so running
//      it on the already-permuted h with dw_weight indexed by h's channel equals the reference order.
//   2. out = relu(gconv2(dw3x3(h)) + b2 (+ x)): each CTA computes the depthwise conv of its 8 x 8
//      output tile once, from an smem halo of h, into a resident smem GEMM operand covering its
//      group's channels (never stored), then loops over the group's output-channel tiles; the
//      residual add / channel offset + final relu are in the epilogue, and at stride 2 extra CTAs
//      of the same launch write relu(avg_pool3x3(x)) into channels [0, C).
// h is the only intermediate in global memory (N x M x H x W, x's dtype and format).
#include "group_conv1x1/gconv_host.h"

namespace fastconv {
namespace {

// x: (N, C, H, W), w1: (M, C/g1, 1, 1), dw_weight: (M, 1, 3, 3), w2: (K, M/groups, 1, 1)
// -> (N, C, H, W) at stride 1 (K == C), (N, C + K, H', W') at stride 2.
at::Tensor shufflenet_v1_unit_cuda(const at::Tensor& x, const at::Tensor& w1, const std::optional<at::Tensor>& b1,
                                   const at::Tensor& dw_weight, const std::optional<at::Tensor>& dw_bias,
                                   const at::Tensor& w2, const std::optional<at::Tensor>& b2, int64_t groups,
                                   int64_t first_groups, int64_t stride) {
  check_cuda(x, "x");
  const c10::cuda::CUDAGuard guard(x.device());
  const bool nhwc = is_nhwc(x);
  TORCH_CHECK(nhwc || x.is_contiguous(), "shufflenet_v1_unit: x must be NCHW- or NHWC-contiguous");
  TORCH_CHECK(w1.is_contiguous() && dw_weight.is_contiguous() && w2.is_contiguous(),
              "shufflenet_v1_unit: weights must be contiguous");
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t M = w1.size(0), K = w2.size(0);
  const int64_t g1 = first_groups > 0 ? first_groups : groups;
  TORCH_CHECK(stride == 1 || stride == 2, "shufflenet_v1_unit: stride must be 1 or 2");
  TORCH_CHECK(groups >= 1 && g1 >= 1 && C % g1 == 0 && M % g1 == 0 && w1.size(1) == C / g1,
              "shufflenet_v1_unit: w1 does not match first_groups");
  TORCH_CHECK(M % groups == 0 && K % groups == 0 && w2.size(1) == M / groups,
              "shufflenet_v1_unit: w2 does not match groups");
  TORCH_CHECK(dw_weight.numel() == M * 9, "shufflenet_v1_unit: dw_weight must be (M, 1, 3, 3)");
  TORCH_CHECK(stride == 2 || K == C, "shufflenet_v1_unit: stride 1 needs K == C");
  const int64_t Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1;  // 3x3, pad 1
  const int64_t outC = stride == 1 ? C : C + K;
  at::Tensor out = gconv::empty_act(x, {N, outC, Ho, Wo}, nhwc);
  if (N == 0) return out;
  at::Tensor h = gconv::empty_act(x, {N, M, H, W}, nhwc);
  const cudaStream_t s = stream();

  gconv::Params p1;
  p1.x = x.data_ptr();
  p1.x_C = (int)C;
  p1.H = (int)H;
  p1.W = (int)W;
  p1.w = w1.data_ptr();
  p1.bias = opt_ptr(b1);
  p1.groups = (int)g1;
  p1.Cg = (int)(C / g1);
  p1.Kg = (int)(M / g1);
  p1.out = h.data_ptr();
  p1.out_C = (int)M;
  p1.N = (int)N;
  p1.Ho = (int)H;
  p1.Wo = (int)W;
  p1.shuffle_out = (int)groups;
  p1.act = kRelu;
  gconv::run(x.scalar_type(), /*dw=*/false, nhwc, p1, s);

  gconv::Params p2;
  p2.x = h.data_ptr();
  p2.x_C = (int)M;
  p2.H = (int)H;
  p2.W = (int)W;
  p2.dw_w = dw_weight.data_ptr();
  p2.dw_b = opt_ptr(dw_bias);
  p2.stride = (int)stride;
  p2.w = w2.data_ptr();
  p2.bias = opt_ptr(b2);
  p2.groups = (int)groups;
  p2.Cg = (int)(M / groups);
  p2.Kg = (int)(K / groups);
  p2.out = out.data_ptr();
  p2.out_C = (int)outC;
  p2.N = (int)N;
  p2.Ho = (int)Ho;
  p2.Wo = (int)Wo;
  p2.act = kRelu;
  if (stride == 1) {
    p2.res = x.data_ptr();  // same shape and format as out
  } else {
    p2.out_off = (int)C;
    p2.side = gconv::kSideAvgPool;
    p2.side_x = x.data_ptr();
    p2.side_C = (int)C;
    p2.side_xC = (int)C;
    p2.side_act = kRelu;
  }
  gconv::run(x.scalar_type(), /*dw=*/true, nhwc, p2, s);
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastconv, CUDA, m) { m.impl("shufflenet_v1_unit_cuda", &shufflenet_v1_unit_cuda); }

}  // namespace fastconv
