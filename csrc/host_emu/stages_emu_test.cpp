// Unit tests of the shared CUDA stages (csrc/stages/) under host emulation, each stage against a
// plain double-precision reference: the cp.async pipeline semantics, tile copies (16/8/4-byte and
// scalar paths), the depthwise stage (fast and generic paths, NHWC/NCHW, stride, dilation, image
// borders, C not a multiple of the chunk), the tile GEMM (ldmatrix + mma.sync emulated per lane with
// the PTX fragment layouts; FMA for fp32; row-major and core-matrix B), the warpgroup-MMA tile
// (stages/wg_gemm.cuh on the wgmma twin: B read through decoded descriptors; wrong LBO / SBO, a
// missing proxy fence and a missing wait must be caught) and the epilogue (16-byte and scalar paths).
//   g++ -std=c++20 -O0 -g1 -fsanitize=address,undefined -Icsrc/host_emu -Icsrc \
//       csrc/host_emu/stages_emu_test.cpp -o /tmp/stages_emu_test -pthread && /tmp/stages_emu_test
#include "kernel_common.h"
#include "stages/depthwise.cuh"
#include "stages/gemm.cuh"
#include "stages/wg_gemm.cuh"
#include <cstdio>
#include <random>
#include <string>
#include <vector>

using namespace fastconv;
using namespace fastconv::stages;

alignas(128) static unsigned char smem[1 << 20];
static std::mt19937 rng(7);
static int fails = 0, passes = 0;

template <typename T> static const char* tname() {
  return std::is_same<T, float>::value ? "f32" : std::is_same<T, __half>::value ? "f16" : "bf16";
}
template <typename T> static double tol() { return std::is_same<T, float>::value ? 1e-5 : std::is_same<T, __half>::value ? 2e-3 : 1.6e-2; }
template <typename T> static std::vector<T> rnd(size_t n, double scale, std::vector<double>& exact) {
  std::normal_distribution<double> nd(0, scale);
  std::vector<T> v(n);
  exact.resize(n);
  for (size_t i = 0; i < n; ++i) { v[i] = from_float<T>(float(nd(rng))); exact[i] = to_float(v[i]); }
  return v;
}
static void check(const std::string& what, double err, double scale, double tol_rel) {
  const bool ok = err <= tol_rel * std::max(1.0, scale);
  (ok ? passes : fails) += 1;
  printf("%s %s err=%.3g\n", ok ? "PASS" : "FAIL", what.c_str(), err);
}
static double maxerr(const std::vector<double>& ref, const std::vector<double>& got) {
  double e = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = std::fabs(ref[i] - got[i]);
    if (!(d <= e)) e = std::isnan(d) ? 1e30 : d;
  }
  return e;
}

// cp.async: data lands only at the wait that retires its group; predicated-off copies zero-fill.
static void test_copy_pipeline() {
  alignas(16) static float src[64];
  for (int i = 0; i < 64; ++i) src[i] = float(i + 1);
  float* dst = reinterpret_cast<float*>(smem);
  bool ok = true;
  emu_launch(1, 32, [&] {
    const int t = threadIdx.x;
    if (t < 16) cp_async16(dst + 4 * t, src + 4 * t, t != 3);
    cp_async_commit();
    if (t < 16) cp_async8(dst + 64 + 2 * t, src + 2 * t, true);
    cp_async_commit();
    cp_async_wait<1>();  // first group only
    __syncthreads();
    if (t == 0) {
      for (int i = 0; i < 64; ++i) ok = ok && dst[i] == (i / 4 == 3 ? 0.f : src[i]);
      ok = ok && std::isnan(dst[64]);  // second group still in flight: poisoned
    }
    __syncthreads();
    cp_async_wait<0>();
    __syncthreads();
    if (t == 0)
      for (int i = 0; i < 32; ++i) ok = ok && dst[64 + i] == src[i];
    if (t < 8) cp_async4(dst + 100 + t, src + t, t % 2 == 0);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    if (t == 0)
      for (int i = 0; i < 8; ++i) ok = ok && dst[100 + i] == (i % 2 == 0 ? src[i] : 0.f);
    ok = ok && cp_async_idle();
  });
  check("copy cp.async groups/zero-fill/wait", ok ? 0 : 1, 1, 0);
}

