#include "cc/kernels/cuda/conv_plan.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

#include "cc/kernels/common/geometry.h"

namespace dwop {
namespace {

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();

// Every index conv_kernels.h forms in 32-bit arithmetic stays in range:
// single dimensions, and input rows/columns of any tap of any output
// position (oh * stride + kh * dilation - pad and the input gradient's
// ih + pad - kh * dilation), including the forward NHWC thread's run of
// kForwardMaxCols columns past the last one. Element offsets and work items
// are 64-bit.
Status CheckConvRanges(const Geometry& g) {
  return CheckCudaSpans(g, 1, kForwardMaxCols, 1, 1);
}

Status CheckDevice(const CudaDevice& device) {
  if (device.sm_count < 1) {
    return Status::InvalidArgument("CudaDevice needs sm_count >= 1, got " +
                                   std::to_string(device.sm_count));
  }
  return Status::Ok();
}

// The common part: nothing/zero cases, ranges, grid.
Status PlanGather(const Geometry& g, DType dtype, int64_t output_elements,
                  CudaConvKernel kernel, int32_t cols_per_thread,
                  CudaConvPlan* plan) {
  *plan = CudaConvPlan();
  plan->output_elements = output_elements;
  plan->output_bytes = output_elements * DTypeSize(dtype);
  if (output_elements == 0) return Status::Ok();  // kNothing
  if (NothingToSum(g)) {
    plan->kernel = CudaConvKernel::kZero;
    return Status::Ok();
  }
  DWOP_RETURN_IF_ERROR(CheckConvRanges(g));
  plan->kernel = kernel;
  plan->threads = kConvThreads;
  plan->cols_per_thread = cols_per_thread;
  if (kernel == CudaConvKernel::kForwardNhwc) {
    plan->col_runs = CeilDiv(g.out_cols, cols_per_thread);
    plan->items = g.batch * g.out_rows * plan->col_runs * g.out_depth();
  } else if (kernel == CudaConvKernel::kInputGradNhwc) {
    plan->col_runs = CeilDiv(g.in_cols, cols_per_thread);
    plan->items = g.batch * g.in_rows * plan->col_runs * g.in_depth;
  } else {
    plan->col_runs = 0;
    plan->items = output_elements;
  }
  plan->blocks = CeilDiv(plan->items, plan->threads);
  if (plan->blocks > kInt32Max) {
    return CudaTooLarge("the grid size", plan->blocks, kInt32Max);
  }
  return Status::Ok();
}

}  // namespace

Status PlanCuda(const ForwardParams& params, const CudaDevice& device,
                CudaConvPlan* plan) {
  DWOP_RETURN_IF_ERROR(CheckDevice(device));
  const Geometry& g = params.geo;
  const bool nhwc = g.layout == Layout::kNHWC;
  const int32_t cols =
      nhwc ? static_cast<int32_t>(std::min<int64_t>(
                 kForwardMaxCols, std::max<int64_t>(1, g.out_cols)))
           : 1;
  return PlanGather(
      g, params.dtype, g.out_backprop_elements(),
      nhwc ? CudaConvKernel::kForwardNhwc : CudaConvKernel::kForwardNchw, cols,
      plan);
}

Status PlanCuda(const InputGradParams& params, const CudaDevice& device,
                CudaConvPlan* plan) {
  DWOP_RETURN_IF_ERROR(CheckDevice(device));
  const Geometry& g = params.geo;
  const bool nhwc = g.layout == Layout::kNHWC;
  // Runs of input columns share filter loads when they read consecutive
  // output columns (unit column stride).
  const int32_t cols =
      nhwc && g.stride_cols == 1
          ? static_cast<int32_t>(std::min<int64_t>(
                kForwardMaxCols, std::max<int64_t>(1, g.in_cols)))
          : 1;
  return PlanGather(
      g, params.dtype, g.input_elements(),
      nhwc ? CudaConvKernel::kInputGradNhwc : CudaConvKernel::kInputGradNchw,
      cols, plan);
}

}  // namespace dwop
