// The CPU forward and input gradient (conv.inc) compiled for
// AVX2 + FMA + F16C: 8 float or 4 double lanes.
// Built with this file's flags only (Makefile); runs only where isa.cc found
// the ISA.
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cc/kernels/cpu/conv_plan.h"
#include "cc/kernels/cpu/plan.h"

namespace dwop {
namespace cpu {
namespace avx2 {
namespace {

// This level's SIMD traits, then the kernel bodies built on them.
#include "cc/kernels/cpu/simd.inc"
#include "cc/kernels/cpu/simd_avx2.inc"
// The forward and input-gradient kernels.
#include "cc/kernels/cpu/conv.inc"

}  // namespace

void RunConvChunk(const ConvPlan& plan, int64_t chunk, void* scratch) {
  RunConvChunkAnyType(plan, chunk, scratch);
}

}  // namespace avx2
}  // namespace cpu
}  // namespace dwop
