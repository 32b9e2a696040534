// The CPU filter-gradient kernel compiled for AVX2 + FMA + F16C: 8 float or
// 4 double lanes, 16 vector registers (so smaller tap blocks than AVX-512),
// vmaskmov loads for channel tails. Built with the flags of this file only
// (Makefile).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "cc/kernels/cpu/plan.h"

namespace dwop {
namespace cpu {
namespace avx2 {
namespace {

#include "cc/kernels/cpu/simd.inc"
#include "cc/kernels/cpu/simd_avx2.inc"

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

}  // namespace avx2
}  // namespace cpu
}  // namespace dwop
