// Host stand-in for csrc/kernel_common.h, used by the *_emu_test.cpp harnesses (the real act.h, host
// conversions; no CUDA runtime, no c10).
#pragma once
#include "emu.h"
#include "act.h"
namespace fastconv {
template <typename T> inline float to_float(T v);
template <> inline float to_float<float>(float v) { return v; }
template <> inline float to_float<__half>(__half v) { return float(v.h); }
template <> inline float to_float<__nv_bfloat16>(__nv_bfloat16 v) { return bf2f(v); }
template <typename T> inline T from_float(float v);
template <> inline float from_float<float>(float v) { return v; }
template <> inline __half from_float<__half>(float v) { return {_Float16(v)}; }
template <> inline __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return f2bf(v); }
}  // namespace fastconv
#define FASTCONV_CHECK_LAUNCH()
