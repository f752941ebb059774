// Host stand-in for csrc/common.h used only by emu_test.cpp (same act formulas and conversions).
#pragma once
#include "emu.h"
namespace fastconv {
enum Act : int { kNone = 0, kRelu = 1, kRelu6 = 2, kHardswish = 3, kSilu = 4, kHardsigmoid = 5, kSigmoid = 6 };
inline float apply_act(float v, int act) {
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
