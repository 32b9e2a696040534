// Launch planning for the CUDA forward and input gradient (conv_kernels.h).
// Plain host C++ like plan.h: the launchers (*.cu.cc) and the emulator
// (emulator.cc) run the same plan, and tests check it without a GPU.
//
// Both ops are gathers: each output element (of the forward's output, of the
// input gradient's in_backprop) is summed by exactly one thread in a fixed
// order, so there are no atomics, no workspace, and the result is bitwise
// identical from run to run on any GPU (the plan depends only on the
// geometry: a device with another SM count runs the same arithmetic).
#ifndef DWOP_CC_KERNELS_CUDA_CONV_PLAN_H_
#define DWOP_CC_KERNELS_CUDA_CONV_PLAN_H_

#include <cstdint>

#include "cc/kernels/common/params.h"
#include "cc/kernels/common/status.h"
#include "cc/kernels/cuda/plan.h"

namespace dwop {

enum class CudaConvKernel : int32_t {
  kNothing = 0,        // the op's result has no elements
  kZero = 1,           // nothing to sum (NothingToSum): a memset of zeros
  kForwardNhwc = 2,    // lanes over output channels, a run of columns each
  kForwardNchw = 3,    // lanes over output columns, one element each
  kInputGradNhwc = 4,  // lanes over input channels, a run of columns each
  kInputGradNchw = 5,  // lanes over input columns, one element each
};

// Threads per block of the conv kernels.
constexpr int32_t kConvThreads = 256;
// The most columns (output columns of the forward, input columns of the
// input gradient) one NHWC thread computes (its accumulators are an array of
// this size, in registers).
constexpr int32_t kForwardMaxCols = 4;

struct CudaConvPlan {
  CudaConvKernel kernel = CudaConvKernel::kNothing;
  int32_t threads = 0;          // per block
  int32_t cols_per_thread = 0;  // result columns per thread (NHWC)
  // Work items, one per thread: result elements (NCHW), or for NHWC
  // (column run, channel) pairs. item = block * threads + thread; threads
  // with item >= items do nothing.
  int64_t items = 0;
  // NHWC: ceil(result columns / cols_per_thread); 0 for NCHW.
  int64_t col_runs = 0;
  int64_t blocks = 0;
  // Elements of the op's result (output or in_backprop), all written.
  int64_t output_elements = 0;
  int64_t output_bytes = 0;
};

// Plans `params` (only the geometry and dtype matter) on `device`.
// kInvalidArgument when a dimension exceeds what the kernels index with
// 32-bit integers (element offsets are 64-bit; single dimensions and the
// spans of rows and columns the taps reach must stay below 2^30 / 2^31).
Status PlanCuda(const ForwardParams& params, const CudaDevice& device,
                CudaConvPlan* plan);
Status PlanCuda(const InputGradParams& params, const CudaDevice& device,
                CudaConvPlan* plan);

}  // namespace dwop

#endif  // DWOP_CC_KERNELS_CUDA_CONV_PLAN_H_
