// channel_shuffle kernels: out[:, i*g + j] = x[:, j*(C/g) + i], a pure permutation, so the kernels
// move raw bits (E = 2-, 4- or 8-byte elements; fp16/bf16 share the 2-byte instantiation).
//
// NCHW: every output plane is one whole input plane. One thread moves one 16-byte vector (V
//   elements) when H*W*sizeof(E) and both base pointers are 16-byte aligned; otherwise (14x14, 7x7
//   maps, misaligned x) it gathers V elements and makes one 16-byte store (output aligned), else one
//   element.
//   Grid-stride over the flat output; the index type I is 32-bit when the tensor allows it
//   (divisions dominate the arithmetic).
// NHWC: every pixel's channel row is permuted in place of the copy: a thread writes V consecutive
//   output channels (one 16-byte store when C*sizeof(E) allows) gathered from the same input row,
//   which is in L1 after the first warp touches it.
// No shared memory; a handful of registers (see channel_shuffle_kernels.cu).
#pragma once

#include <cstdint>

#include "kernel_common.h"

namespace fastconv {
namespace shuffle {

struct Params {
  const void* x;
  void* out;
  int64_t N, C, HW;
  int64_t groups;
};

// VEC: elements per thread (16 / sizeof(E) on the vector path, 1 otherwise).
template <typename E, int VEC, typename I>
__global__ void __launch_bounds__(256) shuffle_nchw_kernel(const E* __restrict__ x, E* __restrict__ out, I C, I HW,
                                                           I cpg, I groups, I total_vec) {
  const I hwv = HW / VEC;
  for (I v = (I)blockIdx.x * blockDim.x + threadIdx.x; v < total_vec; v += (I)gridDim.x * blockDim.x) {
    const I plane = v / hwv, within = v - plane * hwv;
    const I n = plane / C, oc = plane - n * C;
    const I ic = (oc % groups) * cpg + oc / groups;
    const I src = ((n * C + ic) * hwv + within);  // in vectors
    if (VEC == 1) {
      out[v] = x[src];
    } else {
      reinterpret_cast<uint4*>(out)[v] = reinterpret_cast<const uint4*>(x)[src];
    }
  }
}

// NCHW when planes do not hold whole 16-byte vectors (H*W % V != 0: the 14x14 and 7x7 maps) or x is
// misaligned: each thread gathers the V consecutive output elements of one 16-byte output vector
// (they may straddle planes: the source plane is re-derived on the wrap) and stores them at once;
// the loads stay coalesced along the plane. Vector nvec (the last, v == total / V) is the < V tail.
template <typename E, typename I>
__global__ void __launch_bounds__(256) shuffle_nchw_gather_kernel(const E* __restrict__ x, E* __restrict__ out, I C,
                                                                  I HW, I cpg, I groups, I total) {
  constexpr int V = 16 / int(sizeof(E));
  const I nvec = total / V;
  auto src_plane = [&](I pl) {
    const I n = pl / C, oc = pl - n * C;
    return n * C + (oc % groups) * cpg + oc / groups;
  };
  for (I v = (I)blockIdx.x * blockDim.x + threadIdx.x; v <= nvec; v += (I)gridDim.x * blockDim.x) {
    const I base = v * V;
    I plane = base / HW, within = base - plane * HW;
    I sp = src_plane(plane);
    const int cnt = v < nvec ? V : int(total - base);
    union {
      uint4 u;
      E e[V];
    } pack;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      if (j < cnt) {
        if (within == HW) {
          ++plane;
          within = 0;
          sp = src_plane(plane);
        }
        pack.e[j] = x[sp * HW + within];
        ++within;
      }
    }
    if (v < nvec) {
      reinterpret_cast<uint4*>(out)[v] = pack.u;
    } else {
#pragma unroll
      for (int j = 0; j < V; ++j)  // compile-time indices keep pack in registers
        if (j < cnt) out[base + j] = pack.e[j];
    }
  }
}

template <typename E, int VEC, typename I>
__global__ void __launch_bounds__(256) shuffle_nhwc_kernel(const E* __restrict__ x, E* __restrict__ out, I C,
                                                           I cpg, I groups, I total_vec) {
  for (I v = (I)blockIdx.x * blockDim.x + threadIdx.x; v < total_vec; v += (I)gridDim.x * blockDim.x) {
    const I base = v * VEC;
    const I row = base / C, oc0 = base - row * C;
    const E* __restrict__ xr = x + row * C;
    if (VEC == 1) {
      out[base] = xr[(oc0 % groups) * cpg + oc0 / groups];
    } else {
      union {
        uint4 u;
        E e[VEC];
      } pack;
#pragma unroll
      for (int j = 0; j < VEC; ++j) {
        const I oc = oc0 + j;
        pack.e[j] = xr[(oc % groups) * cpg + oc / groups];
      }
      reinterpret_cast<uint4*>(out)[v] = pack.u;
    }
  }
}

template <typename E>
void launch(const Params& p, bool nhwc, cudaStream_t stream);

}  // namespace shuffle
}  // namespace fastconv
