// The CPU forward and input gradient (conv.inc) compiled for
// AVX-512 (F, BW, VL, DQ): 16 float or 8 double lanes.
// Built with this file's flags only (Makefile); runs only where isa.cc found
// the ISA.
// GCC 12 warns inside its own AVX-512 headers (GCC bug 105593; see
// filter_grad_avx512.cc).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cc/kernels/cpu/conv_plan.h"
#include "cc/kernels/cpu/plan.h"

namespace dwop {
namespace cpu {
namespace avx512 {
namespace {

// This level's SIMD traits, then the kernel bodies built on them.
#include "cc/kernels/cpu/simd.inc"
#include "cc/kernels/cpu/simd_avx512.inc"
// The forward and input-gradient kernels.
#include "cc/kernels/cpu/conv.inc"

}  // namespace

void RunConvChunk(const ConvPlan& plan, int64_t chunk, void* scratch) {
  RunConvChunkAnyType(plan, chunk, scratch);
}

}  // namespace avx512
}  // namespace cpu
}  // namespace dwop
