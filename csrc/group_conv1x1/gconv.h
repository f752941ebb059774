// Host-visible interface of the fused grouped 1x1 GEMM ("gconv") used by group_conv1x1,
// shufflenet_v1_unit and shufflenet_v2_unit. One kernel family covers every pointwise stage of
// those ops; the variations (what feeds the B operand, where the epilogue stores, what extra
// blocks write beside the GEMM) are runtime fields of Params or the DW / NHWC template flags.
//
// The GEMM per group g (out channels k in [g*Kg, (g+1)*Kg), pixels P in [0, N*Ho*Wo)):
//   acc[k][P] = sum_{c < Cg} w[k][c] * B[g*Cg + c][P]
//   plain (DW=false): B[ch][P] = x[img, x_c0 + shuffle_src(ch), ho, wo]           (Ho == H, Wo == W)
//   DW=true:          B[ch][P] = dw_b[ch] + sum_3x3 dw_w[ch] * x[img, x_c0 + ch, ho*stride-1+dy, wo*stride-1+dx]
//   out[img, out_mul * shuffle_dst(k) + out_off, ho, wo] = act(acc + bias[k] (+ res at that same index))
// Extra blocks (grid.y beyond the GEMM tiles; DW launches only) write a side branch into the same output:
//   kSideAvgPool: out[img, side_mul*c + side_off] = act'(avg_pool3x3(side_x[img, c]), stride, pad 1, /9)
//   kSideCopy:    out[img, side_mul*c + side_off] = act'(side_x[img, c, ho, wo])   (stride 1 only)
// x, side_x, res and out share one memory format (NHWC template flag) and element type.
#pragma once

#include "kernel_common.h"

namespace fastconv {
namespace gconv {

enum Side : int { kSideNone = 0, kSideAvgPool = 1, kSideCopy = 2 };

struct Params {
  // B operand source
  const void* x = nullptr;
  int x_C = 0;        // channels of the x tensor (its channel stride in NHWC, plane count in NCHW)
  int x_c0 = 0;       // first channel read (ShuffleNetV2 split = strided read)
  int H = 0, W = 0;   // x spatial size
  int shuffle_in = 0; // 0, or s: logical channel ch reads x channel (ch % s) * (Cin / s) + ch / s
  const void* dw_w = nullptr;  // DW only: (groups*Cg, 1, 3, 3), indexed by logical channel
  const void* dw_b = nullptr;
  int stride = 1;     // DW / side pooling stride
  // GEMM
  const void* w = nullptr;     // (groups*Kg, Cg) row-major
  const void* bias = nullptr;  // (groups*Kg) or null
  int groups = 1, Cg = 0, Kg = 0;
  // output
  void* out = nullptr;
  int out_C = 0;
  int N = 0, Ho = 0, Wo = 0;
  int shuffle_out = 0;         // 0, or s: logical out channel k lands at (k % (K/s)) * s + k / (K/s)
  int out_mul = 1, out_off = 0;
  int act = 0;
  const void* res = nullptr;   // residual, same shape/format as out (added before act)
  // side branch
  int side = kSideNone;
  const void* side_x = nullptr;
  int side_C = 0;              // channels of side_x that are written
  int side_xC = 0;             // channel count of the side_x tensor
  int side_mul = 1, side_off = 0;
  int side_act = 0;
  // Filled by gconv::plan (gconv_kernel.cuh), shared by the launcher and the host emulator:
  int tiles_h = 0, tiles_w = 0;  // DW: 8 x 8 output tiles per image
  int cc = 0;                    // DW: depthwise channel chunk (one halo buffer's depth)
  int ca = 0;                    // DW: channels of the depthwise result resident in smem
  int xbytes = 0, wbytes = 0;    // cp.async width for x rows / weight rows (16, 8, 4; 0 = scalar)
  bool x_pix_vec = false;        // plain NCHW: 16-byte loads of 16/sizeof(T) consecutive pixels
  bool dw_vec = false;           // DW: 16-byte loads of the depthwise taps (and bias)
  bool vec_out = false;          // 16-byte epilogue stores
  bool side_vec_in = false, side_vec_out = false;  // 8-channel side-branch loads / stores
  bool side_pair = false;        // DW NHWC: the passthrough copy fused into the epilogue's 16-byte stores
  size_t smem = 0;               // dynamic shared memory per CTA
};

// Defined in gconv_launch.cuh, explicitly instantiated in gconv_{f32,f16,bf16}.cu.
template <typename T, bool DW, bool NHWC>
void launch(const Params& p, cudaStream_t stream);

}  // namespace gconv
}  // namespace fastconv
