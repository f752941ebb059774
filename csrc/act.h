// Activation codes and formulas shared by every CUDA kernel and by the host emulator (csrc/host_emu),
// so the emulated tests exercise these exact lines. Keep the codes in sync with fastconv/_common.py.
// Clamps are written with comparisons, not fmaxf/fminf: those return the non-NaN operand, which would
// turn relu(NaN) into 0 where PyTorch propagates NaN.
#pragma once

namespace fastconv {

enum Act : int { kNone = 0, kRelu = 1, kRelu6 = 2, kHardswish = 3, kSilu = 4, kHardsigmoid = 5, kSigmoid = 6,
                 kGelu = 7, kGeluTanh = 8 };

__device__ __forceinline__ float clamp_nan(float v, float lo, float hi) {
  return v < lo ? lo : (v > hi ? hi : v);  // NaN fails both tests and passes through
}

__device__ __forceinline__ float apply_act(float v, int act) {
  switch (act) {
    case kRelu: return v < 0.f ? 0.f : v;
    case kRelu6: return clamp_nan(v, 0.f, 6.f);
    case kHardswish: return v * clamp_nan(v + 3.f, 0.f, 6.f) * (1.f / 6.f);
    case kSilu: return v / (1.f + __expf(-v));
    case kHardsigmoid: return clamp_nan(v + 3.f, 0.f, 6.f) * (1.f / 6.f);
    case kSigmoid: return 1.f / (1.f + __expf(-v));
    // erff, not an approximation: "gelu" is PyTorch's exact (erf) GELU
    case kGelu: return 0.5f * v * (1.f + erff(v * 0.70710678118654752f));
    // 0.5 * (1 + tanh(u)) == sigmoid(2u): one exp instead of tanhf
    case kGeluTanh: return v / (1.f + __expf(-1.59576912160573071f * (v + 0.044715f * v * v * v)));
    default: return v;
  }
}

}  // namespace fastconv