// copy_rows at every width against a scalar reference; rows 2 and 5 are null (zero rows).
template <typename T> static void test_copy_rows(int bytes, int cols, int valid) {
  const int rows = 7, ld = cols + 8, pitch = 40;
  std::vector<double> ex;
  auto g = rnd<T>(size_t(rows) * pitch + 64, 1.0, ex);
  T* dst = reinterpret_cast<T*>(smem);
  emu_launch(1, 64, [&] {
    copy_rows<T, 64>(bytes, dst, ld, rows, cols, valid, g.data(), 1, false,
                     [&](int r) -> const T* { return r == 2 || r == 5 ? nullptr : g.data() + r * pitch; });
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
  });
  std::vector<double> ref, got;
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      ref.push_back(r == 2 || r == 5 || c >= valid ? 0.0 : ex[r * pitch + c]);
      got.push_back(to_float(dst[r * ld + c]));
    }
  check(std::string("copy_rows ") + tname<T>() + " bytes" + std::to_string(bytes) + " cols" + std::to_string(cols) +
            " valid" + std::to_string(valid),
        maxerr(ref, got), 1, 0);
}

// One CTA tile of the depthwise stage vs a direct convolution with zero padding.
template <typename T, int KS, int S, int RW, bool PACK = (sizeof(T) == 2 && KS >= 5)>
static void test_dw(int k, int s, int d, bool nhwc, int C, int c0, int cc, int H, int W, int oy0, int ox0, int act) {
  constexpr int TH = 8, TW = 8, NT = 256;
  using DW = Depthwise<T, KS, S, TH, TW, RW, NT, PACK>;
  const int N = 2, n = 1, pad = (k / 2) * d;
  int64_t xs[4];
  if (nhwc) { xs[1] = 1; xs[3] = C; xs[2] = int64_t(W) * C; xs[0] = int64_t(H) * W * C; }
  else { xs[3] = 1; xs[2] = W; xs[1] = int64_t(H) * W; xs[0] = int64_t(C) * H * W; }
  std::vector<double> xe, we, be;
  auto x = rnd<T>(size_t(N) * C * H * W, 1.0, xe);
  auto w = rnd<T>(size_t(C) * k * k, 1.0 / k, we);
  auto b = rnd<T>(C, 0.1, be);
  const int ih = halo_extent(TH, k, s, d), iw = halo_extent(TW, k, s, d);
  const int h0 = oy0 * s - pad, w0 = ox0 * s - pad;
  int bytes = 0;
  if (nhwc) bytes = std::min(vec_bytes(x.data(), C, sizeof(T)), vec_bytes(x.data(), 8, sizeof(T)));
  T* in = reinterpret_cast<T*>(smem);
  T* wt = reinterpret_cast<T*>(smem + ((size_t(ih) * iw * cc * sizeof(T) + 127) & ~size_t(127)));
  float* bias = reinterpret_cast<float*>(smem + ((size_t(ih) * iw * cc * sizeof(T) + 127) & ~size_t(127)) +
                                         ((size_t(k) * k * cc * sizeof(T) + 127) & ~size_t(127)));
  std::vector<double> got(size_t{TH} * TW * cc, NAN);
  emu_launch(1, NT, [&] {
    DW::load_input(bytes, in, x.data(), xs, n, h0, w0, H, W, ih, iw, c0, C, cc);
    DW::load_weights(wt, bias, w.data(), b.data(), c0, C, k * k, cc);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    DW::compute(in, wt, bias, act, k, s, d, iw, cc, [&](int row, int g, float (&v)[8]) {
      for (int c = 0; c < 8; ++c) got[size_t(row) * cc + g * 8 + c] = v[c];
    });
  });
  std::vector<double> ref(got.size());
  for (int r = 0; r < TH * TW; ++r)
    for (int cl = 0; cl < cc; ++cl) {
      const int c = c0 + cl;
      double acc = 0;
      if (c < C) {
        acc = be[c];
        for (int ky = 0; ky < k; ++ky)
          for (int kx = 0; kx < k; ++kx) {
            const int hi = h0 + (r / TW) * s + ky * d, wi = w0 + (r % TW) * s + kx * d;
            if (hi >= 0 && hi < H && wi >= 0 && wi < W) acc += xe[n * xs[0] + c * xs[1] + hi * xs[2] + wi * xs[3]] * we[c * k * k + ky * k + kx];
          }
      }
      ref[size_t(r) * cc + cl] = apply_act(float(acc), act);
    }
  char cfg[200];
  snprintf(cfg, sizeof cfg, "depthwise %s KS%d S%d RW%d%s k%d s%d d%d %s C%d c0=%d cc%d %dx%d tile@%d,%d act%d bytes%d", tname<T>(), KS, S, RW,
           PACK ? " packed" : "", k, s, d, nhwc ? "nhwc" : "nchw", C, c0, cc, H, W, oy0, ox0, act, bytes);
  check(cfg, maxerr(ref, got), 1, 1e-4);
}

