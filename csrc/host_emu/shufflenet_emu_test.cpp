// Host emulation test of the channel_shuffle and gconv (group_conv1x1 / ShuffleNet V1 / V2 unit)
// CUDA kernels against double-precision references, for machines without a GPU (same machinery
// as mobilenet_emu_test.cpp: one std::thread per CUDA thread, std::barrier for __syncthreads,
// exact per-warp wmma). Not part of the extension build. Run from the repository root:
//   g++ -std=c++20 -O0 -g1 -fsanitize=address,undefined -Icsrc/host_emu -Icsrc \
//       csrc/host_emu/shufflenet_emu_test.cpp -o /tmp/shuffle_emu && /tmp/shuffle_emu [sgvw] [fhb]
//   (args: s=channel_shuffle, g=group_conv1x1, v=v1 unit, w=v2 unit; f/h/b dtypes)
// The launchers (channel_shuffle_kernels.cu, group_conv1x1.cpp, shufflenet_v*_unit.cpp) are not
// compiled; their host logic (vector-path choice, Params filling, grid shape) is mirrored by hand.
#include "cuda_runtime.h"
#include "kernel_common.h"
#include <cstdio>
#include <initializer_list>
#include <random>
#include <string>

// gconv.h declares a few ATen-typed helpers; just enough of ATen for them to parse.
namespace at {
enum class ScalarType { Float, Half, BFloat16 };
enum class MemoryFormat { Contiguous, ChannelsLast };
struct TensorOptions { TensorOptions memory_format(MemoryFormat) const { return *this; } };
struct Tensor { TensorOptions options() const { return {}; } };
using IntArrayRef = std::initializer_list<int64_t>;
inline Tensor empty(IntArrayRef, TensorOptions) { return {}; }
}  // namespace at

#include "channel_shuffle/channel_shuffle.cuh"
#include "group_conv1x1/gconv.h"

#include "group_conv1x1/gconv_kernel.cuh"

// The kernels' dynamic shared memory (extern __shared__ inside the kernel refers to this array;
// blocks run one at a time). A canary after the planned size catches overflows.
namespace fastconv { namespace gconv { alignas(128) unsigned char smem[1 << 20]; } }
static void smem_fill(size_t bytes) { memset(fastconv::gconv::smem + bytes, 0xAB, 65536); }
static bool smem_ok(size_t bytes) { for (int i = 0; i < 65536; ++i) if (fastconv::gconv::smem[bytes + i] != 0xAB) return false; return true; }

using namespace fastconv;

static std::mt19937 rng(321);
static int fails = 0;
static bool g_smem_bad = false;           // set by run_gconv, reported by the next compare
static size_t g_smem_max = 227 * 1024;    // the device's opt-in limit the launches are planned for
static size_t g_dw_smem_max = 0;          // nonzero: a lower limit for the DW launches only
static int g_recompute_runs = 0;          // DW launches planned with A not resident (ca < Cg rounded up)

static void verdict(bool ok, const char* what, const std::string& cfg, double err, double mx) {
  if (!ok) ++fails;
  printf("%s %-6s %s err=%.3g (max|ref| %.3g)\n", ok ? "PASS" : "FAIL", what, cfg.c_str(), err, mx);
}

