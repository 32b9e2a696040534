// The CPU forward and input gradient (conv.inc) compiled for
// portable C++ (GCC/Clang vector extensions of 16 bytes).
// Built with this file's flags only (Makefile); runs only where isa.cc found
// the ISA.
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cc/kernels/common/float16.h"
#include "cc/kernels/cpu/conv_plan.h"
#include "cc/kernels/cpu/plan.h"

namespace dwop {
namespace cpu {
namespace generic {
namespace {

// This level's SIMD traits, then the kernel bodies built on them.
#include "cc/kernels/cpu/simd.inc"
#include "cc/kernels/cpu/simd_generic.inc"
// The forward and input-gradient kernels.
#include "cc/kernels/cpu/conv.inc"

}  // namespace

void RunConvChunk(const ConvPlan& plan, int64_t chunk, void* scratch) {
  RunConvChunkAnyType(plan, chunk, scratch);
}

}  // namespace generic
}  // namespace cpu
}  // namespace dwop
