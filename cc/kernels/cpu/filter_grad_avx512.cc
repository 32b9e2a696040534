// The CPU filter-gradient kernel compiled for AVX-512 (F, BW, VL, DQ): 16 float
// or 8 double lanes, 32 vector registers, masked loads for channel tails,
// vcvtph2ps for half and a zero-extend-and-shift for bfloat16. Built with the
// flags of this file only (Makefile); runs only where isa.cc found the ISA. GCC
// 12 warns inside its own AVX-512 headers wherever the masked and conversion
// intrinsics inline (the self-initialised _mm512_undefined_*, GCC bug 105593);
// the warning says nothing about this file.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "cc/kernels/cpu/plan.h"

namespace dwop {
namespace cpu {
namespace avx512 {
namespace {

#include "cc/kernels/cpu/simd.inc"
#include "cc/kernels/cpu/simd_avx512.inc"

// The kernel, in three parts that build on each other (in this order):
// the micro-kernels,
#include "cc/kernels/cpu/filter_grad_sweeps.inc"
// the staging of the source tensors,
#include "cc/kernels/cpu/filter_grad_staging.inc"
// the drivers of a chunk.
#include "cc/kernels/cpu/filter_grad_drivers.inc"

}  // namespace

void RunChunk(const Plan& plan, int64_t chunk, void* scratch) {
  RunChunkAnyType<F32, F64>(plan, chunk, scratch);
}

}  // namespace avx512
}  // namespace cpu
}  // namespace dwop