// The tile GEMM: acc += A[BM x KD] * B[BN x KD]^T in two calls (k offsets), stored to fp32 staging.
template <typename T, int BM, int BN, int WM, int WN> static void test_gemm(int pad) {
  constexpr int KD = 64, NT = 32 * WM * WN;
  using G = Gemm<T, BM, BN, WM, WN>;
  const int lda = KD + pad, ldb = KD + pad, ldc = BN + 8;
  std::vector<double> ae, be;
  auto a = rnd<T>(size_t(BM) * KD, 1.0, ae);
  auto b = rnd<T>(size_t(BN) * KD, 1.0, be);
  T* As = reinterpret_cast<T*>(smem);
  T* Bs = As + BM * lda;
  float* Cs = reinterpret_cast<float*>(smem + (((BM + BN) * lda * sizeof(T) + 127) & ~size_t(127)));
  emu_launch(1, NT, [&] {
    copy_rows<T, NT>(16, As, lda, BM, KD, KD, a.data(), 1, false, [&](int r) { return a.data() + r * KD; });
    copy_rows<T, NT>(16, Bs, ldb, BN, KD, KD, b.data(), 1, false, [&](int r) { return b.data() + r * KD; });
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();
    G g;
    g.zero();
    g.template mma<KD / 32>(As, lda, Bs, ldb);
    g.template mma<KD / 32>(As + KD / 2, lda, Bs + KD / 2, ldb);
    g.store(Cs, ldc);
    __syncthreads();
  });
  std::vector<double> ref(size_t{BM} * BN), got(ref.size());
  double mx = 0;
  for (int m = 0; m < BM; ++m)
    for (int n = 0; n < BN; ++n) {
      double s = 0;
      for (int q = 0; q < KD; ++q) s += ae[m * KD + q] * be[n * KD + q];
      ref[m * BN + n] = s;
      got[m * BN + n] = Cs[m * ldc + n];
      mx = std::max(mx, std::fabs(s));
    }
  char cfg[120];
  snprintf(cfg, sizeof cfg, "gemm %s %dx%d warps %dx%d lda%d%s", tname<T>(), BM, BN, WM, WN, lda,
           kTensorCore<T> ? " (ldmatrix+mma.sync)" : " (fma)");
  check(cfg, maxerr(ref, got), mx, 1e-5);
}

// B [BN][KD] (row-major in global) -> core-matrix tiles in smem (core_offset, ldb = 8 KD), 16-byte cp.async.
template <typename T, int NT> static void load_core(T* Bs, const T* b, int BN, int KD) {
  for (int i = threadIdx.x; i < BN * KD / 8; i += NT) {
    const int n = i / (KD / 8), k = (i % (KD / 8)) * 8;
    cp_async16(Bs + core_offset(n, k, 8 * KD), b + n * KD + k, true);
  }
}
static void reset_wgmma_checks() {
  for (auto& f : g_proxy_dirty) f = 0;
  g_wgmma_violations = 0;
}

