// Host-side test tensors of the emulator harnesses: logical (n, c, h, w) values in double with NCHW
// or NHWC strides, drawn from the harness's generator `rng` (each harness defines it, with its own
// seed, before including this header), and their rounding to the kernel's element type.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

struct Tns {  // logical (n, c, h, w) with strides; v holds values already rounded to T
  int d[4]; int64_t s[4]; std::vector<double> v;
  double& at(int n, int c, int h, int w) { return v[n * s[0] + c * s[1] + h * s[2] + w * s[3]]; }
};
static Tns make(int n, int c, int h, int w, bool nhwc, double scale) {
  Tns t{{n, c, h, w}, {}, {}};
  if (nhwc) { t.s[1] = 1; t.s[3] = c; t.s[2] = int64_t(w) * c; t.s[0] = int64_t(h) * w * c; }
  else { t.s[3] = 1; t.s[2] = w; t.s[1] = int64_t(h) * w; t.s[0] = int64_t(c) * h * w; }
  t.v.resize(size_t(n) * c * h * w);
  std::normal_distribution<double> nd(0, scale);
  for (auto& e : t.v) e = nd(rng);
  return t;
}
static std::vector<double> rvec(size_t n, double scale) {
  std::normal_distribution<double> nd(0, scale); std::vector<double> v(n); for (auto& e : v) e = nd(rng); return v;
}
template <typename T> static std::vector<T> dev(std::vector<double>& v) {  // round to T in place
  std::vector<T> o(v.size());
  for (size_t i = 0; i < v.size(); ++i) { o[i] = fastconv::from_float<T>(float(v[i])); v[i] = fastconv::to_float(o[i]); }
  return o;
}