// ---------------------------------------------------------------- channel_shuffle
// Mirrors shuffle::launch (vector path when the plane / pixel row holds whole 16-byte vectors and
// both bases are 16-byte aligned, 32-bit index) but caps the grid so the grid-stride loop wraps.
template <typename E>
static void test_shuffle(int N, int C, int H, int W, int g, bool nhwc, int x_off, bool wide_index) {
  const int64_t HW = int64_t(H) * W, total = N * C * HW;
  std::vector<E> xbuf(total + 8), obuf(total + 8);
  for (auto& e : xbuf) e = E(rng());
  const E* x = xbuf.data() + x_off;
  E* out = obuf.data();  // aligned output, like at::empty
  std::fill(obuf.begin(), obuf.end(), E(0));
  constexpr int V = 16 / sizeof(E);
  const int64_t unit = nhwc ? C : HW;
  const bool vec = unit % V == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(out) % 16 == 0;
  auto go = [&](auto vtag, auto itag) {
    constexpr int VEC = decltype(vtag)::value;
    using I = decltype(itag);
    const int64_t tv = total / VEC;
    const int blocks = int(std::min<int64_t>((tv + 255) / 256, 2));
    const I cpg = I(C / g);
    emu_launch(blocks, 256, [&] {
      if (nhwc) shuffle::shuffle_nhwc_kernel<E, VEC, I>(x, out, I(C), cpg, I(g), I(tv));
      else shuffle::shuffle_nchw_kernel<E, VEC, I>(x, out, I(C), I(HW), cpg, I(g), I(tv));
    });
  };
  auto gather = [&](auto itag) {  // NCHW planes without whole vectors: gathered 16-byte stores
    using I = decltype(itag);
    const int blocks = int(std::min<int64_t>((total / V + 1 + 255) / 256, 2));
    emu_launch(blocks, 256, [&] { shuffle::shuffle_nchw_gather_kernel<E, I>(x, out, I(C), I(HW), I(C / g), I(g), I(total)); });
  };
  const bool gath = !vec && !nhwc && reinterpret_cast<uintptr_t>(out) % 16 == 0;
  using Vv = std::integral_constant<int, V>; using V1 = std::integral_constant<int, 1>;
  if (vec) { if (wide_index) go(Vv{}, uint64_t{}); else go(Vv{}, uint32_t{}); }
  else if (gath) { if (wide_index) gather(uint64_t{}); else gather(uint32_t{}); }
  else { if (wide_index) go(V1{}, uint64_t{}); else go(V1{}, uint32_t{}); }
  int64_t bad = 0;
  const int cpg = C / g;
  for (int n = 0; n < N; ++n) for (int i = 0; i < cpg; ++i) for (int j = 0; j < g; ++j) for (int64_t q = 0; q < HW; ++q) {
    const int oc = i * g + j, ic = j * cpg + i;
    const int64_t o = nhwc ? (n * HW + q) * C + oc : (int64_t(n) * C + oc) * HW + q;
    const int64_t s = nhwc ? (n * HW + q) * C + ic : (int64_t(n) * C + ic) * HW + q;
    bad += out[o] != x[s];
  }
  for (size_t i = total; i < obuf.size(); ++i) bad += obuf[i] != E(0);  // nothing written past the end
  char cfg[200];
  snprintf(cfg, sizeof cfg, "N%d C%d %dx%d g%d %s e%zu x+%d %s%s", N, C, H, W, g, nhwc ? "nhwc" : "nchw", sizeof(E), x_off,
           vec ? "vec" : gath ? "gather" : "scalar", wide_index ? " i64" : "");
  verdict(bad == 0, "shuf", cfg, double(bad), 0);
}

// ---------------------------------------------------------------- gconv helpers
template <typename T> static const char* tname() { return std::is_same<T, float>::value ? "f32" : std::is_same<T, __half>::value ? "f16" : "bf16"; }
template <typename T> static double tol() { return std::is_same<T, float>::value ? 2e-4 : std::is_same<T, __half>::value ? 1.5e-2 : 6e-2; }
static double relu(double v) { return v > 0 ? v : 0; }
template <typename T> static double rnd(double v) { return to_float(from_float<T>(float(v))); }

