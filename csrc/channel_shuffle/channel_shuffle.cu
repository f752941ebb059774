// fastconv::channel_shuffle_cuda: one bandwidth-bound permutation pass (kernels in channel_shuffle.cuh).
#include "channel_shuffle/channel_shuffle.cuh"
#include "common.h"

namespace fastconv {
namespace {

// x: (N, C, H, W) -> (N, C, H, W) in x's memory format; out[:, i*groups + j] = x[:, j*(C/groups) + i].
at::Tensor channel_shuffle_cuda(const at::Tensor& x, int64_t groups) {
  check_cuda(x, "x");
  TORCH_CHECK(x.dim() == 4, "channel_shuffle: x must be 4-D");
  const c10::cuda::CUDAGuard guard(x.device());
  const bool nhwc = is_nhwc(x);
  TORCH_CHECK(nhwc || x.is_contiguous(), "channel_shuffle: x must be NCHW- or NHWC-contiguous");
  const int64_t C = x.size(1);
  TORCH_CHECK(groups >= 1 && C % groups == 0, "channel_shuffle: groups must divide the channels");
  at::Tensor out = at::empty(x.sizes(), x.options().memory_format(nhwc ? at::MemoryFormat::ChannelsLast
                                                                        : at::MemoryFormat::Contiguous));
  if (x.numel() == 0) return out;
  shuffle::Params p{x.data_ptr(), out.data_ptr(), x.size(0), C, x.size(2) * x.size(3), groups};
  switch (x.element_size()) {
    case 2: shuffle::launch<uint16_t>(p, nhwc, stream()); break;
    case 4: shuffle::launch<uint32_t>(p, nhwc, stream()); break;
    case 8: shuffle::launch<uint64_t>(p, nhwc, stream()); break;  // float64 (gradcheck)
    default: TORCH_CHECK(false, "channel_shuffle: unsupported dtype ", x.scalar_type());
  }
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(fastconv, CUDA, m) { m.impl("channel_shuffle_cuda", &channel_shuffle_cuda); }

}  // namespace fastconv