// A tile GEMM on core-matrix B (Gemm<..., BCORE> on mma.sync, or WgGemm on wgmma): two mma calls
// (k offsets) as test_gemm. bad_ldb: the tile is told a wrong 8-row group pitch (SBO), which must
// give wrong numbers (proof that the wgmma twin decodes the descriptor). fence: fence_proxy_async
// after the wait (a run without it must count a violation on the wgmma path).
template <typename T, class G, int BM, int BN>
static void test_core_gemm(const char* name, int bad_ldb, bool fence, bool expect_ok, int ncols = BN) {
  constexpr int KD = 64, NT = G::NT;
  const int lda = KD + 8, ldb = 8 * KD, ldc = BN + 8;
  std::vector<double> ae, be;
  auto a = rnd<T>(size_t(BM) * KD, 1.0, ae);
  auto b = rnd<T>(size_t(BN) * KD, 1.0, be);
  T* As = reinterpret_cast<T*>(smem);
  T* Bs = As + BM * lda;
  float* Cs = reinterpret_cast<float*>(smem + (((BM * lda + BN * KD + 64 * 64) * sizeof(T) + 127) & ~size_t(127)));
  reset_wgmma_checks();
  emu_set_smem(smem, 1 << 18);
  const long n0 = g_wgmma_count;
  bool idle = true;
  emu_launch(1, NT, [&] {
    copy_rows<T, NT>(16, As, lda, BM, KD, KD, a.data(), 1, false, [&](int r) { return a.data() + r * KD; });
    load_core<T, NT>(Bs, b.data(), BN, KD);
    cp_async_commit();
    cp_async_wait<0>();
    if (fence) fence_proxy_async();
    __syncthreads();
    G g;
    g.zero();
    g.template mma<KD / 32>(As, lda, Bs, ldb + bad_ldb, ncols);
    g.template mma<KD / 32>(As + KD / 2, lda, Bs + 8 * (KD / 2), ldb + bad_ldb, ncols);
    g.store(Cs, ldc);
    __syncthreads();
    if (!wgmma_idle()) idle = false;
  });
  emu_set_smem(nullptr, 0);
  std::vector<double> ref, got;  // the valid columns (< ncols) only
  double mx = 0;
  for (int m = 0; m < BM; ++m)
    for (int n = 0; n < ncols; ++n) {
      double s = 0;
      for (int q = 0; q < KD; ++q) s += ae[m * KD + q] * be[n * KD + q];
      ref.push_back(s);
      got.push_back(Cs[m * ldc + n]);
      mx = std::max(mx, std::fabs(s));
    }
  const double err = maxerr(ref, got);
  const bool numeric_ok = err <= 1e-5 * std::max(1.0, mx);
  const bool wg = g_wgmma_count > n0;
  const bool clean = g_wgmma_violations == 0 && idle;
  char cfg[200];
  snprintf(cfg, sizeof cfg, "%s %s %dx%d ncols %d core-matrix B%s%s (wgmma issued %ld)", name, tname<T>(), BM, BN, ncols,
           bad_ldb ? " WRONG SBO: must mismatch" : "", fence ? "" : " NO PROXY FENCE: must be flagged",
           long(g_wgmma_count - n0));
  const bool ok = expect_ok ? numeric_ok && clean : bad_ldb ? !numeric_ok : (wg && g_wgmma_violations > 0);
  check(cfg, ok ? 0 : 1, 1, 0);
  reset_wgmma_checks();
}

// The primitive alone, one warpgroup, m64nNk16 once: a wrong LBO (core matrices adjacent in K) must
// give wrong numbers; reading the accumulators before wgmma_wait must see NaN.
template <typename T, int N> static void test_wgmma_prim(int lbo, bool wait) {
  constexpr int M = 64, K = 16;
  const int lda = K + 8;
  std::vector<double> ae, be;
  auto a = rnd<T>(size_t(M) * K, 1.0, ae);
  auto b = rnd<T>(size_t(N) * K, 1.0, be);
  T* As = reinterpret_cast<T*>(smem);
  T* Bs = reinterpret_cast<T*>(smem + 4096);  // core matrices (n8, k8) at n8 * 256 + k8 * lbo bytes
  std::vector<double> got(size_t(M) * N, NAN);
  reset_wgmma_checks();
  emu_set_smem(smem, 1 << 18);
  memset(smem + 4096, 0, 65536);
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < K; ++k) memcpy(smem + 4096 + (n / 8) * 256 + (k / 8) * 128 + (n % 8) * 16 + (k % 8) * 2, &b[n * K + k], 2);
  emu_launch(1, 128, [&] {
    for (int i = threadIdx.x; i < M * K; i += 128) As[(i / K) * lda + i % K] = a[i];
    __syncthreads();
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    uint32_t fr[4];
    ldmatrix_x4(fr, As + (16 * w + (lane & 15)) * lda + (lane >> 4) * 8);
    float d[N / 2];
    for (auto& e : d) e = 1.f;  // scale_d = 0 below: D = A B, these are ignored
    wgmma_fence();
    wgmma_m64nNk16<T, N>(d, fr, wgmma_desc(smem_addr(Bs), uint32_t(lbo), 256), 0);
    wgmma_commit();
    if (wait) wgmma_wait<0>();
    const int g = lane / 4, t = lane % 4;
    for (int i = 0; i < N / 8; ++i)
      for (int e = 0; e < 4; ++e) got[size_t(16 * w + g + 8 * (e / 2)) * N + 8 * i + 2 * t + e % 2] = d[4 * i + e];
    wgmma_wait<0>();
  });
  emu_set_smem(nullptr, 0);
  std::vector<double> ref(got.size());
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      double s = 0;
      for (int q = 0; q < K; ++q) s += ae[m * K + q] * be[n * K + q];
      ref[size_t(m) * N + n] = s;
    }
  const double err = maxerr(ref, got);
  bool ok;
  if (!wait) ok = err >= 1e30;  // NaN before the wait
  else if (lbo != 128) ok = err > 1e-3;
  else ok = err <= 1e-5 * 16;
  char cfg[160];
  snprintf(cfg, sizeof cfg, "wgmma m64n%dk16 %s LBO %d%s%s err=%.3g", N, tname<T>(), lbo, lbo != 128 ? " (wrong: must mismatch)" : "",
           wait ? "" : " read before wgmma_wait: must be NaN", err);
  check(cfg, ok ? 0 : 1, 1, 0);
}