struct Act4 {  // (N, C, H, W) tensor of doubles in NCHW or NHWC memory order
  int N, C, H, W; bool nhwc; std::vector<double> v;
  Act4(int n, int c, int h, int w, bool nh) : N(n), C(c), H(h), W(w), nhwc(nh), v(size_t(n) * c * h * w, 0.0) {}
  size_t off(int n, int c, int h, int w) const { return nhwc ? ((size_t(n) * H + h) * W + w) * C + c : ((size_t(n) * C + c) * H + h) * W + w; }
  double& at(int n, int c, int h, int w) { return v[off(n, c, h, w)]; }
};
static std::vector<double> rvec(size_t n, double scale) {
  std::normal_distribution<double> nd(0, scale); std::vector<double> v(n); for (auto& e : v) e = nd(rng); return v;
}
template <typename T> static std::vector<T> dev(std::vector<double>& v) {  // rounds v to T in place
  std::vector<T> o(v.size());
  for (size_t i = 0; i < v.size(); ++i) { o[i] = from_float<T>(float(v[i])); v[i] = to_float(o[i]); }
  return o;
}
template <typename T> static Act4 rand_act(int n, int c, int h, int w, bool nhwc, std::vector<T>& d) {
  Act4 a(n, c, h, w, nhwc); a.v = rvec(a.v.size(), 1.0); d = dev<T>(a.v); return a;
}
// channel_shuffle of a double tensor: out[:, i*g + j] = in[:, j*(C/g) + i]
static Act4 shuffle_ref(const Act4& in, int g) {
  Act4 o = in; const int cpg = in.C / g;
  for (int n = 0; n < in.N; ++n) for (int i = 0; i < cpg; ++i) for (int j = 0; j < g; ++j)
    for (int h = 0; h < in.H; ++h) for (int w = 0; w < in.W; ++w) o.at(n, i * g + j, h, w) = in.v[in.off(n, j * cpg + i, h, w)];
  return o;
}
// grouped 1x1 conv: w (K, C/groups), optional bias, then act
static Act4 gconv_ref(const Act4& x, const std::vector<double>& w, const std::vector<double>* b, int K, int groups, int act) {
  Act4 o(x.N, K, x.H, x.W, x.nhwc); const int Cg = x.C / groups, Kg = K / groups;
  for (int n = 0; n < x.N; ++n) for (int k = 0; k < K; ++k) for (int h = 0; h < x.H; ++h) for (int ww = 0; ww < x.W; ++ww) {
    double s = b ? (*b)[k] : 0; const int g = k / Kg;
    for (int c = 0; c < Cg; ++c) s += w[size_t(k) * Cg + c] * x.v[x.off(n, g * Cg + c, h, ww)];
    o.at(n, k, h, ww) = act == kNone ? s : act == kRelu ? relu(s) : double(apply_act(float(s), act));
  }
  return o;
}
static Act4 dw3x3_ref(const Act4& x, const std::vector<double>& w, const std::vector<double>* b, int stride) {
  const int Ho = (x.H - 1) / stride + 1, Wo = (x.W - 1) / stride + 1;
  Act4 o(x.N, x.C, Ho, Wo, x.nhwc);
  for (int n = 0; n < x.N; ++n) for (int c = 0; c < x.C; ++c) for (int h = 0; h < Ho; ++h) for (int ww = 0; ww < Wo; ++ww) {
    double s = b ? (*b)[c] : 0;
    for (int dy = 0; dy < 3; ++dy) for (int dx = 0; dx < 3; ++dx) {
      const int hi = h * stride - 1 + dy, wi = ww * stride - 1 + dx;
      if (hi >= 0 && hi < x.H && wi >= 0 && wi < x.W) s += w[c * 9 + dy * 3 + dx] * x.v[x.off(n, c, hi, wi)];
    }
    o.at(n, c, h, ww) = s;
  }
  return o;
}
template <typename T> static void round_all(Act4& a) { for (auto& e : a.v) e = rnd<T>(e); }

template <typename T> static void compare(const char* what, const std::string& cfg, const Act4& ref, const std::vector<T>& out) {
  double mx = 1, err = 0;
  for (double e : ref.v) mx = std::max(mx, std::fabs(e));
  for (size_t i = 0; i < ref.v.size(); ++i) { double d = std::fabs(to_float(out[i]) - ref.v[i]); if (!(d <= err)) err = std::isnan(d) ? 1e30 : std::max(err, d); }
  const bool smok = !g_smem_bad, wgok = stages::g_wgmma_violations == 0;
  g_smem_bad = false;
  stages::g_wgmma_violations = 0;
  verdict(err <= tol<T>() * mx && smok && wgok, what,
          cfg + " " + tname<T>() + (smok ? "" : " SMEM OVERFLOW") + (wgok ? "" : " WGMMA ORDERING VIOLATION"), err, mx);
}

// Mirrors gconv::run (shape checks) + gconv::launch (plan for an H100/H200's 227 KB opt-in limit,
// or a small smem_max to force the depthwise recompute path; grid; instantiation by stride).
template <typename T> static void run_gconv(bool dw, bool nhwc, gconv::Params p) {
  assert(p.groups >= 1 && p.Cg >= 1 && p.Kg >= 1);
  assert(!dw || p.shuffle_in == 0);
  assert(dw || (p.Ho == p.H && p.Wo == p.W));
  assert(dw || p.side == gconv::kSideNone);
  assert(p.side != gconv::kSideCopy || (p.Ho == p.H && p.Wo == p.W));
  const char* why = gconv::plan<T>(p, dw, nhwc, dw && g_dw_smem_max ? g_dw_smem_max : g_smem_max);
  if (why) { printf("FAIL plan: %s\n", why); ++fails; return; }
  const gconv::Grid g = gconv::grid_of<T>(p, dw);
  if (dw && p.ca < (p.Cg + gconv::BK - 1) / gconv::BK * gconv::BK) ++g_recompute_runs;
  smem_fill(p.smem);
  emu_set_smem(gconv::smem, p.smem);  // the wgmma twin resolves descriptors against it (and bounds them)
  auto go = [&](auto kern) { emu_launch2d(g.x, g.y, gconv::NT, [&] { kern(p); }); };
  if (!dw) { if (nhwc) go(gconv::gconv_kernel<T, false, true, 1>); else go(gconv::gconv_kernel<T, false, false, 1>); }
  else if (p.stride == 1) { if (nhwc) go(gconv::gconv_kernel<T, true, true, 1>); else go(gconv::gconv_kernel<T, true, false, 1>); }
  else { if (nhwc) go(gconv::gconv_kernel<T, true, true, 2>); else go(gconv::gconv_kernel<T, true, false, 2>); }
  emu_set_smem(nullptr, 0);
  if (!smem_ok(p.smem)) g_smem_bad = true;
}

