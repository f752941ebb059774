// What every kernel translation unit needs (the per-dtype *_fp16.cu / *_bf16.cu / *_fp32.cu files
// and their launchers): CUDA element types, float <-> T conversion, activations (act.h), and the
// launch checks (TORCH_CHECK, C10_CUDA_CHECK). Deliberately no ATen: parsing ATen/ATen.h costs nvcc
// ~35 s per translation unit (cudafe++ and the host compiler both read it), which was most of the
// build. ATen-facing helpers for the op glue files are in common.h. The host emulator has its own
// stand-in of this header (csrc/host_emu/kernel_common.h).
#pragma once

#include <c10/cuda/CUDAException.h>
#include <c10/util/Exception.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "act.h"

namespace fastconv {

template <typename T> __device__ __forceinline__ float to_float(T v);
template <> __device__ __forceinline__ float to_float<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_float<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

}  // namespace fastconv

#define FASTCONV_CHECK_LAUNCH() C10_CUDA_KERNEL_LAUNCH_CHECK()
