// Stage: copy a tile of `rows` rows x `cols` elements from global into shared memory, row r of the
// tile coming from a caller-given pointer (so the same code stages an NHWC halo -- row = pixel --
// and a weight slab -- row = output channel). Out-of-range rows (row_ptr returns nullptr) and
// columns >= valid_cols are zero-filled, so consumers never see garbage (0 * NaN would poison a
// GEMM).
//
//   copy_rows<T, NT>(bytes, dst, ld, rows, cols, valid_cols, base, row_ptr)
//     bytes 16/8/4: cp.async of that width (asynchronous: the caller commits and waits);
//     requires cols, valid_cols, ld and every row pointer to be multiples of bytes / sizeof(T)
//     elements (16-, 8- or 4-byte aligned); `base` is any valid global pointer (the source of
//     predicated-off copies).
//     bytes 0: synchronous scalar loads (any alignment); a column step of col_stride elements
//     (NCHW channels), iterating rows fastest when rows_fastest (coalesced NCHW loads).
// Budget per call: rows * cols * sizeof(T) / bytes copy instructions spread over NT threads, one
// integer divide per copy (cols / element width is runtime).
// vec_bytes(): the widest copy the alignment of a row pitch / base pointer allows.
#pragma once

#include <cstdint>

#include "common.h"
#include "stages/copy.cuh"

namespace fastconv {
namespace stages {

// Widest cp.async width (16, 8, 4; 0 = none) for rows whose element offsets are multiples of
// `pitch` elements of `elem` bytes, starting at pointer `p`.
__host__ __device__ inline int vec_bytes(const void* p, int64_t pitch, int elem) {
  const int64_t bytes = pitch * elem;
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  for (int b = 16; b >= 4; b /= 2)
    if (bytes % b == 0 && a % b == 0) return b;
  return 0;
}

// As copy_rows_async with the destination of element (r, c) given by dst_at(r, c) (a T*): any layout
// that keeps each BYTES-wide run of a row contiguous, e.g. the core-matrix B tiles of gemm.cuh.
template <typename T, int BYTES, int NT, class DstAt, class RowPtr>
__device__ __forceinline__ void copy_rows_async_at(DstAt&& dst_at, int rows, int cols, int valid_cols, const T* base,
                                                   RowPtr row_ptr) {
  constexpr int E = BYTES / int(sizeof(T));
  static_assert(E >= 1, "copy narrower than one element");
  const int vpr = cols / E;
  for (int i = threadIdx.x; i < rows * vpr; i += NT) {
    const int r = i / vpr, c = (i - r * vpr) * E;
    const T* src = row_ptr(r);
    const bool ok = src != nullptr && c < valid_cols;
    cp_async<BYTES>(dst_at(r, c), ok ? src + c : base, ok);
  }
}

template <typename T, int BYTES, int NT, class RowPtr>
__device__ __forceinline__ void copy_rows_async(T* dst, int ld, int rows, int cols, int valid_cols, const T* base,
                                                RowPtr row_ptr) {
  copy_rows_async_at<T, BYTES, NT>([&](int r, int c) { return dst + r * ld + c; }, rows, cols, valid_cols, base, row_ptr);
}

template <typename T, int NT, class RowPtr>
__device__ __forceinline__ void copy_rows_sync(T* dst, int ld, int rows, int cols, int valid_cols, int64_t col_stride,
                                               bool rows_fastest, RowPtr row_ptr) {
  for (int i = threadIdx.x; i < rows * cols; i += NT) {
    const int r = rows_fastest ? i % rows : i / cols;
    const int c = rows_fastest ? i / rows : i % cols;
    const T* src = row_ptr(r);
    dst[r * ld + c] = src != nullptr && c < valid_cols ? src[c * col_stride] : from_float<T>(0.f);
  }
}

// Runtime choice of the copy width (uniform across the CTA, so the branch costs nothing).
template <typename T, int NT, class RowPtr>
__device__ __forceinline__ void copy_rows(int bytes, T* dst, int ld, int rows, int cols, int valid_cols, const T* base,
                                          int64_t col_stride, bool rows_fastest, RowPtr row_ptr) {
  if (bytes == 16) copy_rows_async<T, 16, NT>(dst, ld, rows, cols, valid_cols, base, row_ptr);
  else if (bytes == 8 && sizeof(T) <= 8) copy_rows_async<T, 8, NT>(dst, ld, rows, cols, valid_cols, base, row_ptr);
  else if (bytes == 4) copy_rows_async<T, 4, NT>(dst, ld, rows, cols, valid_cols, base, row_ptr);
  else copy_rows_sync<T, NT>(dst, ld, rows, cols, valid_cols, col_stride, rows_fastest, row_ptr);
}

}  // namespace stages
}  // namespace fastconv
