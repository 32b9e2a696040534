// The CPU forward and input gradient (conv.inc) compiled for
// portable C++ (GCC/Clang vector extensions of 16 bytes).
// Built with this file's flags only (Makefile); runs only where cpu.cc found
// the ISA.
#include <cstdint>
#include <cstring>

#include "cc/kernels/cpu/conv_plan.h"
#include "cc/kernels/cpu/plan.h"
#include "cc/kernels/common/float16.h"

namespace dwop {
namespace cpu {
namespace generic {
namespace {

#include "cc/kernels/cpu/simd.inc"
#include "cc/kernels/cpu/simd_generic.inc"

#include "cc/kernels/cpu/conv.inc"

}  // namespace

void RunConvChunk(const ConvPlan& plan, int64_t chunk, void* scratch) {
  RunConvChunkAnyType(plan, chunk, scratch);
}

}  // namespace generic
}  // namespace cpu
}  // namespace dwop
