// Portable helpers of the CPU drivers (cpu.cc: filter gradient, conv.cc:
// forward and input gradient), defined in cpu.cc. Not for the ISA units.
#ifndef DWOP_CC_KERNELS_CPU_DRIVER_H_
#define DWOP_CC_KERNELS_CPU_DRIVER_H_

#include <cstdint>
#include <vector>

#include "cc/kernels/common/float16.h"
#include "cc/kernels/common/params.h"
#include "cc/kernels/cpu/plan.h"

namespace dwop {
namespace cpu {

// The level DWOP_CPU_ISA asks for (read on every call), degraded to the best
// the CPU has, and its register budget.
Isa ActiveIsa();
const IsaInfo& InfoOf(Isa isa);

// x as int64, saturated (a work estimate may exceed int64's range).
int64_t SaturatingInt64(double x);

// The valid output range of each tap along one dimension: out positions o
// with 0 <= o*stride + k*dilation - pad < in_size.
std::vector<Range> ValidRanges(int64_t taps, int64_t in_size, int64_t out_size,
                               int64_t stride, int64_t dilation, int64_t pad);

// Thread-private scratch of at least `bytes`, 64-byte aligned, kept for the
// thread's lifetime (grown on demand); null when it cannot be allocated.
void* ThreadScratch(int64_t bytes);

// Calls f(T{}) with the storage type of `dtype`.
template <typename F>
void ForType(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kHalf:
      f(half_t{});
      break;
    case DType::kBfloat16:
      f(bfloat16_t{});
      break;
    case DType::kFloat:
      f(float{});
      break;
    case DType::kDouble:
      f(double{});
      break;
  }
}

}  // namespace cpu
}  // namespace dwop

#endif  // DWOP_CC_KERNELS_CPU_DRIVER_H_
