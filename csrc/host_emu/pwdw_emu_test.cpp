// Host emulation test of the pwdw_conv2d CUDA kernel (csrc/pwdw_conv2d) against a double-precision
// reference, for machines without a GPU: each CUDA thread is a std::thread, __syncthreads a
// std::barrier, the csrc/stages copies and mma fragments are emulated per lane. ASan catches
// out-of-bounds global accesses, a canary after the dynamic shared-memory layout catches shared
// overflows. Run from the repository root (tests/test_cuda_emulation.py does):
//   g++ -std=c++20 -O0 -g1 -fsanitize=address,undefined -Icsrc/host_emu -Icsrc \
//       csrc/host_emu/pwdw_emu_test.cpp -o /tmp/pwdw_emu -pthread && /tmp/pwdw_emu
// The launcher's kernel selection (fast path vs generic) is mirrored here by hand.
#include "kernel_common.h"
#include "pwdw_conv2d/pwdw_conv2d_kernel.cuh"
#include <cstdio>
#include <random>
#include <string>

namespace fastconv { namespace pwdw { alignas(128) unsigned char smem[1 << 20]; } }
using namespace fastconv;

static std::mt19937 rng(7);
#include "tensors.h"  // uses rng
static int fails = 0;
constexpr int kCanary = 65536;

template <typename T> static double tol() { return std::is_same<T, float>::value ? 2e-4 : std::is_same<T, __half>::value ? 1.5e-2 : 6e-2; }
template <typename T> static const char* tname() { return std::is_same<T, float>::value ? "f32" : std::is_same<T, __half>::value ? "f16" : "bf16"; }

