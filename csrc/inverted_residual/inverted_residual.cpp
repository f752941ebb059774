// fastconv::inverted_residual_cuda: host launcher for the inverted residual kernels
// (inverted_residual.cuh; per-dtype instantiations in inverted_residual_{fp32,fp16,bf16}.cu).
//
// x arrives NCHW- or NHWC-contiguous; every kernel addresses x and out through strides (no
// conversion copy); the output is allocated in x's memory format.
// Without SE: one launch. With SE: pass 1 + SE MLP + pass 2 (three launches, h round-trips HBM
// once), scratch h (N*Ho*Wo*E elements of T) and fp32 partial sums / gates from at::empty.
//
// Tiling, copy widths, shared memory and the persistent grid are chosen per dtype by ir::plan
// (inverted_residual_kernel.cuh, whose header also lists registers / smem / occupancy per variant).
#include "common.h"
#include "inverted_residual/inverted_residual.h"

namespace fastconv {

extern template int ir_se_tiles<float>(IrParams);
extern template int ir_se_tiles<__half>(IrParams);
extern template int ir_se_tiles<__nv_bfloat16>(IrParams);
extern template void launch_ir_fused<float>(IrParams, cudaStream_t);
extern template void launch_ir_fused<__half>(IrParams, cudaStream_t);
extern template void launch_ir_fused<__nv_bfloat16>(IrParams, cudaStream_t);
extern template void launch_ir_se<float>(IrParams, SeParams, cudaStream_t);
extern template void launch_ir_se<__half>(IrParams, SeParams, cudaStream_t);
extern template void launch_ir_se<__nv_bfloat16>(IrParams, SeParams, cudaStream_t);

namespace {

// Functors rather than templated lambdas so the file also builds as C++17 (older torch).
struct SeTiles {
  const IrParams& p;
  int& tiles;
  template <typename T> void operator()() const { tiles = ir_se_tiles<T>(p); }
};
struct LaunchFused {
  const IrParams& p;
  template <typename T> void operator()() const { launch_ir_fused<T>(p, stream()); }
};
struct LaunchSe {
  const IrParams& p;
  const SeParams& s;
  template <typename T> void operator()() const { launch_ir_se<T>(p, s, stream()); }
};

void check_opt(const std::optional<at::Tensor>& t, const at::Tensor& x, int64_t numel, const char* name) {
  if (!t) return;
  check_cuda(*t, name);
  TORCH_CHECK(t->scalar_type() == x.scalar_type(), "inverted_residual_cuda: ", name, " dtype mismatch");
  TORCH_CHECK(t->is_contiguous() && t->numel() == numel, "inverted_residual_cuda: ", name, " must be contiguous with ",
              numel, " elements");
}

at::Tensor inverted_residual_cuda(const at::Tensor& x, const std::optional<at::Tensor>& expand_weight,
                                  const at::Tensor& dw_weight, const at::Tensor& project_weight,
                                  const std::optional<at::Tensor>& expand_bias, const std::optional<at::Tensor>& dw_bias,
                                  const std::optional<at::Tensor>& project_bias, const std::optional<at::Tensor>& se_w1,
                                  const std::optional<at::Tensor>& se_b1, const std::optional<at::Tensor>& se_w2,
                                  const std::optional<at::Tensor>& se_b2, int64_t stride, int64_t padding, int64_t act,
                                  int64_t se_act, int64_t se_gate, bool residual) {
  check_cuda(x, "x");
  c10::cuda::CUDAGuard guard(x.device());
  TORCH_CHECK(x.dim() == 4, "inverted_residual_cuda: x must be 4-D");
  const bool nhwc = is_nhwc(x);
  TORCH_CHECK(nhwc || x.is_contiguous(), "inverted_residual_cuda: x must be NCHW- or NHWC-contiguous");
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t E = expand_weight ? expand_weight->size(0) : C;
  const int64_t k = dw_weight.size(-1), K = project_weight.size(0);
  check_opt(expand_weight, x, E * C, "expand_weight");
  TORCH_CHECK(dw_weight.is_contiguous() && dw_weight.numel() == E * k * k && k % 2 == 1,
              "inverted_residual_cuda: dw_weight must be (E, 1, k, k) contiguous with odd k");
  TORCH_CHECK(project_weight.is_contiguous() && project_weight.numel() == K * E,
              "inverted_residual_cuda: project_weight must be (K, E, 1, 1) contiguous");
  TORCH_CHECK(dw_weight.scalar_type() == x.scalar_type() && project_weight.scalar_type() == x.scalar_type(),
              "inverted_residual_cuda: dtype mismatch");
  check_opt(expand_bias, x, E, "expand_bias");
  check_opt(dw_bias, x, E, "dw_bias");
  check_opt(project_bias, x, K, "project_bias");
  TORCH_CHECK(!expand_bias || expand_weight, "inverted_residual_cuda: expand_bias without expand_weight");
  TORCH_CHECK(stride >= 1 && stride < (1 << 16) && padding >= 0 && padding < (1 << 16) && k < 256,
              "inverted_residual_cuda: stride/padding/kernel size out of range");
  const int64_t Ho = (H + 2 * padding - (k - 1) - 1) / stride + 1;
  const int64_t Wo = (W + 2 * padding - (k - 1) - 1) / stride + 1;
  TORCH_CHECK(Ho >= 1 && Wo >= 1, "inverted_residual_cuda: empty output");
  TORCH_CHECK(!residual || (K == C && Ho == H && Wo == W),
              "inverted_residual_cuda: residual needs the output shape to equal x's");
  TORCH_CHECK(N * Ho * Wo < (int64_t(1) << 31) - 64 && H * W < (int64_t(1) << 31) && E < (1 << 30) &&
                  C < (1 << 30) && K < (1 << 30),
              "inverted_residual_cuda: tensor too large for 32-bit pixel indexing");
  const bool se = se_w1.has_value();
  int64_t S = 0;
  if (se) {
    TORCH_CHECK(se_w2.has_value(), "inverted_residual_cuda: se_w1 given without se_w2");
    S = se_w1->size(0);
    check_opt(se_w1, x, S * E, "se_w1");
    check_opt(se_w2, x, E * S, "se_w2");
    check_opt(se_b1, x, S, "se_b1");
    check_opt(se_b2, x, E, "se_b2");
  }

  at::Tensor out = at::empty({N, K, Ho, Wo}, x.options().memory_format(nhwc ? at::MemoryFormat::ChannelsLast
                                                                              : at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out;

  IrParams p{};
  p.x = x.data_ptr();
  p.we = opt_ptr(expand_weight);
  p.wd = dw_weight.data_ptr();
  p.wp = project_weight.data_ptr();
  p.be = opt_ptr(expand_bias);
  p.bd = opt_ptr(dw_bias);
  p.bp = opt_ptr(project_bias);
  p.out = out.data_ptr();
  p.N = int(N); p.C = int(C); p.H = int(H); p.W = int(W); p.E = int(E); p.K = int(K);
  p.Ho = int(Ho); p.Wo = int(Wo);
  p.k = int(k); p.stride = int(stride); p.pad = int(padding); p.act = int(act);
  for (int i = 0; i < 4; ++i) {
    p.xs[i] = x.stride(i);
    p.os[i] = out.stride(i);
  }
  p.nhwc = nhwc;
  p.residual = residual;

  // Tiling, copy widths and the persistent grid are chosen per dtype by ir::plan (inverted_residual_kernel.cuh).
  if (!se) {
    dispatch_dtype(x.scalar_type(), "inverted_residual_cuda", LaunchFused{p});
    return out;
  }
  at::Tensor hbuf = at::empty({N * Ho * Wo, E}, x.options());
  at::Tensor gate = at::empty({N, E}, x.options().dtype(at::kFloat));
  p.hbuf = hbuf.data_ptr();
  int tiles_img = 0;
  dispatch_dtype(x.scalar_type(), "inverted_residual_cuda", SeTiles{p, tiles_img});
  at::Tensor partial = at::empty({N * tiles_img, E}, x.options().dtype(at::kFloat));
  p.partial = partial.data_ptr<float>();
  p.gate = gate.data_ptr<float>();
  SeParams s{};
  s.partial = p.partial;
  s.w1 = se_w1->data_ptr();
  s.b1 = opt_ptr(se_b1);
  s.w2 = se_w2->data_ptr();
  s.b2 = opt_ptr(se_b2);
  s.gate = gate.data_ptr<float>();
  s.N = int(N); s.E = int(E); s.S = int(S);
  s.tiles = tiles_img;
  s.inv_hw = float(1.0 / double(Ho * Wo));
  s.se_act = int(se_act);
  s.se_gate = int(se_gate);
  dispatch_dtype(x.scalar_type(), "inverted_residual_cuda", LaunchSe{p, s});
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastconv, CUDA, m) { m.impl("inverted_residual_cuda", &inverted_residual_cuda); }

}  // namespace fastconv
