// fastconv::group_conv1x1_cuda: grouped 1x1 conv with shuffle_in folded into the B loader's channel
// index and shuffle_out into the epilogue's store index (no shuffled copy is ever materialised).
// Also defines gconv::run, the checked entry point the ShuffleNet unit launchers share.
#include <limits>

#include "group_conv1x1/gconv_host.h"

namespace fastconv {
namespace gconv {

template <typename T>
static void run_typed(bool dw, bool nhwc, const Params& p, cudaStream_t s) {
  if (dw) {
    nhwc ? launch<T, true, true>(p, s) : launch<T, true, false>(p, s);
  } else {
    nhwc ? launch<T, false, true>(p, s) : launch<T, false, false>(p, s);
  }
}

void run(at::ScalarType dtype, bool dw, bool nhwc, const Params& p, cudaStream_t s) {
  constexpr int64_t kIntMax = std::numeric_limits<int>::max();
  const int64_t np = (int64_t)p.N * p.Ho * p.Wo;
  if (np == 0) return;
  TORCH_CHECK(np <= kIntMax - 64, "gconv: N*H'*W' = ", np, " pixels exceeds the 32-bit pixel index");
  TORCH_CHECK(p.groups >= 1 && p.Cg >= 1 && p.Kg >= 1, "gconv: bad GEMM shape");
  TORCH_CHECK(!dw || p.shuffle_in == 0, "gconv: shuffle_in is not supported with a depthwise loader");
  TORCH_CHECK(dw || (p.Ho == p.H && p.Wo == p.W), "gconv: a 1x1 conv keeps the spatial size");
  TORCH_CHECK(p.side != kSideCopy || (p.Ho == p.H && p.Wo == p.W), "gconv: side copy needs stride 1");
  TORCH_CHECK(!dw || p.stride == 1 || p.stride == 2, "gconv: the depthwise loader supports stride 1 and 2");
  TORCH_CHECK(dw || p.side == kSideNone, "gconv: a side branch needs the depthwise launch");
  // grid.y: groups * ceil(Kg / 64) (plain) or groups + side CTAs (DW); this bounds both.
  const int64_t mtiles = (p.Kg + 63) / 64;
  const int64_t side_blocks = p.side != kSideNone ? (p.side_C + 63) / 64 : 0;
  TORCH_CHECK(p.groups * mtiles + side_blocks <= 65535, "gconv: too many channel tiles for grid.y");
  TORCH_CHECK(!dw || (int64_t)p.N * ((p.Ho + 7) / 8) * ((p.Wo + 7) / 8) <= kIntMax, "gconv: too many spatial tiles");
  switch (dtype) {
    case at::kFloat: run_typed<float>(dw, nhwc, p, s); break;
    case at::kHalf: run_typed<__half>(dw, nhwc, p, s); break;
    case at::kBFloat16: run_typed<__nv_bfloat16>(dw, nhwc, p, s); break;
    default: TORCH_CHECK(false, "fastconv: unsupported dtype ", dtype, " (float32, float16, bfloat16 only)");
  }
}

}  // namespace gconv

namespace {

// x: (N, C, H, W), weight: (K, C/groups, 1, 1), bias: (K,) -> (N, K, H, W) in x's memory format.
at::Tensor group_conv1x1_cuda(const at::Tensor& x, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                              int64_t groups, int64_t shuffle_in, int64_t shuffle_out, int64_t act) {
  check_cuda(x, "x");
  check_cuda(weight, "weight");
  TORCH_CHECK(x.dim() == 4 && weight.dim() == 4, "group_conv1x1: x and weight must be 4-D");
  const c10::cuda::CUDAGuard guard(x.device());
  const bool nhwc = is_nhwc(x);
  TORCH_CHECK(nhwc || x.is_contiguous(), "group_conv1x1: x must be NCHW- or NHWC-contiguous");
  TORCH_CHECK(weight.is_contiguous() && (!bias || bias->is_contiguous()), "group_conv1x1: params must be contiguous");
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), K = weight.size(0);
  TORCH_CHECK(groups >= 1 && C % groups == 0 && K % groups == 0 && weight.size(1) == C / groups,
              "group_conv1x1: weight shape does not match groups");
  TORCH_CHECK(shuffle_in == 0 || (shuffle_in > 0 && C % shuffle_in == 0), "group_conv1x1: bad shuffle_in");
  TORCH_CHECK(shuffle_out == 0 || (shuffle_out > 0 && K % shuffle_out == 0), "group_conv1x1: bad shuffle_out");
  TORCH_CHECK(!bias || bias->numel() == K, "group_conv1x1: bias must have K elements");
  at::Tensor out = gconv::empty_act(x, {N, K, H, W}, nhwc);
  gconv::Params p;
  p.x = x.data_ptr();
  p.x_C = (int)C;
  p.H = (int)H;
  p.W = (int)W;
  p.shuffle_in = (int)shuffle_in;
  p.w = weight.data_ptr();
  p.bias = opt_ptr(bias);
  p.groups = (int)groups;
  p.Cg = (int)(C / groups);
  p.Kg = (int)(K / groups);
  p.out = out.data_ptr();
  p.out_C = (int)K;
  p.N = (int)N;
  p.Ho = (int)H;
  p.Wo = (int)W;
  p.shuffle_out = (int)shuffle_out;
  p.act = (int)act;
  gconv::run(x.scalar_type(), /*dw=*/false, nhwc, p, stream());
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastconv, CUDA, m) { m.impl("group_conv1x1_cuda", &group_conv1x1_cuda); }

}  // namespace fastconv
