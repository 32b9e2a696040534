// The CPU kernel in portable C++: GCC/Clang vector extensions of 16 bytes
// (4 floats or 2 doubles), which the compiler maps to the baseline ISA (SSE2
// on x86-64) or to plain scalar code. The fallback for CPUs without AVX2 and
// the reference point of DWOP_CPU_ISA=generic.
#include <cstdint>
#include <cstring>

#include "cc/kernels/cpu/plan.h"
#include "cc/kernels/common/float16.h"

namespace dwop {
namespace cpu {
namespace generic {
namespace {

#include "cc/kernels/cpu/simd.inc"
#include "cc/kernels/cpu/simd_generic.inc"

#include "cc/kernels/cpu/filter_grad.inc"

}  // namespace

void RunChunk(const Plan& plan, int64_t chunk, void* scratch) {
  RunChunkAnyType<F32, F64>(plan, chunk, scratch);
}

}  // namespace generic
}  // namespace cpu
}  // namespace dwop
