// fastconv::shufflenet_v2_unit_cuda: torchvision's ShuffleNetV2 InvertedResidual (BN folded) with the
// split, the concat and the final channel_shuffle(2) folded into indexing. Launches of the gconv
// kernel family (csrc/group_conv1x1/gconv_kernel.cuh):
//   1. h = relu(pw1(z)), z = x[:, C/2:] at stride 1 (a channel-offset read, no chunk copy) or x.
//   2. out[:, 2i+1] = relu(pw2(dw3x3(h, stride))[i]): the depthwise conv computed once per 8 x 8
//      output tile from an smem halo of h into the resident GEMM operand (all B output channels
//      looped over it), the interleaved store in the epilogue; at stride 1 extra CTAs of the same
//      launch copy the passthrough half x[:, i] -> out[:, 2i].
//   3. (stride 2) out[:, 2i] = relu(pw(dw3x3(x, 2))[i]): branch1, dw -> pw fused the same way.
// h (N x B x H x W) is the only intermediate in global memory.
#include "group_conv1x1/gconv_host.h"

namespace fastconv {
namespace {

// x: (N, C, H, W); pw1_w: (B, Cin2, 1, 1), dw_w: (B, 1, 3, 3), pw2_w: (B, B, 1, 1);
// stride 2 also b1_dw_w: (C, 1, 3, 3), b1_pw_w: (B, C, 1, 1). -> (N, C, H, W) or (N, 2B, H', W').
at::Tensor shufflenet_v2_unit_cuda(const at::Tensor& x, const at::Tensor& pw1_w, const std::optional<at::Tensor>& pw1_b,
                                   const at::Tensor& dw_w, const std::optional<at::Tensor>& dw_b,
                                   const at::Tensor& pw2_w, const std::optional<at::Tensor>& pw2_b,
                                   const std::optional<at::Tensor>& b1_dw_w, const std::optional<at::Tensor>& b1_dw_b,
                                   const std::optional<at::Tensor>& b1_pw_w, const std::optional<at::Tensor>& b1_pw_b,
                                   int64_t stride) {
  check_cuda(x, "x");
  const c10::cuda::CUDAGuard guard(x.device());
  const bool nhwc = is_nhwc(x);
  TORCH_CHECK(nhwc || x.is_contiguous(), "shufflenet_v2_unit: x must be NCHW- or NHWC-contiguous");
  TORCH_CHECK(stride == 1 || stride == 2, "shufflenet_v2_unit: stride must be 1 or 2");
  TORCH_CHECK(pw1_w.is_contiguous() && dw_w.is_contiguous() && pw2_w.is_contiguous(),
              "shufflenet_v2_unit: weights must be contiguous");
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t B = pw1_w.size(0);
  const int64_t cin2 = stride == 1 ? C / 2 : C;
  TORCH_CHECK(stride == 2 || C % 2 == 0, "shufflenet_v2_unit: stride 1 needs an even channel count");
  TORCH_CHECK(pw1_w.size(1) == cin2 && dw_w.numel() == B * 9 && pw2_w.size(0) == B && pw2_w.size(1) == B,
              "shufflenet_v2_unit: branch2 weight shapes do not match x");
  TORCH_CHECK(stride == 2 || B == C / 2, "shufflenet_v2_unit: stride 1 needs B == C/2");
  if (stride == 2) {
    TORCH_CHECK(b1_dw_w && b1_pw_w, "shufflenet_v2_unit: stride 2 needs branch1 weights");
    TORCH_CHECK(b1_dw_w->is_contiguous() && b1_pw_w->is_contiguous(), "shufflenet_v2_unit: weights must be contiguous");
    TORCH_CHECK(b1_dw_w->numel() == C * 9 && b1_pw_w->size(0) == B && b1_pw_w->size(1) == C,
                "shufflenet_v2_unit: branch1 weight shapes do not match x");
  }
  const int64_t Ho = (H - 1) / stride + 1, Wo = (W - 1) / stride + 1;  // 3x3, pad 1
  const int64_t outC = 2 * B;
  at::Tensor out = gconv::empty_act(x, {N, outC, Ho, Wo}, nhwc);
  if (N == 0) return out;
  at::Tensor h = gconv::empty_act(x, {N, B, H, W}, nhwc);
  const cudaStream_t s = stream();

  gconv::Params p1;
  p1.x = x.data_ptr();
  p1.x_C = (int)C;
  p1.x_c0 = stride == 1 ? (int)(C / 2) : 0;
  p1.H = (int)H;
  p1.W = (int)W;
  p1.w = pw1_w.data_ptr();
  p1.bias = opt_ptr(pw1_b);
  p1.Cg = (int)cin2;
  p1.Kg = (int)B;
  p1.out = h.data_ptr();
  p1.out_C = (int)B;
  p1.N = (int)N;
  p1.Ho = (int)H;
  p1.Wo = (int)W;
  p1.act = kRelu;
  gconv::run(x.scalar_type(), /*dw=*/false, nhwc, p1, s);

  gconv::Params p2;
  p2.x = h.data_ptr();
  p2.x_C = (int)B;
  p2.H = (int)H;
  p2.W = (int)W;
  p2.dw_w = dw_w.data_ptr();
  p2.dw_b = opt_ptr(dw_b);
  p2.stride = (int)stride;
  p2.w = pw2_w.data_ptr();
  p2.bias = opt_ptr(pw2_b);
  p2.Cg = (int)B;
  p2.Kg = (int)B;
  p2.out = out.data_ptr();
  p2.out_C = (int)outC;
  p2.N = (int)N;
  p2.Ho = (int)Ho;
  p2.Wo = (int)Wo;
  p2.out_mul = 2;
  p2.out_off = 1;
  p2.act = kRelu;
  if (stride == 1) {
    p2.side = gconv::kSideCopy;
    p2.side_x = x.data_ptr();
    p2.side_C = (int)B;  // x[:, :C/2]
    p2.side_xC = (int)C;
    p2.side_mul = 2;
    p2.side_off = 0;
  }
  gconv::run(x.scalar_type(), /*dw=*/true, nhwc, p2, s);

  if (stride == 2) {
    gconv::Params p3;
    p3.x = x.data_ptr();
    p3.x_C = (int)C;
    p3.H = (int)H;
    p3.W = (int)W;
    p3.dw_w = b1_dw_w->data_ptr();
    p3.dw_b = opt_ptr(b1_dw_b);
    p3.stride = 2;
    p3.w = b1_pw_w->data_ptr();
    p3.bias = opt_ptr(b1_pw_b);
    p3.Cg = (int)C;
    p3.Kg = (int)B;
    p3.out = out.data_ptr();
    p3.out_C = (int)outC;
    p3.N = (int)N;
    p3.Ho = (int)Ho;
    p3.Wo = (int)Wo;
    p3.out_mul = 2;
    p3.out_off = 0;
    p3.act = kRelu;
    gconv::run(x.scalar_type(), /*dw=*/true, nhwc, p3, s);
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastconv, CUDA, m) { m.impl("shufflenet_v2_unit_cuda", &shufflenet_v2_unit_cuda); }

}  // namespace fastconv
