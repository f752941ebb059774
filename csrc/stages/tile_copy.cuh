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
//   copy_tile<T, NT, CORE>(bytes, dst, ld, rows, cols, valid_cols, base, row_ptr): the same with channel
//     stride 1 and the scalar fallback one rolled loop; CORE places the tile in the core-matrix layout
//     (core_offset).
// Budget per call: rows * cols * sizeof(T) / bytes copy instructions spread over NT threads, one
// integer divide per copy (cols / element width is runtime).
// vec_bytes(): the widest copy the alignment of a row pitch / base pointer allows.
#pragma once

#include <cstdint>

#include "kernel_common.h"
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

// Element offset of (n, k) in a core-matrix B tile (BCORE): 8 x 8 blocks of 128 contiguous bytes
// ([n / 8][k / 8][n % 8][k % 8]), ldb = 8 x the tile's depth elements per 8-row group. An 8 x 8 block
// is one ldmatrix matrix (8 rows of 16 bytes in one 128-byte run: conflict-free) and one wgmma core
// matrix (stages/wg_gemm.cuh), so one loader (copy_tile<..., CORE>) feeds both GEMM paths.
__host__ __device__ __forceinline__ int core_offset(int n, int k, int ldb) {
  return (n >> 3) * ldb + (k >> 3) * 64 + (n & 7) * 8 + (k & 7);
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

// A [rows][cols] tile with channel stride 1, as copy_rows, but the synchronous fallback (channel
// counts or pointers not 4-byte aligned) is one rolled loop: it is the rare path, and inlined at every
// call site of a kernel the unrolled version was most of gconv's load instructions.
// CORE: dst is a core-matrix tile (core_offset with ld = 8 x the tile's depth), as the fp16/bf16 weight
// slabs of gconv and dwpw; every 16/8/4-byte run of a row stays contiguous there.
template <typename T, int NT, bool CORE = false, class RowPtr>
__device__ __forceinline__ void copy_tile(int bytes, T* dst, int ld, int rows, int cols, int valid, const T* base,
                                          RowPtr row_ptr) {
  auto at = [&](int r, int c) { return dst + (CORE ? core_offset(r, c, ld) : r * ld + c); };
  if (bytes == 16) copy_rows_async_at<T, 16, NT>(at, rows, cols, valid, base, row_ptr);
  else if (bytes == 8) copy_rows_async_at<T, 8, NT>(at, rows, cols, valid, base, row_ptr);
  else if (bytes == 4) copy_rows_async_at<T, 4, NT>(at, rows, cols, valid, base, row_ptr);
  else {
#pragma unroll 1
    for (int i = threadIdx.x; i < rows * cols; i += NT) {
      const int r = i / cols, c = i - r * cols;
      const T* src = row_ptr(r);
      *at(r, c) = src != nullptr && c < valid ? src[c] : from_float<T>(0.f);
    }
  }
}

}  // namespace stages
}  // namespace fastconv
