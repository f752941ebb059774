// Launch + explicit instantiations of the channel_shuffle kernels for 2- and 4-byte elements.
// ptxas sm_90: 14-34 registers (the NCHW gather kernel the most), no spills or stack, no shared memory.
#include "channel_shuffle/channel_shuffle.cuh"

namespace fastconv {
namespace shuffle {

template <typename E, int VEC, typename I>
static void launch_typed(const Params& p, bool nhwc, cudaStream_t stream) {
  const int64_t total = p.N * p.C * p.HW;
  const int64_t total_vec = total / VEC;
  constexpr int threads = 256;
  // Enough blocks to fill any current GPU several times over; the grid-stride loop does the rest.
  const int64_t blocks = std::min<int64_t>((total_vec + threads - 1) / threads, 1 << 20);
  const E* x = static_cast<const E*>(p.x);
  E* out = static_cast<E*>(p.out);
  const I cpg = (I)(p.C / p.groups);
  if (nhwc) {
    shuffle_nhwc_kernel<E, VEC, I><<<(unsigned)blocks, threads, 0, stream>>>(x, out, (I)p.C, cpg, (I)p.groups,
                                                                              (I)total_vec);
  } else {
    shuffle_nchw_kernel<E, VEC, I><<<(unsigned)blocks, threads, 0, stream>>>(x, out, (I)p.C, (I)p.HW, cpg,
                                                                              (I)p.groups, (I)total_vec);
  }
  FASTCONV_CHECK_LAUNCH();
}

template <typename E, typename I> static void launch_gather(const Params& p, cudaStream_t stream) {
  const int64_t total = p.N * p.C * p.HW;
  constexpr int threads = 256, V = 16 / sizeof(E);
  const int64_t blocks = std::min<int64_t>((total / V + 1 + threads - 1) / threads, 1 << 20);
  shuffle_nchw_gather_kernel<E, I><<<(unsigned)blocks, threads, 0, stream>>>(
      static_cast<const E*>(p.x), static_cast<E*>(p.out), (I)p.C, (I)p.HW, (I)(p.C / p.groups), (I)p.groups, (I)total);
  FASTCONV_CHECK_LAUNCH();
}

template <typename E>
void launch(const Params& p, bool nhwc, cudaStream_t stream) {
  constexpr int V = 16 / sizeof(E);
  const int64_t total = p.N * p.C * p.HW;
  // The vector path needs every vector inside one plane (NCHW) / one pixel row (NHWC) and 16-byte
  // aligned bases; at::empty outputs are, inputs may sit at an odd storage offset.
  const int64_t unit = nhwc ? p.C : p.HW;
  const bool vec = unit % V == 0 && reinterpret_cast<uintptr_t>(p.x) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(p.out) % 16 == 0;
  // 32-bit indices when every intermediate (at most total + one grid stride) fits.
  const bool small = total + (int64_t(1) << 28) < (int64_t(1) << 32);
  if (vec) {
    small ? launch_typed<E, V, uint32_t>(p, nhwc, stream) : launch_typed<E, V, uint64_t>(p, nhwc, stream);
  } else if (!nhwc && reinterpret_cast<uintptr_t>(p.out) % 16 == 0) {
    small ? launch_gather<E, uint32_t>(p, stream) : launch_gather<E, uint64_t>(p, stream);
  } else {
    small ? launch_typed<E, 1, uint32_t>(p, nhwc, stream) : launch_typed<E, 1, uint64_t>(p, nhwc, stream);
  }
}

template void launch<uint16_t>(const Params&, bool, cudaStream_t);
template void launch<uint32_t>(const Params&, bool, cudaStream_t);
template void launch<uint64_t>(const Params&, bool, cudaStream_t);

}  // namespace shuffle
}  // namespace fastconv
