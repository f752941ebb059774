// Host stand-in for <cuda_runtime.h> used only by emu_test.cpp.
#pragma once
typedef void* cudaStream_t;
