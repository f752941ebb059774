// The depthwise_conv2d forward kernel (csrc/depthwise_conv2d/) under host emulation vs a double-precision
// direct convolution: every (k, stride) instantiation and the generic one (k 9/13/31, dilation), both
// tiles, NHWC (16-byte cp.async halo, vector stores; and C % 8 != 0: narrower copies, scalar stores) and
// NCHW, image borders, C not a multiple of the channel chunk, no bias, every activation; shared memory
// past the kernel's layout must stay untouched.
//   g++ -std=c++20 -O0 -g1 -fsanitize=address,undefined -Icsrc/host_emu -Icsrc \
//       csrc/host_emu/depthwise_emu_test.cpp -o /tmp/depthwise_emu_test -pthread && /tmp/depthwise_emu_test
#include "kernel_common.h"
#include "depthwise_conv2d/depthwise_conv2d_kernel.cuh"
#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace fastconv { namespace dwconv { alignas(128) unsigned char smem[1 << 20]; } }

using namespace fastconv;

static std::mt19937 rng(11);
static int fails = 0, passes = 0;

template <typename T> static const char* tname() {
  return std::is_same<T, float>::value ? "f32" : std::is_same<T, __half>::value ? "f16" : "bf16";
}
template <typename T> static double tol() { return std::is_same<T, float>::value ? 1e-5 : std::is_same<T, __half>::value ? 2e-3 : 1.6e-2; }

static double act_d(double v, int act) {
  switch (act) {
    case kRelu: return v > 0 ? v : (v == v ? 0 : v);
    case kRelu6: return v < 0 ? 0 : v > 6 ? 6 : v;
    case kHardswish: return v * std::min(std::max(v + 3, 0.0), 6.0) / 6;
    case kSilu: return v / (1 + std::exp(-v));
    default: return v;
  }
}

template <typename T, int KS, int S, int TILE>
static void run(int N, int C, int H, int W, int k, int s, int d, int ph, int pw, bool nhwc, bool bias, int act) {
  std::normal_distribution<double> nd(0, 1);
  auto rnd = [&](size_t n, double scale, std::vector<T>& v, std::vector<double>& e) {
    v.resize(n); e.resize(n);
    for (size_t i = 0; i < n; ++i) { v[i] = from_float<T>(float(nd(rng) * scale)); e[i] = to_float(v[i]); }
  };
  std::vector<T> x, w, b; std::vector<double> xe, we, be;
  rnd(size_t(N) * C * H * W, 1.0, x, xe);
  rnd(size_t(C) * k * k, 1.0 / k, w, we);
  rnd(C, 0.1, b, be);
  const int Ho = (H + 2 * ph - d * (k - 1) - 1) / s + 1, Wo = (W + 2 * pw - d * (k - 1) - 1) / s + 1;
  DepthwiseParams p{};
  auto strides = [&](int64_t* st, int c, int h, int wd) {
    if (nhwc) { st[1] = 1; st[3] = c; st[2] = int64_t(wd) * c; st[0] = int64_t(h) * wd * c; }
    else { st[3] = 1; st[2] = wd; st[1] = int64_t(h) * wd; st[0] = int64_t(c) * h * wd; }
  };
  strides(p.xs, C, H, W);
  strides(p.os, C, Ho, Wo);
  std::vector<T> out(size_t(N) * C * Ho * Wo, from_float<T>(NAN));
  p.x = x.data(); p.w = w.data(); p.b = bias ? b.data() : nullptr; p.out = out.data();
  p.N = N; p.C = C; p.H = H; p.W = W; p.Ho = Ho; p.Wo = Wo; p.k = k; p.stride = s; p.dil = d; p.pad_h = ph; p.pad_w = pw;
  p.act = act;
  // the launcher's choices (depthwise_conv2d.cu / .cuh)
  p.in_bytes = nhwc ? std::min(stages::vec_bytes(x.data(), C, sizeof(T)), stages::vec_bytes(x.data(), 8, sizeof(T))) : 0;
  p.vec_out = nhwc && C % 8 == 0 && stages::vec_bytes(out.data(), 8, sizeof(T)) == 16;
  p.cc = dwconv::pick_cc(int(sizeof(T)), TILE, C, k, s, d, 100 * 1024);
  p.chunks = (C + p.cc - 1) / p.cc;
  p.tiles_w = (Wo + TILE - 1) / TILE;
  const size_t bytes = dwconv::make_layout(int(sizeof(T)), TILE, k, s, d, p.cc).bytes;
  memset(dwconv::smem + bytes, 0xAB, 65536);
  // grid (tiles, chunks, N): the emulator's 2-D launch runs y = n * chunks + chunk, split here
  emu_launch2d((Ho + TILE - 1) / TILE * p.tiles_w, N * p.chunks, TILE * TILE, [&] {
    const unsigned f = blockIdx.y;
    blockIdx.y = f % unsigned(p.chunks);
    blockIdx.z = f / unsigned(p.chunks);
    dwconv::depthwise_conv2d_fwd_kernel<T, KS, S, TILE>(p);
    blockIdx.y = f;
  });
  bool smem_ok = true;
  for (int i = 0; i < 65536; ++i) smem_ok = smem_ok && dwconv::smem[bytes + i] == 0xAB;
  double err = 0, scale = 0;
  for (int n = 0; n < N; ++n) for (int c = 0; c < C; ++c) for (int oy = 0; oy < Ho; ++oy) for (int ox = 0; ox < Wo; ++ox) {
    double acc = bias ? be[c] : 0;
    for (int ky = 0; ky < k; ++ky) for (int kx = 0; kx < k; ++kx) {
      const int hi = oy * s - ph + ky * d, wi = ox * s - pw + kx * d;
      if (hi >= 0 && hi < H && wi >= 0 && wi < W) acc += xe[n * p.xs[0] + c * p.xs[1] + hi * p.xs[2] + wi * p.xs[3]] * we[(c * k + ky) * k + kx];
    }
    const double ref = act_d(acc, act);
    const double got = to_float(out[n * p.os[0] + c * p.os[1] + oy * p.os[2] + ox * p.os[3]]);
    const double e = std::fabs(got - ref);
    err = e <= err ? err : (std::isnan(e) ? 1e30 : e);
    scale = std::max(scale, std::fabs(ref));
  }
  const bool ok = smem_ok && err <= tol<T>() * std::max(1.0, scale);
  (ok ? passes : fails) += 1;
  printf("%s depthwise %s KS%d S%d TILE%d N%d C%d %dx%d k%d s%d d%d p%d,%d %s bias%d act%d cc%d bytes%d vec%d err=%.3g%s\n",
         ok ? "PASS" : "FAIL", tname<T>(), KS, S, TILE, N, C, H, W, k, s, d, ph, pw, nhwc ? "nhwc" : "nchw", bias, act, p.cc,
         p.in_bytes, p.vec_out, err, smem_ok ? "" : " SMEM OVERRUN");
}

