// The CPU filter-gradient kernel in portable C++: GCC/Clang vector extensions
// of 16 bytes (4 floats or 2 doubles), which the compiler maps to the baseline
// ISA (SSE2 on x86-64) or to plain scalar code. The fallback for CPUs without
// AVX2 and the reference point of DWOP_CPU_ISA=generic.
#include <cstdint>
#include <cstring>

#include "cc/kernels/common/float16.h"
#include "cc/kernels/cpu/plan.h"

namespace dwop {
namespace cpu {
namespace generic {
namespace {

#include "cc/kernels/cpu/simd.inc"
#include "cc/kernels/cpu/simd_generic.inc"

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

}  // namespace generic
}  // namespace cpu
}  // namespace dwop