template <typename T> static void wgmma_cases() {
  test_wgmma_prim<T, 64>(128, true);
  test_wgmma_prim<T, 128>(128, true);
  test_wgmma_prim<T, 64>(256, true);
  test_wgmma_prim<T, 64>(128, false);
  using Dw = WgGemm<T, 64, 128, 1, 2>;     // gconv DW: 2 warpgroups side by side, m64n64k16
  using Plain = WgGemm<T, 128, 128, 2, 1>;  // gconv plain: 2 warpgroups stacked, m64n128k16
  test_core_gemm<T, Dw, 64, 128>("wg_gemm", 0, true, true);
  test_core_gemm<T, Plain, 128, 128>("wg_gemm", 0, true, true);
  test_core_gemm<T, WgGemm<T, 64, 64, 1, 1>, 64, 64>("wg_gemm", 0, true, true);
  test_core_gemm<T, Plain, 128, 128>("wg_gemm", 0, true, true, 58);  // <= 64 valid columns: m64n64k16
  test_core_gemm<T, Plain, 128, 128>("wg_gemm", 0, true, true, 72);
  test_core_gemm<T, Dw, 64, 128>("wg_gemm", 0, true, true, 40);       // warpgroup 1 skips
  test_core_gemm<T, Dw, 64, 128>("wg_gemm", 64, true, false);
  test_core_gemm<T, Plain, 128, 128>("wg_gemm", 64, true, false);
  test_core_gemm<T, Dw, 64, 128>("wg_gemm", 0, false, false);
  test_core_gemm<T, Gemm<T, 64, 128, 2, 4, true, true>, 64, 128>("gemm mma.sync", 0, true, true);
  test_core_gemm<T, Gemm<T, 128, 128, 4, 2, true, true>, 128, 128>("gemm mma.sync", 0, true, true);
}

// The epilogue: NHWC 16-byte path and NCHW/NHWC scalar paths with bias, act, residual, masked rows.
template <typename T> static void test_epilogue(bool vec, bool nhwc, int K, int n0, int act) {
  constexpr int BM = 64, BN = 64, NT = 256;
  const int P = 70, ldc = BN + 8;  // P pixels in the "image"; tile rows r map to pixel 2r (>= P masked)
  std::vector<double> cse, be, re;
  auto cs = rnd<float>(size_t(BM) * ldc, 1.0, cse);
  auto bias = rnd<T>(K, 0.5, be);
  auto res = rnd<T>(size_t(P) * K, 1.0, re);
  std::vector<T> out(size_t(P) * K, from_float<T>(NAN));
  const int64_t cs_ = nhwc ? 1 : P, ps = nhwc ? K : 1;
  float* Cs = reinterpret_cast<float*>(smem);
  memcpy(Cs, cs.data(), cs.size() * sizeof(float));
  emu_launch(1, NT, [&] {
    store_tile<T, BM, BN, NT>(Cs, ldc, [&](int r) { return RowOffsets{2 * r < P ? 2 * r * ps : -1, 2 * r * ps}; }, n0, K,
                              bias.data(), act, res.data(), cs_, out.data(), cs_, vec);
  });
  std::vector<double> ref, got;
  for (int r = 0; r < BM; ++r)
    for (int n = 0; n < BN; ++n) {
      const int ko = n0 + n;
      if (2 * r >= P || ko >= K) continue;
      ref.push_back(double(apply_act(float(cse[r * ldc + n] + be[ko]), act)) + re[2 * r * ps + ko * cs_]);
      got.push_back(to_float(out[2 * r * ps + ko * cs_]));
    }
  char cfg[120];
  snprintf(cfg, sizeof cfg, "epilogue %s %s %s K%d n0=%d act%d", tname<T>(), vec ? "vec16" : "scalar", nhwc ? "nhwc" : "nchw", K, n0, act);
  check(cfg, maxerr(ref, got), 8, tol<T>());
}