template <typename T> static void all() {
  for (bool nhwc : {true, false}) {
    run<T, 3, 1, 16>(2, 32, 19, 18, 3, 1, 1, 1, 1, nhwc, true, kRelu6);     // borders, partial tiles
    run<T, 3, 2, 16>(1, 20, 33, 31, 3, 2, 1, 1, 1, nhwc, false, kNone);     // C % 8 != 0, stride 2
    run<T, 5, 1, 16>(1, 40, 17, 17, 5, 1, 1, 2, 2, nhwc, true, kHardswish); // two chunks, the last partial
    run<T, 5, 2, 8>(2, 16, 13, 14, 5, 2, 1, 2, 2, nhwc, true, kSilu);
    run<T, 7, 1, 8>(1, 24, 7, 7, 7, 1, 1, 3, 3, nhwc, true, kNone);          // ConvNeXt stage 4, small tile
    run<T, 7, 2, 16>(1, 8, 35, 34, 7, 2, 1, 3, 3, nhwc, true, kRelu);
    run<T, 0, 0, 16>(1, 16, 20, 20, 3, 1, 2, 2, 2, nhwc, true, kRelu);       // dilation 2: generic path
    run<T, 0, 0, 16>(1, 8, 21, 19, 9, 1, 1, 4, 4, nhwc, true, kNone);
    run<T, 0, 0, 8>(1, 16, 7, 7, 13, 1, 1, 6, 6, nhwc, true, kNone);         // RepLKNet 13x13 at 7x7
    run<T, 0, 0, 16>(1, 8, 33, 32, 31, 1, 1, 15, 15, nhwc, true, kNone);     // RepLKNet 31x31
    run<T, 0, 0, 16>(1, 8, 23, 22, 3, 3, 1, 1, 0, nhwc, false, kRelu6);      // stride 3, padding (1, 0)
  }
}

int main() {
  all<float>();
  all<__half>();
  all<__nv_bfloat16>();
  printf("%d passed, %d failures\n", passes, fails);
  return fails != 0;
}