// ---------------------------------------------------------------- group_conv1x1
template <typename T>
static void test_gconv(int N, int C, int H, int W, int K, int groups, int sin, int sout, bool bias, int act, bool nhwc) {
  std::vector<T> xd; Act4 x = rand_act<T>(N, C, H, W, nhwc, xd);
  auto w = rvec(size_t(K) * (C / groups), 1.0 / std::sqrt(C / groups)); auto wd = dev<T>(w);
  auto b = rvec(K, 0.1); auto bd = dev<T>(b);
  Act4 ref = gconv_ref(sin ? shuffle_ref(x, sin) : x, w, bias ? &b : nullptr, K, groups, act);
  if (sout) ref = shuffle_ref(ref, sout);
  std::vector<T> out(ref.v.size(), from_float<T>(NAN));
  gconv::Params p;  // as group_conv1x1_cuda fills it
  p.x = xd.data(); p.x_C = C; p.H = H; p.W = W; p.shuffle_in = sin; p.w = wd.data(); p.bias = bias ? bd.data() : nullptr;
  p.groups = groups; p.Cg = C / groups; p.Kg = K / groups; p.out = out.data(); p.out_C = K; p.N = N; p.Ho = H; p.Wo = W;
  p.shuffle_out = sout; p.act = act;
  run_gconv<T>(false, nhwc, p);
  char cfg[200];
  snprintf(cfg, sizeof cfg, "N%d C%d %dx%d K%d g%d sin%d sout%d b%d act%d %s", N, C, H, W, K, groups, sin, sout, bias, act, nhwc ? "nhwc" : "nchw");
  compare<T>("gconv", cfg, ref, out);
}