template <typename T> static void all() {
  constexpr int E = 16 / sizeof(T);
  test_copy_rows<T>(16, 64, 64);
  test_copy_rows<T>(16, 32, 3 * E);
  test_copy_rows<T>(8, 16, 16 - 8 / int(sizeof(T)));
  test_copy_rows<T>(4, 16, 4 / int(sizeof(T)) * 3);
  test_copy_rows<T>(0, 12, 7);
  for (bool nhwc : {true, false}) {
    test_dw<T, 3, 1, 4>(3, 1, 1, nhwc, 24, 0, 32, 11, 13, 8, 8, kRelu6);      // border tile, C < chunk
    test_dw<T, 3, 1, 4>(3, 1, 1, nhwc, 80, 64, 32, 9, 9, 0, 0, kNone);       // interior/top-left, last chunk
    test_dw<T, 3, 2, 2>(3, 2, 1, nhwc, 16, 0, 16, 15, 17, 0, 8, kHardswish);
    test_dw<T, 5, 1, 4>(5, 1, 1, nhwc, 20, 8, 16, 12, 12, 8, 0, kRelu);      // C not a multiple of 8
    test_dw<T, 5, 2, 2>(5, 2, 1, nhwc, 40, 32, 8, 23, 21, 8, 8, kSilu);
    test_dw<T, 7, 1, 4>(7, 1, 1, nhwc, 8, 0, 8, 7, 7, 0, 0, kRelu);
    test_dw<T, 7, 2, 2>(7, 2, 1, nhwc, 33, 32, 16, 16, 16, 0, 0, kNone);
    test_dw<T, 0, 0, 2>(3, 1, 2, nhwc, 16, 0, 16, 10, 10, 8, 0, kRelu);      // dilation
    test_dw<T, 0, 0, 2>(9, 2, 1, nhwc, 12, 0, 16, 19, 18, 0, 8, kNone);      // generic k
    test_dw<T, 0, 0, 2>(5, 3, 1, nhwc, 8, 0, 8, 30, 30, 8, 8, kRelu6);       // stride 3
    // cc = 48: NT % (cc / 8) != 0 (a thread's channel group changes between its items)
    test_dw<T, 3, 1, 2, true>(3, 1, 1, nhwc, 52, 0, 48, 10, 11, 8, 0, kRelu6);
    test_dw<T, 3, 2, 8, true>(3, 2, 1, nhwc, 40, 8, 32, 17, 21, 0, 8, kHardswish);  // strip = tile row
    test_dw<T, 5, 2, 4, false>(5, 2, 1, nhwc, 24, 0, 24, 13, 19, 8, 8, kNone);  // unpacked k5
  }
  test_gemm<T, 64, 64, 2, 4>(8);
  test_gemm<T, 64, 128, 2, 4>(8);
  test_gemm<T, 32, 64, 2, 4>(8);
  test_gemm<T, 64, 64, 2, 4>(72);  // a second leading dimension
  for (int act : {kNone, kRelu6}) {
    test_epilogue<T>(true, true, 72, 64, act);  // last, partial output-channel tile
    test_epilogue<T>(false, true, 37, 0, act);
    test_epilogue<T>(false, false, 40, 0, act);
  }
}

int main() {
  test_copy_pipeline();
  all<float>();
  all<__half>();
  all<__nv_bfloat16>();
  wgmma_cases<__half>();
  wgmma_cases<__nv_bfloat16>();
  printf("%d passed, %d failures\n", passes, fails);
  return fails != 0;
}
