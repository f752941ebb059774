// 8-channel vectors: the unit of work of the depthwise and epilogue stages. Eight elements of T
// are one 16-byte vector for fp16/bf16 and two for fp32; in registers they are 8 floats.
// Every pointer passed here must be 16-byte aligned (8-element aligned in T).
#pragma once

#include <cstring>

#include "common.h"
#include "stages/copy.cuh"

namespace fastconv {
namespace stages {

template <typename T> constexpr int kVec16 = 16 / int(sizeof(T));  // elements per 16-byte vector
template <typename T> constexpr int kWords8 = int(sizeof(T)) / 2;   // 16-byte vectors per 8 elements

template <typename T> __device__ __forceinline__ void unpack8(const uint4 (&u)[kWords8<T>], float (&v)[8]) {
  T e[8];
  memcpy(e, u, sizeof e);
#pragma unroll
  for (int i = 0; i < 8; ++i) v[i] = to_float(e[i]);
}

template <typename T> __device__ __forceinline__ void pack8(const float (&v)[8], uint4 (&u)[kWords8<T>]) {
  T e[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) e[i] = from_float<T>(v[i]);
  memcpy(u, e, sizeof e);
}

template <typename T> __device__ __forceinline__ void lds8(const T* p, float (&v)[8]) {
  uint4 u[kWords8<T>];
#pragma unroll
  for (int w = 0; w < kWords8<T>; ++w) u[w] = lds16(p + w * kVec16<T>);
  unpack8<T>(u, v);
}

template <typename T> __device__ __forceinline__ void sts8(T* p, const float (&v)[8]) {
  uint4 u[kWords8<T>];
  pack8<T>(v, u);
#pragma unroll
  for (int w = 0; w < kWords8<T>; ++w) sts16(p + w * kVec16<T>, u[w]);
}

template <typename T> __device__ __forceinline__ void ldg8(const T* p, float (&v)[8]) {
  uint4 u[kWords8<T>];
#pragma unroll
  for (int w = 0; w < kWords8<T>; ++w) u[w] = ldg16(p + w * kVec16<T>);
  unpack8<T>(u, v);
}

template <typename T> __device__ __forceinline__ void stg8(T* p, const float (&v)[8]) {
  uint4 u[kWords8<T>];
  pack8<T>(v, u);
#pragma unroll
  for (int w = 0; w < kWords8<T>; ++w) stg16(p + w * kVec16<T>, u[w]);
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