// ---------------------------------------------------------------- ShuffleNet V1 unit
template <typename T>
static void test_v1(int N, int C, int H, int W, int M, int K, int groups, int g1, int stride, bool bias, bool nhwc) {
  std::vector<T> xd; Act4 x = rand_act<T>(N, C, H, W, nhwc, xd);
  auto w1 = rvec(size_t(M) * (C / g1), 1.0 / std::sqrt(C / g1)); auto w1d = dev<T>(w1);
  auto b1 = rvec(M, 0.1); auto b1d = dev<T>(b1);
  auto dw = rvec(size_t(M) * 9, 1.0 / 3); auto dwd = dev<T>(dw);
  auto dwb = rvec(M, 0.1); auto dwbd = dev<T>(dwb);
  auto w2 = rvec(size_t(K) * (M / groups), 1.0 / std::sqrt(M / groups)); auto w2d = dev<T>(w2);
  auto b2 = rvec(K, 0.1); auto b2d = dev<T>(b2);
  // reference: relu(gconv1) -> shuffle(groups) -> dw3x3 -> gconv2 -> add / concat avg-pool -> relu;
  // h and the dw output are rounded to T where the kernels hold them in T.
  Act4 h = gconv_ref(x, w1, bias ? &b1 : nullptr, M, g1, kRelu); round_all<T>(h);
  Act4 d = dw3x3_ref(shuffle_ref(h, groups), dw, bias ? &dwb : nullptr, stride);
  if (!std::is_same<T, float>::value) round_all<T>(d);
  Act4 z = gconv_ref(d, w2, bias ? &b2 : nullptr, K, groups, kNone);
  const int Ho = z.H, Wo = z.W, outC = stride == 1 ? C : C + K;
  Act4 ref(N, outC, Ho, Wo, nhwc);
  for (int n = 0; n < N; ++n) for (int i = 0; i < Ho; ++i) for (int j = 0; j < Wo; ++j) {
    if (stride == 1) { for (int k = 0; k < K; ++k) ref.at(n, k, i, j) = relu(z.at(n, k, i, j) + x.at(n, k, i, j)); continue; }
    for (int c = 0; c < C; ++c) {  // avg_pool2d(3, 2, 1), count_include_pad=True
      double s = 0;
      for (int dy = 0; dy < 3; ++dy) for (int dx = 0; dx < 3; ++dx) {
        const int hi = i * 2 - 1 + dy, wi = j * 2 - 1 + dx;
        if (hi >= 0 && hi < H && wi >= 0 && wi < W) s += x.at(n, c, hi, wi);
      }
      ref.at(n, c, i, j) = relu(s / 9);
    }
    for (int k = 0; k < K; ++k) ref.at(n, C + k, i, j) = relu(z.at(n, k, i, j));
  }
  // kernels, Params as shufflenet_v1_unit_cuda fills them
  std::vector<T> hd(size_t(N) * M * H * W, from_float<T>(NAN)), out(ref.v.size(), from_float<T>(NAN));
  gconv::Params p1;
  p1.x = xd.data(); p1.x_C = C; p1.H = H; p1.W = W; p1.w = w1d.data(); p1.bias = bias ? b1d.data() : nullptr;
  p1.groups = g1; p1.Cg = C / g1; p1.Kg = M / g1; p1.out = hd.data(); p1.out_C = M; p1.N = N; p1.Ho = H; p1.Wo = W;
  p1.shuffle_out = groups; p1.act = kRelu;
  run_gconv<T>(false, nhwc, p1);
  gconv::Params p2;
  p2.x = hd.data(); p2.x_C = M; p2.H = H; p2.W = W; p2.dw_w = dwd.data(); p2.dw_b = bias ? dwbd.data() : nullptr;
  p2.stride = stride; p2.w = w2d.data(); p2.bias = bias ? b2d.data() : nullptr; p2.groups = groups; p2.Cg = M / groups;
  p2.Kg = K / groups; p2.out = out.data(); p2.out_C = outC; p2.N = N; p2.Ho = Ho; p2.Wo = Wo; p2.act = kRelu;
  if (stride == 1) p2.res = xd.data();
  else { p2.out_off = C; p2.side = gconv::kSideAvgPool; p2.side_x = xd.data(); p2.side_C = C; p2.side_xC = C; p2.side_act = kRelu; }
  run_gconv<T>(true, nhwc, p2);
  char cfg[200];
  snprintf(cfg, sizeof cfg, "N%d C%d %dx%d M%d K%d g%d g1=%d s%d b%d %s", N, C, H, W, M, K, groups, g1, stride, bias, nhwc ? "nhwc" : "nchw");
  compare<T>("v1", cfg, ref, out);
}

