#include "cc/kernels/cuda/conv_plan.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

#include "cc/kernels/common/geometry.h"

namespace dwop {
namespace {

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
// Single dimensions stay below this (as in plan.cc).
constexpr int64_t kDimLimit = int64_t{1} << 30;

Status TooLarge(const std::string& what, int64_t value, int64_t limit) {
  return Status::InvalidArgument("the CUDA kernels index " + what +
                                 " with 32-bit integers, but it is " +
                                 std::to_string(value) + " (at most " +
                                 std::to_string(limit) + " is supported)");
}

// Every index conv_kernels.h forms in 32-bit arithmetic stays in range:
// single dimensions, and input rows/columns of any tap of any output
// position (oh * stride + kh * dilation - pad and the input gradient's
// ih + pad - kh * dilation), including the forward NHWC thread's run of
// kForwardMaxCols columns past the last one. Element offsets and work items
// are 64-bit.
Status CheckConvRanges(const Geometry& g) {
  const struct {
    const char* name;
    int64_t value;
  } dims[] = {
      {"batch", g.batch},
      {"in_rows", g.in_rows},
      {"in_cols", g.in_cols},
      {"in_depth", g.in_depth},
      {"depth_multiplier", g.depth_multiplier},
      {"out_depth", g.out_depth()},
      {"filter_rows", g.filter_rows},
      {"filter_cols", g.filter_cols},
      {"out_rows", g.out_rows},
      {"out_cols", g.out_cols},
      {"stride_rows", g.stride_rows},
      {"stride_cols", g.stride_cols},
      {"dilation_rows", g.dilation_rows},
      {"dilation_cols", g.dilation_cols},
      {"pad_top", g.pad_top},
      {"pad_left", g.pad_left},
  };
  for (const auto& d : dims) {
    if (d.value > kDimLimit) return TooLarge(d.name, d.value, kDimLimit);
  }
  const int64_t row_extent = (g.out_rows + 1) * g.stride_rows +
                             (g.filter_rows + 1) * g.dilation_rows + g.pad_top +
                             g.in_rows;
  const int64_t col_extent = (g.out_cols + kForwardMaxCols) * g.stride_cols +
                             (g.filter_cols + 1) * g.dilation_cols +
                             g.pad_left + g.in_cols;
  if (row_extent > kInt32Max) {
    return TooLarge("the span of input rows", row_extent, kInt32Max);
  }
  if (col_extent > kInt32Max) {
    return TooLarge("the span of input columns", col_extent, kInt32Max);
  }
  return Status::Ok();
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
    return TooLarge("the grid size", plan->blocks, kInt32Max);
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
