// 8-channel vectors: the unit of work of the depthwise and epilogue stages. Eight elements of T
// are one 16-byte vector for fp16/bf16 and two for fp32; in registers they are 8 floats.
// Every pointer passed here must be 16-byte aligned (8-element aligned in T).
#pragma once

#include <cstring>

#include "kernel_common.h"
#include "stages/copy.cuh"

namespace fastconv {
namespace stages {

template <typename T> constexpr int kVec16 = 16 / int(sizeof(T));  // elements per 16-byte vector
template <typename T> constexpr int kWords8 = int(sizeof(T)) / 2;   // 16-byte vectors per 8 elements

// Packing goes through explicit 32-bit words: a memcpy between a T[8] and the uint4 would let the
// compiler forward it into a 2-byte-aligned copy and split every 16-byte access into four.
template <typename T> __device__ __forceinline__ uint32_t word_bits(float lo, float hi) {
  const T a = from_float<T>(lo), b = from_float<T>(hi);
  uint16_t ua, ub;
  memcpy(&ua, &a, 2);
  memcpy(&ub, &b, 2);
  return uint32_t(ua) | (uint32_t(ub) << 16);
}
template <typename T> __device__ __forceinline__ float half_bits(uint32_t w, int hi) {
  const uint16_t u = uint16_t(hi ? w >> 16 : w & 0xffffu);
  T e;
  memcpy(&e, &u, 2);
  return to_float(e);
}
__device__ __forceinline__ uint32_t word_at(const uint4& u, int i) { return i == 0 ? u.x : i == 1 ? u.y : i == 2 ? u.z : u.w; }

template <typename T> __device__ __forceinline__ void unpack8(const uint4 (&u)[kWords8<T>], float (&v)[8]) {
  if constexpr (sizeof(T) == 2) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      v[2 * i] = half_bits<T>(word_at(u[0], i), 0);
      v[2 * i + 1] = half_bits<T>(word_at(u[0], i), 1);
    }
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] = __uint_as_float(word_at(u[i / 4], i % 4));
  }
}

template <typename T> __device__ __forceinline__ void pack8(const float (&v)[8], uint4 (&u)[kWords8<T>]) {
  if constexpr (sizeof(T) == 2) {
    u[0] = make_uint4(word_bits<T>(v[0], v[1]), word_bits<T>(v[2], v[3]), word_bits<T>(v[4], v[5]),
                      word_bits<T>(v[6], v[7]));
  } else {
    u[0] = make_uint4(__float_as_uint(v[0]), __float_as_uint(v[1]), __float_as_uint(v[2]), __float_as_uint(v[3]));
    u[1] = make_uint4(__float_as_uint(v[4]), __float_as_uint(v[5]), __float_as_uint(v[6]), __float_as_uint(v[7]));
  }
}

// 8 elements through a 16-byte load / store primitive (lds16/ldg16, sts16/stg16).
template <typename T, class Ld> __device__ __forceinline__ void load8(const T* p, float (&v)[8], Ld ld) {
  uint4 u[kWords8<T>];
#pragma unroll
  for (int w = 0; w < kWords8<T>; ++w) u[w] = ld(p + w * kVec16<T>);
  unpack8<T>(u, v);
}
template <typename T, class St> __device__ __forceinline__ void store8(T* p, const float (&v)[8], St st) {
  uint4 u[kWords8<T>];
  pack8<T>(v, u);
#pragma unroll
  for (int w = 0; w < kWords8<T>; ++w) st(p + w * kVec16<T>, u[w]);
}
template <typename T> __device__ __forceinline__ void lds8(const T* p, float (&v)[8]) {
  load8(p, v, [](const void* q) { return lds16(q); });
}
template <typename T> __device__ __forceinline__ void ldg8(const T* p, float (&v)[8]) {
  load8(p, v, [](const void* q) { return ldg16(q); });
}
template <typename T> __device__ __forceinline__ void sts8(T* p, const float (&v)[8]) {
  store8(p, v, [](void* q, uint4 u) { sts16(q, u); });
}
template <typename T> __device__ __forceinline__ void stg8(T* p, const float (&v)[8]) {
  store8(p, v, [](void* q, uint4 u) { stg16(q, u); });
}

// act over a register array (the switch on the runtime act code is uniform across the CTA).
template <int N> __device__ __forceinline__ void act_n(float (&v)[N], int act) {
  if (act == kNone) return;
#pragma unroll
  for (int i = 0; i < N; ++i) v[i] = apply_act(v[i], act);
}

// 8 fp32 values from shared memory (two 16-byte loads).
__device__ __forceinline__ void lds8f(const float* p, float (&v)[8]) { lds8<float>(p, v); }

}  // namespace stages
}  // namespace fastconv