// ---------------------------------------------------------------- ShuffleNet V2 unit
template <typename T>
static void test_v2(int N, int C, int H, int W, int B, int stride, bool bias, bool nhwc) {
  std::vector<T> xd; Act4 x = rand_act<T>(N, C, H, W, nhwc, xd);
  const int cin2 = stride == 1 ? C / 2 : C;
  auto pw1 = rvec(size_t(B) * cin2, 1.0 / std::sqrt(cin2)); auto pw1d = dev<T>(pw1);
  auto pb1 = rvec(B, 0.1); auto pb1d = dev<T>(pb1);
  auto dw = rvec(size_t(B) * 9, 1.0 / 3); auto dwd = dev<T>(dw);
  auto dwb = rvec(B, 0.1); auto dwbd = dev<T>(dwb);
  auto pw2 = rvec(size_t(B) * B, 1.0 / std::sqrt(B)); auto pw2d = dev<T>(pw2);
  auto pb2 = rvec(B, 0.1); auto pb2d = dev<T>(pb2);
  auto bdw = rvec(size_t(C) * 9, 1.0 / 3); auto bdwd = dev<T>(bdw);
  auto bdb = rvec(C, 0.1); auto bdbd = dev<T>(bdb);
  auto bpw = rvec(size_t(B) * C, 1.0 / std::sqrt(C)); auto bpwd = dev<T>(bpw);
  auto bpb = rvec(B, 0.1); auto bpbd = dev<T>(bpb);
  const bool half = !std::is_same<T, float>::value;
  // reference: branch2 = relu(pw2(dw(relu(pw1(z))))), cat with x1 (stride 1) or branch1, shuffle(2)
  Act4 z(N, cin2, H, W, nhwc);
  for (int n = 0; n < N; ++n) for (int c = 0; c < cin2; ++c) for (int i = 0; i < H; ++i) for (int j = 0; j < W; ++j)
    z.at(n, c, i, j) = x.at(n, c + (stride == 1 ? C / 2 : 0), i, j);
  Act4 h = gconv_ref(z, pw1, bias ? &pb1 : nullptr, B, 1, kRelu); round_all<T>(h);
  Act4 d = dw3x3_ref(h, dw, bias ? &dwb : nullptr, stride); if (half) round_all<T>(d);
  Act4 br2 = gconv_ref(d, pw2, bias ? &pb2 : nullptr, B, 1, kRelu);
  const int Ho = br2.H, Wo = br2.W;
  Act4 left(N, B, Ho, Wo, nhwc);
  if (stride == 1) left = Act4(x);  // x1 = x[:, :C/2] (B == C/2), read below by channel
  else { Act4 d1 = dw3x3_ref(x, bdw, bias ? &bdb : nullptr, 2); if (half) round_all<T>(d1); left = gconv_ref(d1, bpw, bias ? &bpb : nullptr, B, 1, kRelu); }
  Act4 cat(N, 2 * B, Ho, Wo, nhwc);
  for (int n = 0; n < N; ++n) for (int c = 0; c < B; ++c) for (int i = 0; i < Ho; ++i) for (int j = 0; j < Wo; ++j) {
    cat.at(n, c, i, j) = left.at(n, c, i, j); cat.at(n, B + c, i, j) = br2.at(n, c, i, j);
  }
  Act4 ref = shuffle_ref(cat, 2);
  // kernels, Params as shufflenet_v2_unit_cuda fills them
  std::vector<T> hd(size_t(N) * B * H * W, from_float<T>(NAN)), out(ref.v.size(), from_float<T>(NAN));
  gconv::Params p1;
  p1.x = xd.data(); p1.x_C = C; p1.x_c0 = stride == 1 ? C / 2 : 0; p1.H = H; p1.W = W; p1.w = pw1d.data();
  p1.bias = bias ? pb1d.data() : nullptr; p1.Cg = cin2; p1.Kg = B; p1.out = hd.data(); p1.out_C = B; p1.N = N;
  p1.Ho = H; p1.Wo = W; p1.act = kRelu;
  run_gconv<T>(false, nhwc, p1);
  gconv::Params p2;
  p2.x = hd.data(); p2.x_C = B; p2.H = H; p2.W = W; p2.dw_w = dwd.data(); p2.dw_b = bias ? dwbd.data() : nullptr;
  p2.stride = stride; p2.w = pw2d.data(); p2.bias = bias ? pb2d.data() : nullptr; p2.Cg = B; p2.Kg = B; p2.out = out.data();
  p2.out_C = 2 * B; p2.N = N; p2.Ho = Ho; p2.Wo = Wo; p2.out_mul = 2; p2.out_off = 1; p2.act = kRelu;
  if (stride == 1) { p2.side = gconv::kSideCopy; p2.side_x = xd.data(); p2.side_C = B; p2.side_xC = C; p2.side_mul = 2; p2.side_off = 0; }
  run_gconv<T>(true, nhwc, p2);
  if (stride == 2) {
    gconv::Params p3;
    p3.x = xd.data(); p3.x_C = C; p3.H = H; p3.W = W; p3.dw_w = bdwd.data(); p3.dw_b = bias ? bdbd.data() : nullptr;
    p3.stride = 2; p3.w = bpwd.data(); p3.bias = bias ? bpbd.data() : nullptr; p3.Cg = C; p3.Kg = B; p3.out = out.data();
    p3.out_C = 2 * B; p3.N = N; p3.Ho = Ho; p3.Wo = Wo; p3.out_mul = 2; p3.out_off = 0; p3.act = kRelu;
    run_gconv<T>(true, nhwc, p3);
  }
  char cfg[200];
  snprintf(cfg, sizeof cfg, "N%d C%d %dx%d B%d s%d b%d %s", N, C, H, W, B, stride, bias, nhwc ? "nhwc" : "nchw");
  compare<T>("v2", cfg, ref, out);
}

