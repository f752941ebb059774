// Host emulation test of the dwpw_conv2d / inverted_residual CUDA kernels against double-precision
// references, for machines without a GPU. Each CUDA thread is a std::thread, __syncthreads a
// std::barrier, wmma an exact per-warp 16x16 emulation and the csrc/stages primitives (cp.async,
// ldmatrix, mma.sync) are emulated per lane (the headers in this folder stand in for kernel_common.h,
// mma.h, cuda_runtime.h and stages/{copy,mma}.cuh). ASan catches out-of-bounds global accesses, a
// canary after the dynamic shared-memory layout catches shared overflows, TSan catches missing
// barriers.
// Not part of the extension build (setup.py leaves csrc/host_emu/ out). Run from
// the repository root:
//   g++ -std=c++20 -O0 -g1 -fsanitize=address,undefined -Icsrc/host_emu -Icsrc \
//       csrc/host_emu/mobilenet_emu_test.cpp -o /tmp/emu_test -pthread && /tmp/emu_test [di] [fhb]
//   (-fsanitize=thread instead for the race check; args: d=dwpw, i=inverted residual; f/h/b dtypes)
// dwpw's launch plan (dwpw::plan: chunking, resident channels, copy widths, smem) is the launcher's
// own code; the inverted residual's launch-side choices (tiles, KB) are mirrored here by hand.
#include "kernel_common.h"
#include "dwpw_conv2d/dwpw_conv2d_kernel.cuh"
#include "inverted_residual/inverted_residual_kernel.cuh"
#include <cstdio>
#include <random>
#include <string>
#include <type_traits>

namespace fastconv { namespace dwpw { alignas(128) unsigned char smem[1 << 20]; }
namespace ir { alignas(128) unsigned char smem[1 << 20]; alignas(16) float sm[1 << 16]; } }
using namespace fastconv;

static std::mt19937 rng(123);
#include "tensors.h"  // uses rng
static double act_d(double v, int a) { return apply_act(float(v), a); }  // fine for test purposes

template <typename T> static double tol() { return std::is_same<T, float>::value ? 2e-4 : std::is_same<T, __half>::value ? 1.5e-2 : 6e-2; }
static int fails = 0;
static void smem_fill(unsigned char* s, size_t bytes) { memset(s + bytes, 0xAB, 65536); }
static bool smem_ok(unsigned char* s, size_t bytes) { for (int i = 0; i < 65536; ++i) if (s[bytes + i] != 0xAB) return false; return true; }
template <typename T> static void report(const char* what, const std::string& cfg, Tns& ref, const std::vector<T>& out, bool smok) {
  double mx = 1, err = 0;
  for (double e : ref.v) mx = std::max(mx, std::fabs(e));
  for (size_t i = 0; i < ref.v.size(); ++i) { double d = std::fabs(to_float(out[i]) - ref.v[i]); if (!(d <= err)) err = std::isnan(d) ? 1e30 : std::max(err, d); }
  bool ok = err <= tol<T>() * mx && smok;
  if (!ok) ++fails;
  printf("%s %-5s %s %s err=%.3g (max|ref| %.3g)%s\n", ok ? "PASS" : "FAIL", what, cfg.c_str(),
         std::is_same<T, float>::value ? "f32" : std::is_same<T, __half>::value ? "f16" : "bf16", err, mx, smok ? "" : " SMEM OVERFLOW");
}

