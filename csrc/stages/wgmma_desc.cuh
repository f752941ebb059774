// The wgmma shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor Format"), plain C++ shared by
// stages/wgmma.cuh and its emulator twin (which decodes the same bits independently, from the spec).
//   bits  0-13  start address >> 4  (the 18-bit shared-window address of the first core matrix)
//   bits 16-29  leading-dimension byte offset >> 4 (LBO; K-major, no swizzle: the distance between
//               core matrices adjacent in K)
//   bits 32-45  stride-dimension byte offset >> 4 (SBO; K-major: between core matrices adjacent in N/M)
//   bits 49-51  base offset (0: no swizzle)      bits 62-63  swizzle mode (0: none / interleave)
// A core matrix is 8 rows x 16 bytes (8 fp16/bf16 along K), 128 contiguous bytes, row r at +16 r.
#pragma once

#include <cassert>
#include <cstdint>

namespace fastconv {
namespace stages {

__host__ __device__ __forceinline__ uint64_t wgmma_desc(uint32_t saddr, uint32_t lbo_bytes, uint32_t sbo_bytes) {
#ifdef FASTCONV_HOST_EMU  // (the emulator: the fields must be representable)
  assert(saddr % 16 == 0 && saddr < (1u << 18) && lbo_bytes % 16 == 0 && sbo_bytes % 16 == 0 &&
         lbo_bytes < (1u << 18) && sbo_bytes < (1u << 18) && "wgmma descriptor field not representable");
#endif
  return uint64_t((saddr & 0x3FFFFu) >> 4) | (uint64_t((lbo_bytes >> 4) & 0x3FFFu) << 16) |
         (uint64_t((sbo_bytes >> 4) & 0x3FFFu) << 32);
}

}  // namespace stages
}  // namespace fastconv
