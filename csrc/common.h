// fastconv shared CUDA helpers: activation codes (keep in sync with fastconv/_common.py ACTS),
// dtype conversion, input checks and the current-stream accessor every launcher uses.
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <torch/library.h>

namespace fastconv {

enum Act : int { kNone = 0, kRelu = 1, kRelu6 = 2, kHardswish = 3, kSilu = 4, kHardsigmoid = 5, kSigmoid = 6 };

__device__ __forceinline__ float apply_act(float v, int act) {
  switch (act) {
    case kRelu: return fmaxf(v, 0.f);
    case kRelu6: return fminf(fmaxf(v, 0.f), 6.f);
    case kHardswish: return v * fminf(fmaxf(v + 3.f, 0.f), 6.f) * (1.f / 6.f);
    case kSilu: return v / (1.f + __expf(-v));
    case kHardsigmoid: return fminf(fmaxf(v + 3.f, 0.f), 6.f) * (1.f / 6.f);
    case kSigmoid: return 1.f / (1.f + __expf(-v));
    default: return v;
  }
}

template <typename T> __device__ __forceinline__ float to_float(T v);
template <> __device__ __forceinline__ float to_float<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_float<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

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

#define FASTCONV_CHECK_LAUNCH() C10_CUDA_KERNEL_LAUNCH_CHECK()
