// The fast CPU filter gradient.
#ifndef DWOP_CC_KERNELS_CPU_CPU_H_
#define DWOP_CC_KERNELS_CPU_CPU_H_

#include <cstdint>
#include <functional>
#include <memory>

#include "cc/kernels/common/params.h"
#include "cc/kernels/common/status.h"

namespace dwop {

// Runs fn(begin, end) over disjoint ranges covering [0, n), possibly
// concurrently; returns when all are done. cost_per_unit is a rough cycle count
// per unit that lets the pool pick a grain. The glue supplies it: TensorFlow's
// intra-op pool (cc/tf) or plain std::threads (cc/c_api).
using ParallelFor = std::function<void(
    int64_t n, int64_t cost_per_unit,
    const std::function<void(int64_t begin, int64_t end)>& fn)>;

// The instruction-set level the next CpuPlan picks: "avx512", "avx2" or
// "generic". The best the CPU supports, unless the environment variable
// DWOP_CPU_ISA (read on every call) names a level: a level the CPU lacks
// degrades to the best it has, an unknown value is ignored with a warning.
const char* CpuIsaName();

namespace cpu {
struct PlanStorage;
}  // namespace cpu

// How RunCpu computes one problem. The ISA level (DWOP_CPU_ISA) and the
// tiling (DWOP_CPU_PLAN) are resolved once, here, so the workspace the caller
// allocates is the one the kernel uses.
class CpuPlan {
 public:
  explicit CpuPlan(const FilterGradParams& params);
  ~CpuPlan();
  CpuPlan(const CpuPlan&) = delete;
  CpuPlan& operator=(const CpuPlan&) = delete;

  // Scratch RunCpu needs, in bytes; 0 is possible. Threads additionally keep
  // up to ~1 MB of staging memory of their own (cpu.cc: ThreadScratch).
  int64_t workspace_bytes() const;

 private:
  friend Status RunCpu(const FilterGradParams& params, const CpuPlan& plan,
                       void* workspace, const ParallelFor& parallel_for);
  std::unique_ptr<cpu::PlanStorage> storage_;  // null: nothing to sum
};

// Computes params.filter_backprop, writing every element (zeros when there is
// nothing to sum). `plan` was made from `params`; `workspace` holds
// plan.workspace_bytes() bytes, 64-byte aligned. The result is bitwise
// identical whatever the pool does: work is split in chunks that depend only
// on the geometry and reduced in a fixed order.
Status RunCpu(const FilterGradParams& params, const CpuPlan& plan,
              void* workspace, const ParallelFor& parallel_for);

}  // namespace dwop

#endif  // DWOP_CC_KERNELS_CPU_CPU_H_
