// The fast CPU forward and input gradient of a depthwise convolution: the
// siblings of the filter gradient (cpu.h), sharing its thread-pool contract
// (ParallelFor) and its ISA dispatch (DWOP_CPU_ISA).
#ifndef DWOP_CC_KERNELS_CPU_CONV_H_
#define DWOP_CC_KERNELS_CPU_CONV_H_

#include <cstdint>
#include <memory>

#include "cc/kernels/common/params.h"
#include "cc/kernels/common/status.h"
#include "cc/kernels/cpu/cpu.h"

namespace dwop {

namespace cpu {
struct ConvPlanStorage;
}  // namespace cpu

// How RunCpu computes one forward or input-gradient problem; like CpuPlan,
// the ISA level and tiling are resolved once, here, so the workspace the
// caller allocates is the one the kernel uses.
class CpuConvPlan {
 public:
  explicit CpuConvPlan(const ForwardParams& params);
  explicit CpuConvPlan(const InputGradParams& params);
  ~CpuConvPlan();
  CpuConvPlan(const CpuConvPlan&) = delete;
  CpuConvPlan& operator=(const CpuConvPlan&) = delete;

  // Scratch RunCpu needs, in bytes; 0 is possible.
  int64_t workspace_bytes() const;

 private:
  friend Status RunCpu(const ForwardParams& params, const CpuConvPlan& plan,
                       void* workspace, const ParallelFor& parallel_for);
  friend Status RunCpu(const InputGradParams& params, const CpuConvPlan& plan,
                       void* workspace, const ParallelFor& parallel_for);
  std::unique_ptr<cpu::ConvPlanStorage> storage_;  // null: nothing to sum
};

// Computes params.output (forward) or params.in_backprop (input gradient),
// writing every element (zeros when there is nothing to sum). `plan` was made
// from `params`; `workspace` holds plan.workspace_bytes() bytes, 64-byte
// aligned. Bitwise identical whatever the pool does: every output element is
// summed by one thread in an order fixed by the geometry.
Status RunCpu(const ForwardParams& params, const CpuConvPlan& plan,
              void* workspace, const ParallelFor& parallel_for);
Status RunCpu(const InputGradParams& params, const CpuConvPlan& plan,
              void* workspace, const ParallelFor& parallel_for);

}  // namespace dwop

#endif  // DWOP_CC_KERNELS_CPU_CONV_H_
