// Portable helpers of the CPU drivers (cpu.cc: filter gradient, conv.cc:
// forward and input gradient) and the filter-gradient planner, defined in
// plan.cc and cpu.cc. Not for the ISA units.
#ifndef DWOP_CC_KERNELS_CPU_DRIVER_H_
#define DWOP_CC_KERNELS_CPU_DRIVER_H_

#include <cstdint>
#include <vector>

#include "cc/kernels/common/float16.h"
#include "cc/kernels/common/params.h"
#include "cc/kernels/cpu/isa.h"
#include "cc/kernels/cpu/plan.h"

namespace dwop {
namespace cpu {

// A filter-gradient Plan and the tables it points into; CpuPlan owns one.
struct PlanStorage {
  Isa isa;
  Plan plan;
  std::vector<Range> row_valid, col_valid, row_blocks, col_blocks;
  std::vector<TapRun> col_runs;
  std::vector<int64_t> col_run_first;
};

// Fills s->plan (all but the buffers) and its tables. Depends on the
// geometry, the dtype, the ISA level and DWOP_CPU_PLAN (read here) only.
void MakePlan(const Geometry& g, DType dtype, Isa isa, PlanStorage* s);

// Bytes of the plan's partial gradients: CpuPlan's workspace.
int64_t PartialBytes(const Plan& p);

// x as int64, saturated (a work estimate may exceed int64's range).
int64_t SaturatingInt64(double x);

// The valid output range of each tap along one dimension: out positions o
// with 0 <= o*stride + k*dilation - pad < in_size.
std::vector<Range> ValidRanges(int64_t taps, int64_t in_size, int64_t out_size,
                               int64_t stride, int64_t dilation, int64_t pad);

// Thread-private scratch of at least `bytes`, kScratchAlign-byte aligned, kept
// for the thread's lifetime (grown on demand); null when it cannot be
// allocated.
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