template <typename T>
static void test_dwpw(int N, int C, int H, int W, int K, int k, int stride, int dil, int pad, int a1, int a2, bool bias, bool res, bool nhwc,
                      size_t smem_max = 227 * 1024) {
  Tns x = make(N, C, H, W, nhwc, 1.0);
  auto xd = dev<T>(x.v);
  auto dw = rvec(size_t(C) * k * k, 1.0 / k); auto dwd = dev<T>(dw);
  auto pw = rvec(size_t(K) * C, 1.0 / std::sqrt(C)); auto pwd = dev<T>(pw);
  auto b1 = rvec(C, 0.1); auto b1d = dev<T>(b1);
  auto b2 = rvec(K, 0.1); auto b2d = dev<T>(b2);
  int Ho = (H + 2 * pad - dil * (k - 1) - 1) / stride + 1, Wo = (W + 2 * pad - dil * (k - 1) - 1) / stride + 1;
  Tns r = make(N, K, Ho, Wo, nhwc, 1.0); auto rd = dev<T>(r.v);
  Tns ref = make(N, K, Ho, Wo, nhwc, 0);
  std::vector<double> y(C);
  for (int n = 0; n < N; ++n) for (int ho = 0; ho < Ho; ++ho) for (int wo = 0; wo < Wo; ++wo) {
    for (int c = 0; c < C; ++c) {
      double s = bias ? b1[c] : 0;
      for (int ky = 0; ky < k; ++ky) for (int kx = 0; kx < k; ++kx) {
        int hi = ho * stride - pad + ky * dil, wi = wo * stride - pad + kx * dil;
        if (hi >= 0 && hi < H && wi >= 0 && wi < W) s += x.at(n, c, hi, wi) * dw[c * k * k + ky * k + kx];
      }
      y[c] = act_d(s, a1);
    }
    for (int ko = 0; ko < K; ++ko) {
      double s = bias ? b2[ko] : 0;
      for (int c = 0; c < C; ++c) s += y[c] * pw[size_t(ko) * C + c];
      s = act_d(s, a2);
      if (res) s += r.at(n, ko, ho, wo);
      ref.at(n, ko, ho, wo) = s;
    }
  }
  std::vector<T> out(ref.v.size(), from_float<T>(NAN));
  DwpwParams p{};
  p.x = xd.data(); p.dw_w = dwd.data(); p.pw_w = pwd.data(); p.dw_b = bias ? b1d.data() : nullptr;
  p.pw_b = bias ? b2d.data() : nullptr; p.res = res ? rd.data() : nullptr; p.out = out.data();
  p.N = N; p.C = C; p.H = H; p.W = W; p.K = K; p.Ho = Ho; p.Wo = Wo; p.k = k; p.stride = stride; p.pad = pad; p.dil = dil;
  p.dw_act = a1; p.pw_act = a2; p.M = N * Ho * Wo;
  for (int i = 0; i < 4; ++i) { p.xs[i] = x.s[i]; p.os[i] = ref.s[i]; p.rs[i] = r.s[i]; }
  p.nhwc = nhwc;
  // smem_max: an H100/H200's opt-in limit, or small to force the non-resident (recompute) path.
  const char* why = dwpw::plan<T>(p, smem_max);
  if (why) { printf("FAIL dwpw plan: %s\n", why); ++fails; return; }
  smem_fill(dwpw::smem, p.smem);
  emu_set_smem(dwpw::smem, p.smem);  // the wgmma twin resolves descriptors against it (and bounds them)
  const int blocks = N * p.tiles_h * p.tiles_w;
  auto run = [&](auto kern) { emu_launch(blocks, dwpw::NT, [&] { kern(p); }); };
  if (!dwpw::fast_path(p)) run(dwpw::dwpw_conv2d_kernel<T, 0, 0>);
#define DW(KS) do { if (stride == 1) run(dwpw::dwpw_conv2d_kernel<T, KS, 1>); else run(dwpw::dwpw_conv2d_kernel<T, KS, 2>); } while (0)
  else if (k == 3) DW(3);
  else if (k == 5) DW(5);
  else DW(7);
#undef DW
  emu_set_smem(nullptr, 0);
  const bool wgok = stages::g_wgmma_violations == 0;
  stages::g_wgmma_violations = 0;
  if (!wgok) { printf("FAIL dwpw WGMMA ORDERING VIOLATION (below)\n"); ++fails; }
  char cfg[256];
  snprintf(cfg, sizeof cfg, "N%d C%d %dx%d K%d k%d s%d d%d p%d act%d/%d b%d r%d %s cc%d ca%d x%dB w%dB vec%d", N, C, H, W, K, k,
           stride, dil, pad, a1, a2, bias, res, nhwc ? "nhwc" : "nchw", p.cc, p.ca, p.xbytes, p.wbytes, int(p.vec_out));
  report<T>("dwpw", cfg, ref, out, smem_ok(dwpw::smem, p.smem));
}

