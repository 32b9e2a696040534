// The CPU kernel compiled for AVX2 + FMA + F16C: 8 float or 4 double lanes,
// 16 vector registers (so smaller tap blocks than AVX-512), vmaskmov loads
// for channel tails. Built with the flags of this file only (Makefile).
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

#include "cc/kernels/cpu/filter_grad.inc"

}  // namespace

void RunChunk(const Plan& plan, int64_t chunk, void* scratch) {
  RunChunkAnyType<F32, F64>(plan, chunk, scratch);
}

}  // namespace avx2
}  // namespace cpu
}  // namespace dwop