template <typename T>
static void test(int N, int C, int H, int W, int M, int mult, int k, int stride, int dil, int a1, int a2, bool bias,
                 bool concat, bool res, bool nhwc) {
  const int pad = (k / 2) * dil;
  const int Ho = (H + 2 * pad - dil * (k - 1) - 1) / stride + 1, Wo = (W + 2 * pad - dil * (k - 1) - 1) / stride + 1;
  const int K = M * mult + (concat ? M : 0);
  Tns x = make(N, C, H, W, nhwc, 1.0);
  auto xd = dev<T>(x.v);
  auto pw = rvec(size_t(M) * C, 1.0 / std::sqrt(double(C)));
  auto pwd = dev<T>(pw);
  auto dw = rvec(size_t(M) * mult * k * k, 1.0 / k);
  auto dwd = dev<T>(dw);
  auto pb = rvec(M, 0.3), db = rvec(size_t(M) * mult, 0.3);
  auto pbd = dev<T>(pb);
  auto dbd = dev<T>(db);
  Tns r = make(N, K, Ho, Wo, nhwc, 1.0);
  auto rd = dev<T>(r.v);
  // reference: h rounded to T (as stored unfused), y rounded to T before the residual
  Tns h = make(N, M, H, W, false, 0.0), ref = make(N, K, Ho, Wo, nhwc, 0.0);
  auto rnd = [](double v) { return double(to_float(from_float<T>(float(v)))); };
  for (int n = 0; n < N; ++n) for (int m = 0; m < M; ++m) for (int i = 0; i < H; ++i) for (int j = 0; j < W; ++j) {
    double s = bias ? pb[m] : 0;
    for (int c = 0; c < C; ++c) s += x.at(n, c, i, j) * pw[size_t(m) * C + c];
    h.at(n, m, i, j) = rnd(apply_act(float(s), a1));
  }
  const int y0 = concat ? M : 0;
  for (int n = 0; n < N; ++n) for (int o = 0; o < M * mult; ++o) for (int i = 0; i < Ho; ++i) for (int j = 0; j < Wo; ++j) {
    double s = bias ? db[o] : 0;
    for (int ky = 0; ky < k; ++ky) for (int kx = 0; kx < k; ++kx) {
      const int hi = i * stride - pad + ky * dil, wi = j * stride - pad + kx * dil;
      if (hi >= 0 && hi < H && wi >= 0 && wi < W) s += h.at(n, o / mult, hi, wi) * dw[(size_t(o) * k + ky) * k + kx];
    }
    ref.at(n, y0 + o, i, j) = rnd(apply_act(float(s), a2)) + (res ? r.at(n, y0 + o, i, j) : 0);
  }
  if (concat)
    for (int n = 0; n < N; ++n) for (int m = 0; m < M; ++m) for (int i = 0; i < Ho; ++i) for (int j = 0; j < Wo; ++j)
      ref.at(n, m, i, j) = h.at(n, m, i, j) + (res ? r.at(n, m, i, j) : 0);

  std::vector<T> out(ref.v.size(), from_float<T>(std::nanf("")));  // unwritten outputs stay NaN
  PwdwParams p{};
  p.x = xd.data(); p.pw_w = pwd.data(); p.dw_w = dwd.data();
  p.pw_b = bias ? pbd.data() : nullptr; p.dw_b = bias ? dbd.data() : nullptr; p.res = res ? rd.data() : nullptr;
  p.out = out.data();
  p.N = N; p.C = C; p.H = H; p.W = W; p.M = M; p.mult = mult; p.Ho = Ho; p.Wo = Wo;
  p.k = k; p.stride = stride; p.pad = pad; p.dil = dil; p.pw_act = a1; p.dw_act = a2; p.concat = concat;
  for (int i = 0; i < 4; ++i) { p.xs[i] = x.s[i]; p.os[i] = ref.s[i]; p.rs[i] = r.s[i]; }
  const char* why = pwdw::plan<T>(p, 227 * 1024);
  if (why) { printf("FAIL pwdw plan: %s\n", why); ++fails; return; }
  memset(pwdw::smem + p.smem, 0xAB, kCanary);
  auto run = [&](auto kern) { emu_launch2d(N * p.tiles_h * p.tiles_w, p.mtiles, pwdw::NT, [&] { kern(p); }); };
  if (!pwdw::fast_path(p)) run(pwdw::pwdw_conv2d_kernel<T, 0, 0>);
#define PW(KS) do { if (stride == 1) run(pwdw::pwdw_conv2d_kernel<T, KS, 1>); else run(pwdw::pwdw_conv2d_kernel<T, KS, 2>); } while (0)
  else if (k == 3) PW(3);
  else if (k == 5) PW(5);
  else PW(7);
#undef PW
  bool smok = true;
  for (int i = 0; i < kCanary; ++i) smok &= pwdw::smem[p.smem + i] == 0xAB;
  double mx = 1, err = 0;
  for (double e : ref.v) mx = std::max(mx, std::fabs(e));
  for (size_t i = 0; i < ref.v.size(); ++i) {
    const double d = std::fabs(to_float(out[i]) - ref.v[i]);
    err = std::isnan(d) ? 1e30 : std::max(err, d);
  }
  const bool ok = err <= tol<T>() * mx && smok;
  fails += !ok;
  printf("%s pwdw N%d C%d %dx%d M%d m%d k%d s%d d%d act%d/%d b%d cat%d r%d %s x%dB w%dB %s err=%.3g (max|ref| %.3g)%s\n",
         ok ? "PASS" : "FAIL", N, C, H, W, M, mult, k, stride, dil, a1, a2, bias, concat, res, nhwc ? "nhwc" : "nchw",
         p.xbytes, p.wbytes, tname<T>(), err, mx, smok ? "" : " SMEM OVERFLOW");
}

template <typename T> static void suite() {
  for (bool nhwc : {true, false}) {
    test<T>(2, 16, 9, 10, 8, 1, 3, 1, 1, kRelu, kRelu, true, true, false, nhwc);        // Ghost module
    test<T>(1, 5, 7, 9, 6, 2, 3, 2, 1, kRelu6, kNone, false, false, true, nhwc);         // odd C/M, mult 2, s2
    test<T>(1, 72, 11, 12, 70, 1, 5, 1, 1, kGelu, kHardswish, true, true, true, nhwc);   // 2 C slabs, 2 M tiles
    test<T>(1, 24, 13, 9, 40, 1, 5, 2, 1, kRelu, kGeluTanh, true, false, false, nhwc);   // k5 s2: 19x19 halo
    test<T>(1, 8, 8, 8, 16, 1, 3, 1, 2, kSilu, kRelu, true, true, false, nhwc);          // dilation 2: generic
    test<T>(1, 16, 6, 7, 8, 1, 7, 1, 1, kNone, kNone, false, false, true, nhwc);         // k7
  }
}

int main() {
  suite<float>();
  suite<__half>();
  suite<__nv_bfloat16>();
  printf("%d failures\n", fails);
  return fails != 0;
}