// The IR launch mirrors the real launcher: ir::plan picks the variant (tile, project width, smem)
// and ir::dispatch the instantiation; the grid is capped at 3 CTAs so the persistent loop runs
// several work items per CTA. max_smem < the device's forces the smaller-tile fallbacks.
template <typename T>
static void test_ir(int N, int C, int H, int W, int E, int K, int k, int stride, int act, bool expand, bool bias, int S, bool residual, bool nhwc, size_t max_smem = 227 * 1024) {
  if (!expand) E = C;
  int pad = k / 2;
  Tns x = make(N, C, H, W, nhwc, 1.0); auto xd = dev<T>(x.v);
  auto we = rvec(size_t(E) * C, 1.0 / std::sqrt(C)); auto wed = dev<T>(we);
  auto wd = rvec(size_t(E) * k * k, 1.0 / k); auto wdd = dev<T>(wd);
  auto wp = rvec(size_t(K) * E, 1.0 / std::sqrt(E)); auto wpd = dev<T>(wp);
  auto be = rvec(E, 0.1), bd = rvec(E, 0.1), bp = rvec(K, 0.1);
  auto bed = dev<T>(be), bdd = dev<T>(bd), bpd = dev<T>(bp);
  auto w1 = rvec(size_t(S) * E, 1.0 / std::sqrt(E)), b1 = rvec(S, 0.1), w2 = rvec(size_t(E) * S, 1.0 / std::sqrt(S + 1)), b2 = rvec(E, 0.1);
  auto w1d = dev<T>(w1), b1d = dev<T>(b1), w2d = dev<T>(w2), b2d = dev<T>(b2);
  int Ho = (H + 2 * pad - (k - 1) - 1) / stride + 1, Wo = (W + 2 * pad - (k - 1) - 1) / stride + 1;
  // reference
  std::vector<double> h(size_t(N) * E * H * W), g(size_t(N) * E * Ho * Wo);
  for (int n = 0; n < N; ++n) for (int e = 0; e < E; ++e) for (int i = 0; i < H; ++i) for (int j = 0; j < W; ++j) {
    double s;
    if (expand) { s = bias ? be[e] : 0; for (int c = 0; c < C; ++c) s += x.at(n, c, i, j) * we[size_t(e) * C + c]; s = act_d(s, act); }
    else s = x.at(n, e, i, j);
    h[((size_t(n) * E + e) * H + i) * W + j] = s;
  }
  for (int n = 0; n < N; ++n) for (int e = 0; e < E; ++e) for (int ho = 0; ho < Ho; ++ho) for (int wo = 0; wo < Wo; ++wo) {
    double s = bias ? bd[e] : 0;
    for (int ky = 0; ky < k; ++ky) for (int kx = 0; kx < k; ++kx) {
      int hi = ho * stride - pad + ky, wi = wo * stride - pad + kx;
      if (hi >= 0 && hi < H && wi >= 0 && wi < W) s += h[((size_t(n) * E + e) * H + hi) * W + wi] * wd[e * k * k + ky * k + kx];
    }
    g[((size_t(n) * E + e) * Ho + ho) * Wo + wo] = act_d(s, act);
  }
  std::vector<double> gref(size_t(N) * E);  // the SE gate, checked on its own (an error in the means moves the
                                            // output by little: the gate's slope is 1/6)
  if (S) for (int n = 0; n < N; ++n) {
    std::vector<double> m(E), z(S);
    for (int e = 0; e < E; ++e) { double s = 0; for (int i = 0; i < Ho * Wo; ++i) s += g[(size_t(n) * E + e) * Ho * Wo + i]; m[e] = s / (Ho * Wo); }
    for (int j = 0; j < S; ++j) { double s = bias ? b1[j] : 0; for (int e = 0; e < E; ++e) s += w1[size_t(j) * E + e] * m[e]; z[j] = act_d(s, kRelu); }
    for (int e = 0; e < E; ++e) { double s = bias ? b2[e] : 0; for (int j = 0; j < S; ++j) s += w2[size_t(e) * S + j] * z[j]; s = act_d(s, kHardsigmoid); gref[size_t(n) * E + e] = s;
      for (int i = 0; i < Ho * Wo; ++i) g[(size_t(n) * E + e) * Ho * Wo + i] *= s; }
  }
  Tns ref = make(N, K, Ho, Wo, nhwc, 0);
  for (int n = 0; n < N; ++n) for (int ko = 0; ko < K; ++ko) for (int ho = 0; ho < Ho; ++ho) for (int wo = 0; wo < Wo; ++wo) {
    double s = bias ? bp[ko] : 0;
    for (int e = 0; e < E; ++e) s += g[((size_t(n) * E + e) * Ho + ho) * Wo + wo] * wp[size_t(ko) * E + e];
    if (residual) s += x.at(n, ko, ho, wo);
    ref.at(n, ko, ho, wo) = s;
  }
  std::vector<T> out(ref.v.size(), from_float<T>(NAN));
  IrParams p{};
  p.x = xd.data(); p.we = expand ? wed.data() : nullptr; p.wd = wdd.data(); p.wp = wpd.data();
  p.be = bias && expand ? bed.data() : nullptr; p.bd = bias ? bdd.data() : nullptr; p.bp = bias ? bpd.data() : nullptr;
  p.out = out.data();
  p.N = N; p.C = C; p.H = H; p.W = W; p.E = E; p.K = K; p.Ho = Ho; p.Wo = Wo; p.k = k; p.stride = stride; p.pad = pad; p.act = act;
  for (int i = 0; i < 4; ++i) { p.xs[i] = x.s[i]; p.os[i] = ref.s[i]; }
  p.nhwc = nhwc; p.residual = residual;
  bool smok = true;
  std::string vdesc;
  std::vector<T> hbuf(size_t(N) * Ho * Wo * E);
  auto run = [&](auto mode_c, IrParams q) {
    constexpr int MODE = decltype(mode_c)::value;
    const ir::IrVariant v = ir::plan<T>(q, MODE, max_smem);
    if (v.smem == 0) { smok = false; return q; }
    char d[96];
    snprintf(d, sizeof d, " m%d:T%d/nb%d/k%ds%d/%zuB", MODE, v.tile, ir::nb_of(v.tile, v.nt8p), v.ks, v.s, v.smem);
    vdesc += d;
    ir::dispatch<T, MODE>(v, [&](auto kern) {
      smem_fill(ir::smem, v.smem);
      emu_set_smem(ir::smem, v.smem);  // the T8 project's wgmma twin (sm_90a path) resolves descriptors in it
      const int grid = std::min(q.tiles * q.npass, 3);
      emu_launch(grid, ir::NT, [&] { kern(q); });
      emu_set_smem(nullptr, 0);
      smok = smok && smem_ok(ir::smem, v.smem) && stages::g_wgmma_violations == 0;
      stages::g_wgmma_violations = 0;
    });
    return q;
  };
  if (!S) run(std::integral_constant<int, ir::kFused>{}, p);
  else {
    p.hbuf = hbuf.data();
    IrParams q1 = p;
    ir::plan<T>(q1, ir::kSePass1, max_smem);
    const int tiles_img = q1.tiles_h * q1.tiles_w;
    std::vector<float> partial(size_t(N) * tiles_img * E, NAN), gate(size_t(N) * E, NAN);
    p.partial = partial.data(); p.gate = gate.data();
    run(std::integral_constant<int, ir::kSePass1>{}, p);
    SeParams s{}; s.partial = partial.data(); s.w1 = w1d.data(); s.b1 = bias ? b1d.data() : nullptr; s.w2 = w2d.data();
    s.b2 = bias ? b2d.data() : nullptr; s.gate = gate.data(); s.N = N; s.E = E; s.S = S; s.tiles = tiles_img;
    s.inv_hw = 1.f / (Ho * Wo); s.se_act = kRelu; s.se_gate = kHardsigmoid;
    s.imgs = ir::se_mlp_imgs(N, 1);  // as on a 1-SM device: N images per block, up to 4 (N = 6: 4 + 2)
    emu_launch(ir::se_mlp_grid(N, s.imgs), 256, [&] { ir::se_mlp_kernel<T>(s); });
    run(std::integral_constant<int, ir::kSePass2>{}, p);
    double gerr = 0;
    for (size_t i = 0; i < gate.size(); ++i) { double d = std::fabs(gate[i] - gref[i]); if (!(d <= gerr)) gerr = std::isnan(d) ? 1e30 : d; }
    const bool gok = gerr <= tol<T>() / 10;
    if (!gok) ++fails;
    printf("%s se_gate N%d E%d S%d tiles/img %d: err=%.3g\n", gok ? "PASS" : "FAIL", N, E, S, tiles_img, gerr);
  }
  char cfg[256];
  snprintf(cfg, sizeof cfg, "N%d C%d %dx%d E%d K%d k%d s%d act%d exp%d b%d S%d res%d %s%s", N, C, H, W, E, K, k, stride, act, expand, bias, S, residual, nhwc ? "nhwc" : "nchw", vdesc.c_str());
  report<T>("ir", cfg, ref, out, smok);
}

