// The ATen side of gconv, shared by the op glue files of group_conv1x1, shufflenet_v1_unit and
// shufflenet_v2_unit (gconv.h itself stays ATen-free: it is included by the kernel translation units).
#pragma once

#include "common.h"
#include "group_conv1x1/gconv.h"

namespace fastconv {
namespace gconv {

// Validates the launch shape and picks the instantiation (defined in group_conv1x1.cpp).
void run(at::ScalarType dtype, bool dw, bool nhwc, const Params& p, cudaStream_t stream);

inline at::Tensor empty_act(const at::Tensor& like, at::IntArrayRef shape, bool nhwc) {
  return at::empty(shape, like.options().memory_format(nhwc ? at::MemoryFormat::ChannelsLast
                                                             : at::MemoryFormat::Contiguous));
}

}  // namespace gconv
}  // namespace fastconv
