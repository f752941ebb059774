// Helpers for the op glue files (csrc/<op>/<op>.cpp or .cu: schema registration, input checks, launch
// parameters): dtype dispatch, input checks and the current-stream accessor. Kernel translation
// units include kernel_common.h instead, which leaves ATen out.
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "kernel_common.h"

namespace fastconv {

// Maps an ATen dtype to the CUDA element type and calls f.template operator()<T>().
template <typename F>
void dispatch_dtype(at::ScalarType t, const char* op, F&& f) {
  switch (t) {
    case at::kFloat: f.template operator()<float>(); break;
    case at::kHalf: f.template operator()<__half>(); break;
    case at::kBFloat16: f.template operator()<__nv_bfloat16>(); break;
    default: TORCH_CHECK(false, op, ": unsupported dtype ", t, " (float32, float16, bfloat16 only)");
  }
}

inline bool is_nhwc(const at::Tensor& x) {
  return !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
}

inline void check_cuda(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor");
}

inline cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

inline const void* opt_ptr(const std::optional<at::Tensor>& t) {
  return t.has_value() ? t->data_ptr() : nullptr;
}

}  // namespace fastconv