template <typename T> static void all(bool nhwc, const std::string& which) {
  if (which.find('d') != std::string::npos) {
    test_dwpw<T>(2, 8, 9, 9, 16, 3, 1, 1, 1, kRelu, kRelu, true, false, nhwc);
    test_dwpw<T>(1, 5, 7, 11, 7, 3, 2, 1, 1, kRelu6, kNone, false, false, nhwc);
    test_dwpw<T>(2, 40, 8, 8, 12, 5, 1, 1, 2, kHardswish, kNone, true, true, nhwc);
    test_dwpw<T>(1, 6, 9, 7, 130, 7, 2, 1, 3, kSilu, kRelu6, true, false, nhwc);
    test_dwpw<T>(1, 4, 10, 10, 6, 3, 1, 2, 2, kNone, kHardswish, false, false, nhwc);
    test_dwpw<T>(3, 3, 1, 1, 4, 3, 1, 1, 1, kRelu, kRelu, true, true, nhwc);
    test_dwpw<T>(2, 33, 12, 13, 70, 9, 2, 1, 4, kRelu, kNone, true, true, nhwc);  // generic k
    test_dwpw<T>(1, 4, 8, 8, 4, 5, 1, 1, 0, kNone, kNone, false, false, nhwc);   // padding 0
    test_dwpw<T>(2, 64, 6, 6, 128, 3, 1, 1, 1, kRelu, kRelu, true, false, nhwc);  // exact chunk/block multiples
    test_dwpw<T>(1, 24, 11, 9, 40, 3, 2, 1, 1, kRelu6, kNone, true, true, nhwc);  // C % 8 == 0: 16-byte paths, s2
    test_dwpw<T>(1, 16, 13, 10, 24, 5, 2, 1, 2, kHardswish, kNone, true, true, nhwc);
    test_dwpw<T>(2, 12, 9, 17, 8, 7, 1, 1, 3, kRelu, kRelu, true, false, nhwc);   // 8-byte copies (fp16)
    test_dwpw<T>(1, 200, 9, 9, 136, 3, 1, 1, 1, kRelu6, kNone, true, true, nhwc, (sizeof(T) == 4 ? 100 : 64) * 1024);  // C too wide: recompute
    test_dwpw<T>(1, 72, 17, 15, 96, 5, 1, 1, 2, kSilu, kNone, true, true, nhwc);  // 3 x 2 tiles, cc < 64 with 5x5 fp32
    // Output tiles of the wgmma path (128 channels, one m64n64 warpgroup per 64): MobileNetV2's first
    // block (C 32: one 32-deep slab of zeros past C; K 16: the second warpgroup skips), K 200 (a second
    // tile of 72: both warpgroups, partial staging pass), k5 s2 K 168 (second tile 40: skipped warpgroup)
    test_dwpw<T>(1, 32, 10, 9, 16, 3, 1, 1, 1, kRelu6, kNone, true, false, nhwc);
    test_dwpw<T>(1, 48, 8, 8, 200, 3, 1, 1, 1, kRelu, kRelu, true, true, nhwc);
    test_dwpw<T>(1, 96, 15, 15, 168, 5, 2, 1, 2, kHardswish, kNone, true, true, nhwc);
  }
  if (which.find('i') != std::string::npos) {
    // T14 (stride 1, k 3/5, K <= 96, maps >= 9): C = 24 (16-byte copies, Cp 32), K = 24 (3 n8 tiles), E = 72 (short last chunk)
    test_ir<T>(2, 24, 14, 14, 72, 24, 3, 1, kRelu6, true, true, 0, true, nhwc);
    test_ir<T>(1, 24, 16, 15, 144, 24, 3, 1, kRelu6, true, true, 0, true, nhwc);  // MobileNetV2-like, 2 x 2 clipped tiles
    test_ir<T>(1, 20, 11, 13, 40, 20, 5, 1, kHardswish, true, true, 0, true, nhwc);  // C, K = 20: 8-byte copies, scalar epilogue
    test_ir<T>(1, 32, 14, 14, 96, 56, 5, 1, kSilu, true, false, 0, false, nhwc);   // T14 NB = 96 (7 n8 tiles)
    test_ir<T>(1, 16, 10, 10, 16, 16, 3, 1, kRelu, false, true, 0, true, nhwc);    // no expansion + residual
    // T8: stride 2, small maps, generic k, K > 96, multi-pass
    test_ir<T>(1, 40, 9, 11, 96, 40, 3, 2, kSilu, true, false, 0, false, nhwc);
    test_ir<T>(2, 58, 7, 9, 58, 58, 5, 2, kRelu6, false, true, 0, false, nhwc);    // no expansion, C = 58 (4-byte copies)
    test_ir<T>(1, 6, 11, 9, 20, 10, 7, 2, kRelu6, true, true, 0, false, nhwc);     // generic k
    test_ir<T>(1, 16, 10, 10, 32, 100, 3, 1, kRelu, true, true, 0, false, nhwc);   // K > 96: T8, NB = 320
    test_ir<T>(1, 8, 5, 5, 16, 330, 3, 1, kHardswish, true, true, 0, false, nhwc); // K > 320: 2 passes
    test_ir<T>(1, 24, 9, 9, 48, 24, 5, 2, kRelu, true, true, 0, false, nhwc, 72 * sizeof(T) / 2 * 1024);  // T4 fallback (small smem)
    test_ir<T>(1, 16, 17, 17, 48, 24, 5, 2, kRelu, true, false, 0, false, nhwc);  // 17 x 17 clipped halo: 19 expand m tiles, 3 per pass (fp16/bf16)
    // SE (pass 1 + MLP + pass 2)
    test_ir<T>(2, 8, 9, 10, 72, 8, 3, 1, kHardswish, true, true, 6, true, nhwc);  // SE + residual (pass 1 T14)
    test_ir<T>(1, 24, 16, 17, 72, 24, 5, 1, kHardswish, true, true, 8, true, nhwc); // SE pass 1 T14 k5: 2 x 2 tiles, E = 48 + 24
    test_ir<T>(1, 12, 13, 7, 24, 70, 5, 2, kSilu, true, true, 5, false, nhwc);    // SE, K > 64
    test_ir<T>(1, 16, 7, 7, 48, 168, 3, 1, kRelu, true, true, 8, false, nhwc);    // SE, K = 168: pass 2's second warpgroup (sm_90a)
    test_ir<T>(1, 20, 7, 7, 20, 8, 3, 1, kSilu, false, true, 4, false, nhwc);     // SE without expansion, E = 20
    test_ir<T>(1, 10, 7, 9, 30, 12, 3, 1, kRelu, true, true, 6, false, nhwc);     // SE, E = 30: se_mlp's per-channel mean (E % 4 != 0)
    test_ir<T>(6, 8, 7, 7, 24, 8, 3, 2, kRelu, true, true, 8, false, nhwc);       // se_mlp: 2 blocks of 4 images, the last with 2
    // MobileNetV3's wide SE blocks: the MLP's vector paths (E, S % 8 == 0), 30 / 18 row groups of 8
    test_ir<T>(1, 16, 7, 7, 960, 16, 5, 1, kHardswish, true, true, 240, true, nhwc);
    test_ir<T>(1, 24, 9, 9, 576, 40, 5, 2, kHardswish, true, false, 144, false, nhwc);
  }
}

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);  // PASS lines survive a sanitizer abort
  std::string which = argc > 1 ? argv[1] : "di";
  std::string dt = argc > 2 ? argv[2] : "fhb";
  // Built with -DFASTCONV_EMU_WGMMA=1 dwpw's fp16/bf16 pointwise GEMM and the inverted residual's T8 project
  // GEMM (fused and SE pass 2) run on the wgmma twin (the sm_90a path), otherwise on ldmatrix + mma.sync.
  printf("dwpw / ir T8 project fp16/bf16 GEMM: %s\n", stages::kWgmma ? "wgmma (sm_90a path)" : "mma.sync (sm_80/sm_90 path)");
  for (bool nhwc : {true, false}) {
    if (dt.find('f') != std::string::npos) all<float>(nhwc, which);
    if (dt.find('h') != std::string::npos) all<__half>(nhwc, which);
    if (dt.find('b') != std::string::npos) all<__nv_bfloat16>(nhwc, which);
  }
  const bool wg_expected = stages::kWgmma && which.find_first_of("di") != std::string::npos && dt.find_first_of("hb") != std::string::npos;
  if (wg_expected && stages::g_wgmma_count == 0) { printf("FAIL the wgmma variant issued no wgmma\n"); ++fails; }
  if (stages::kWgmma) printf("wgmma issued (per warpgroup): %ld\n", stages::g_wgmma_count);
  printf("%d failures\n", fails);
  return fails != 0;
}