template <typename T> static void all(bool nhwc, const std::string& which) {
  // fp16 (the performance path) runs every real ShuffleNet shape; fp32/bf16 a cheaper subset that
  // still covers groups 1/2/3/8, both strides, both layouts and the awkward channel counts.
  const bool full = std::is_same<T, __half>::value;
  if (which.find('g') != std::string::npos) {
    test_gconv<T>(2, 16, 5, 7, 24, 1, 0, 0, true, kRelu, nhwc);
    test_gconv<T>(1, 240, 4, 5, 240, 3, 3, 3, true, kRelu, nhwc);     // 80 per group: partial k-slice and m-tile
    test_gconv<T>(2, 32, 3, 5, 64, 2, 0, 2, false, kHardswish, nhwc);
    test_gconv<T>(1, 48, 6, 6, 36, 4, 4, 0, true, kRelu6, nhwc);
    test_gconv<T>(1, 64, 3, 3, 128, 8, 8, 8, true, kNone, nhwc);
    test_gconv<T>(3, 24, 7, 7, 12, 3, 0, 0, false, kSilu, nhwc);      // 147 pixels: partial pixel tile
    test_gconv<T>(1, 24, 4, 4, 24, 2, 3, 4, true, kRelu, nhwc);       // shuffle factors != groups
    test_gconv<T>(1, 232, 3, 5, 232, 1, 0, 0, true, kRelu, nhwc);     // V2 pw 232: 8 slabs through 3 stages, 4 m-tiles
    test_gconv<T>(1, 24, 5, 5, 58, 1, 0, 0, true, kRelu, nhwc);       // V2 24 -> 58 (Kg % 8 != 0: scalar epilogue)
    test_gconv<T>(1, 384, 3, 3, 96, 8, 0, 8, true, kRelu, nhwc);      // V1 g=8 gconv1 (Cg 48, Kg 12)
    if (full) test_gconv<T>(1, 480, 2, 3, 120, 3, 0, 3, true, kRelu, nhwc);     // V1 g=3 stage 3 gconv1
    test_gconv<T>(2, 9, 3, 3, 15, 3, 0, 0, true, kRelu, nhwc);        // Cg = 3: unaligned rows, scalar loads
    test_gconv<T>(1, 116, 3, 3, 64, 2, 0, 0, true, kNone, nhwc);      // Cg = 58: 4-byte copies
    test_gconv<T>(3, 60, 4, 6, 48, 3, 3, 0, true, kRelu, nhwc);       // NCHW 16-byte pixel runs (HW 24), shuffle_in, 72 px
    test_gconv<T>(2, 116, 8, 8, 58, 1, 0, 0, true, kRelu, nhwc);      // HW 64: pixel runs; Cg 116: 4 slabs, last partial
  }
  if (which.find('v') != std::string::npos) {
    test_v1<T>(1, 48, 6, 5, 12, 48, 3, 3, 1, true, nhwc);
    test_v1<T>(1, 24, 7, 6, 36, 36, 3, 1, 2, true, nhwc);             // first_groups=1, odd size
    test_v1<T>(1, 72, 5, 5, 24, 48, 4, 4, 2, false, nhwc);            // 2 side blocks, no biases
    if (full) test_v1<T>(1, 24, 7, 7, 60, 216, 3, 1, 2, true, nhwc);            // g=3 stage-2 head: 24 -> 240
    test_v1<T>(1, 240, 5, 6, 60, 240, 3, 3, 1, true, nhwc);           // g=3 stage 2 (Cg 20, Kg 80)
    if (full) test_v1<T>(1, 480, 3, 3, 120, 480, 3, 3, 1, true, nhwc);          // g=3 stage 3 (Cg 40, Kg 160)
    test_v1<T>(1, 384, 4, 4, 96, 384, 8, 8, 1, true, nhwc);           // g=8 stage 2 (Cg 12, Kg 48)
    test_v1<T>(1, 200, 3, 4, 50, 200, 2, 2, 1, true, nhwc);           // g=2 stage 2 (Cg 25: scalar halo)
    if (full) test_v1<T>(1, 144, 9, 9, 36, 144, 1, 1, 1, true, nhwc);           // g=1, 9x9: 4 spatial tiles
    test_v1<T>(1, 200, 6, 5, 50, 200, 2, 2, 2, true, nhwc);           // g=2 stride 2
    test_v1<T>(1, 64, 6, 6, 32, 64, 2, 2, 1, true, nhwc);             // Cg 16 x 2 groups: 16-byte dw tap / bias loads
  }
  if (which.find('w') != std::string::npos) {
    if (full) test_v2<T>(2, 48, 6, 6, 24, 1, true, nhwc);
    test_v2<T>(1, 116, 4, 4, 58, 1, true, nhwc);                      // B=58: partial tiles, 116-ch passthrough
    test_v2<T>(1, 24, 7, 7, 24, 2, true, nhwc);
    test_v2<T>(1, 24, 5, 4, 12, 1, true, nhwc);                       // side_C 12: vector side copy + 4-channel tail
    test_v2<T>(1, 24, 7, 5, 58, 2, false, nhwc);                      // stage-2 head: 24 -> 116
    if (full) test_v2<T>(1, 232, 3, 4, 116, 1, true, nhwc);                     // stage 3
    test_v2<T>(1, 464, 3, 3, 232, 1, true, nhwc);                     // stage 4: 232 branch, 4 m-tiles
    test_v2<T>(1, 232, 5, 5, 232, 2, true, nhwc);                     // stage-4 head: branch1 Cg 232
    if (full) test_v2<T>(1, 116, 9, 9, 116, 2, false, nhwc);                    // stage-3 head, 2 x 2... tiles of 5x5 out
    if (full) {
      // forces the depthwise recompute path: DW Cg 232 needs 68.25 KB with A resident (ca 256), 64.25 KB
      // at ca 224 (plain fp16 needs 68.5 KB: the limit is the DW launches' only)
      g_dw_smem_max = 66 * 1024;
      const int before = g_recompute_runs;
      test_v2<T>(1, 464, 3, 3, 232, 1, true, nhwc);
      g_dw_smem_max = 0;
      if (g_recompute_runs == before) { printf("FAIL the recompute case planned A resident\n"); ++fails; }
    }
  }
}

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IOLBF, 0);  // PASS lines survive a sanitizer abort
  std::string which = argc > 1 ? argv[1] : "sgvw";
  std::string dt = argc > 2 ? argv[2] : "fhb";
  // Built with -DFASTCONV_EMU_WGMMA=1 the fp16/bf16 gconv GEMMs run on the wgmma twin (the sm_90a
  // path), otherwise on ldmatrix + mma.sync (sm_80 / sm_90).
  printf("gconv fp16/bf16 GEMM: %s\n", stages::kWgmma ? "wgmma (sm_90a path)" : "mma.sync (sm_80/sm_90 path)");
  if (which.find('s') != std::string::npos) for (bool nhwc : {false, true}) {
    test_shuffle<uint16_t>(2, 12, 8, 8, 3, nhwc, 0, false);   // NCHW vec (HW % 8 == 0); NHWC scalar (C % 8 != 0)
    test_shuffle<uint16_t>(2, 24, 5, 5, 4, nhwc, 0, false);   // NCHW gather; NHWC vec
    test_shuffle<uint16_t>(2, 24, 4, 4, 4, nhwc, 1, false);   // misaligned x: NCHW gather, NHWC scalar
    test_shuffle<uint32_t>(3, 12, 4, 5, 4, nhwc, 0, false);   // vec both (4 per 16 B)
    test_shuffle<uint32_t>(1, 6, 3, 3, 2, nhwc, 0, true);     // scalar, 64-bit index
    test_shuffle<uint64_t>(2, 10, 3, 4, 5, nhwc, 0, false);   // float64, 2 per 16 B
    test_shuffle<uint64_t>(2, 10, 3, 4, 5, nhwc, 1, true);    // misaligned, 64-bit index
    test_shuffle<uint16_t>(1, 64, 16, 16, 8, nhwc, 0, false); // more vectors than 2 blocks: grid-stride loop
    test_shuffle<uint16_t>(2, 24, 7, 7, 2, nhwc, 0, false);   // 7x7 (NCHW gather: vectors straddle planes)
    test_shuffle<uint16_t>(1, 58, 14, 14, 2, nhwc, 0, false); // 14x14, C = 58, total % 8 != 0: tail
    test_shuffle<uint16_t>(2, 6, 1, 3, 3, nhwc, 1, true);     // H*W < 8, misaligned x, 64-bit index
  }
  for (bool nhwc : {false, true}) {
    if (dt.find('f') != std::string::npos) all<float>(nhwc, which);
    if (dt.find('h') != std::string::npos) all<__half>(nhwc, which);
    if (dt.find('b') != std::string::npos) all<__nv_bfloat16>(nhwc, which);
  }
  const bool wg_expected = stages::kWgmma && which.find_first_of("gvw") != std::string::npos && dt.find_first_of("hb") != std::string::npos;
  if (wg_expected && stages::g_wgmma_count == 0) { printf("FAIL the wgmma variant issued no wgmma\n"); ++fails; }
  if (stages::kWgmma) printf("wgmma issued (per warpgroup): %ld\n", stages::g_wgmma_count);
  printf("%d failures\n", fails);
  return fails != 0;
}
