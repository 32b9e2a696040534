#include <cstdint>
#include <string>

#include "cc/c_api/dwop_c.h"
#include "cc/c_api/internal.h"
#include "cc/kernels/common/geometry.h"
#include "cc/kernels/cpu/conv.h"
#include "cc/kernels/cpu/cpu.h"
#include "cc/kernels/cuda/cuda.h"

// The CUDA entry points of the C ABI (dwop_c.h): planning, the CUDA
// kernels and their host emulation.

namespace dwop {
namespace {

// ---- CUDA.

#ifdef DWOP_WITH_CUDA
constexpr bool kCudaBuilt = true;
#else
constexpr bool kCudaBuilt = false;
#endif

const char kBuiltWithoutCuda[] =
    "this dwop library was built without CUDA (nvcc was not found, or "
    "DWOP_CUDA=0); rebuild it with nvcc on the PATH";

// The current CUDA device's properties, or kUnavailable with the reason.
Status CurrentCudaDevice(CudaDevice* device) {
#ifdef DWOP_WITH_CUDA
  std::string why;
  if (CudaDeviceCount(&why) == 0) {
    return Status::Unavailable("no usable CUDA device: " + why);
  }
  return QueryCudaDevice(device);
#else
  (void)device;
  return Status::Unavailable(kBuiltWithoutCuda);
#endif
}

// The device to plan for: the given properties, or the current device's.
Status PlanningDevice(int32_t sm_count, int64_t shared_memory_per_block,
                      CudaDevice* device) {
  if (sm_count <= 0) return CurrentCudaDevice(device);
  device->sm_count = sm_count;
  if (shared_memory_per_block > 0) {
    device->shared_memory_per_block = shared_memory_per_block;
  }
  return Status::Ok();
}

// The CUDA plan of `params` for a device with the given properties (the
// current device's where sm_count <= 0).
Status PlanFor(const FilterGradParams& params, int32_t path, int32_t sm_count,
               int64_t shared_memory_per_block, CudaPlan* plan) {
  CudaDevice device;
  DWOP_RETURN_IF_ERROR(
      PlanningDevice(sm_count, shared_memory_per_block, &device));
  return PlanCuda(params, device, static_cast<CudaPath>(path), plan);
}

dwop_cuda_plan ToC(const CudaPlan& p) {
  dwop_cuda_plan c;
  c.kernel = static_cast<int32_t>(p.kernel);
  c.tap_rows = p.tap_rows;
  c.tap_cols = p.tap_cols;
  c.vector = p.vector;
  c.threads = p.threads;
  c.lanes_x = p.lanes_x;
  c.lanes_y = p.lanes_y;
  c.col_segments = p.col_segments;
  c.segment_cols = p.segment_cols;
  c.chunk_cols = p.chunk_cols;
  c.chunks = p.chunks;
  c.bands = p.bands;
  c.x_rows = p.x_rows;
  c.x_pitch = p.x_pitch;
  c.channel_blocks = p.channel_blocks;
  c.tap_groups_h = p.tap_groups_h;
  c.tap_groups_w = p.tap_groups_w;
  c.splits = p.splits;
  c.work_total = p.work_total;
  c.work_per_split = p.work_per_split;
  c.blocks = p.blocks;
  c.smem_bytes = p.smem_bytes;
  c.workspace_bytes = p.workspace_bytes;
  c.finalize_blocks = p.finalize_blocks;
  return c;
}

Status FilterGradCuda(const dwop_problem* problem, const void* input,
                      const void* out_backprop, void* filter_backprop,
                      int32_t path, void* workspace, int64_t workspace_bytes,
                      void* cuda_stream) {
  FilterGradParams params;
  DWOP_RETURN_IF_ERROR(
      MakeParams(problem, input, out_backprop, filter_backprop, &params));
#ifdef DWOP_WITH_CUDA
  CudaPlan plan;
  DWOP_RETURN_IF_ERROR(PlanFor(params, path, 0, 0, &plan));
  void* owned = nullptr;
  if (plan.workspace_bytes > 0) {
    if (workspace == nullptr) {
      DWOP_RETURN_IF_ERROR(
          CudaAllocAsync(plan.workspace_bytes, cuda_stream, &owned));
      workspace = owned;
    } else if (workspace_bytes < plan.workspace_bytes) {
      return Status::InvalidArgument(
          "workspace_bytes " + std::to_string(workspace_bytes) +
          " is less than the " + std::to_string(plan.workspace_bytes) +
          " bytes the plan needs");
    }
  }
  const Status status = RunCuda(params, plan, workspace, cuda_stream);
  const Status freed = CudaFreeAsync(owned, cuda_stream);
  return status.ok() ? freed : status;
#else
  (void)path, (void)workspace, (void)workspace_bytes, (void)cuda_stream;
  return Status::Unavailable(kBuiltWithoutCuda);
#endif
}

// ---- CUDA forward and input gradient.

// The conv plan of `params` for a device with sm_count SMs (<= 0: the
// current device's).
template <typename Params>
Status PlanConvFor(const Params& params, int32_t sm_count, CudaConvPlan* plan) {
  CudaDevice device;
  DWOP_RETURN_IF_ERROR(PlanningDevice(sm_count, 0, &device));
  return PlanCuda(params, device, plan);
}

dwop_cuda_conv_plan ToC(const CudaConvPlan& p) {
  dwop_cuda_conv_plan c;
  c.kernel = static_cast<int32_t>(p.kernel);
  c.threads = p.threads;
  c.cols_per_thread = p.cols_per_thread;
  c.items = p.items;
  c.col_runs = p.col_runs;
  c.blocks = p.blocks;
  c.output_elements = p.output_elements;
  c.output_bytes = p.output_bytes;
  return c;
}

// dwop_forward_cuda / dwop_input_grad_cuda: validated, planned for the
// current device, run on the stream.
template <typename Params, typename A, typename B, typename Out>
dwop_status ConvCudaEntry(const dwop_problem* problem, A a, B b, Out out,
                          void* cuda_stream, char* error, size_t error_size) {
  const Status status = Guarded([&] {
    Params params;
    DWOP_RETURN_IF_ERROR(MakeParams(problem, a, b, out, &params));
#ifdef DWOP_WITH_CUDA
    CudaConvPlan plan;
    DWOP_RETURN_IF_ERROR(PlanConvFor(params, 0, &plan));
    return RunCuda(params, plan, cuda_stream);
#else
    (void)cuda_stream;
    return Status::Unavailable(kBuiltWithoutCuda);
#endif
  });
  return Report(status, error, error_size);
}

// The *_cuda_emulated entry points: the same plan, run on the host.
template <typename Params, typename A, typename B, typename Out>
dwop_status ConvEmulatedEntry(const dwop_problem* problem, A a, B b, Out out,
                              int32_t sm_count, char* error,
                              size_t error_size) {
  const Status status = Guarded([&] {
    Params params;
    DWOP_RETURN_IF_ERROR(MakeParams(problem, a, b, out, &params));
    CudaConvPlan plan;
    DWOP_RETURN_IF_ERROR(PlanConvFor(params, sm_count, &plan));
    return EmulateCuda(params, plan);
  });
  return Report(status, error, error_size);
}

}  // namespace
}  // namespace dwop

extern "C" {

int32_t dwop_cuda_built(void) { return dwop::kCudaBuilt ? 1 : 0; }

int32_t dwop_cuda_device_count(char* error, size_t error_size) {
#ifdef DWOP_WITH_CUDA
  std::string why;
  const int count = dwop::CudaDeviceCount(&why);
  if (count == 0)
    dwop::Report(dwop::Status::Unavailable(why), error, error_size);
  return count;
#else
  dwop::Report(dwop::Status::Unavailable(dwop::kBuiltWithoutCuda), error,
               error_size);
  return 0;
#endif
}

dwop_status dwop_cuda_plan_problem(const dwop_problem* problem, int32_t path,
                                   int32_t sm_count,
                                   int64_t shared_memory_per_block,
                                   dwop_cuda_plan* plan, char* error,
                                   size_t error_size) {
  const dwop::Status status = dwop::Guarded([&] {
    dwop::FilterGradParams params;
    DWOP_RETURN_IF_ERROR(dwop::Resolve(problem, dwop::OpKind::kFilterGrad,
                                       &params.geo, &params.dtype));
    if (plan == nullptr) return dwop::Status::InvalidArgument("plan is NULL");
    dwop::CudaPlan cuda_plan;
    DWOP_RETURN_IF_ERROR(dwop::PlanFor(params, path, sm_count,
                                       shared_memory_per_block, &cuda_plan));
    *plan = dwop::ToC(cuda_plan);
    return dwop::Status::Ok();
  });
  return dwop::Report(status, error, error_size);
}

dwop_status dwop_filter_grad_cuda(const dwop_problem* problem,
                                  const void* input, const void* out_backprop,
                                  void* filter_backprop, void* cuda_stream,
                                  char* error, size_t error_size) {
  return dwop_filter_grad_cuda_ex(problem, input, out_backprop, filter_backprop,
                                  DWOP_CUDA_AUTO, nullptr, 0, cuda_stream,
                                  error, error_size);
}

dwop_status dwop_filter_grad_cuda_ex(const dwop_problem* problem,
                                     const void* input,
                                     const void* out_backprop,
                                     void* filter_backprop, int32_t path,
                                     void* workspace, int64_t workspace_bytes,
                                     void* cuda_stream, char* error,
                                     size_t error_size) {
  return dwop::Report(dwop::Guarded([&] {
                        return dwop::FilterGradCuda(
                            problem, input, out_backprop, filter_backprop, path,
                            workspace, workspace_bytes, cuda_stream);
                      }),
                      error, error_size);
}

dwop_status dwop_filter_grad_cuda_emulated(
    const dwop_problem* problem, const void* input, const void* out_backprop,
    void* filter_backprop, int32_t path, int32_t sm_count,
    int64_t shared_memory_per_block, char* error, size_t error_size) {
  const dwop::Status status = dwop::Guarded([&] {
    dwop::FilterGradParams params;
    DWOP_RETURN_IF_ERROR(dwop::MakeParams(problem, input, out_backprop,
                                          filter_backprop, &params));
    dwop::CudaPlan plan;
    DWOP_RETURN_IF_ERROR(
        dwop::PlanFor(params, path, sm_count, shared_memory_per_block, &plan));
    return dwop::EmulateCuda(params, plan);
  });
  return dwop::Report(status, error, error_size);
}

// ---- CUDA forward and input gradient.

dwop_status dwop_cuda_conv_plan_problem(const dwop_problem* problem, int32_t op,
                                        int32_t sm_count,
                                        dwop_cuda_conv_plan* plan, char* error,
                                        size_t error_size) {
  const dwop::Status status = dwop::Guarded([&] {
    if (plan == nullptr) return dwop::Status::InvalidArgument("plan is NULL");
    dwop::CudaConvPlan cuda_plan;
    if (op == DWOP_CONV_FORWARD) {
      dwop::ForwardParams params;
      DWOP_RETURN_IF_ERROR(dwop::Resolve(problem, dwop::OpKind::kForward,
                                         &params.geo, &params.dtype));
      DWOP_RETURN_IF_ERROR(dwop::PlanConvFor(params, sm_count, &cuda_plan));
    } else if (op == DWOP_CONV_INPUT_GRAD) {
      dwop::InputGradParams params;
      DWOP_RETURN_IF_ERROR(dwop::Resolve(problem, dwop::OpKind::kInputGrad,
                                         &params.geo, &params.dtype));
      DWOP_RETURN_IF_ERROR(dwop::PlanConvFor(params, sm_count, &cuda_plan));
    } else {
      return dwop::Status::InvalidArgument("op " + std::to_string(op) +
                                           " is not a dwop_conv_op");
    }
    *plan = dwop::ToC(cuda_plan);
    return dwop::Status::Ok();
  });
  return dwop::Report(status, error, error_size);
}

dwop_status dwop_forward_cuda(const dwop_problem* problem, const void* input,
                              const void* filter, void* output,
                              void* cuda_stream, char* error,
                              size_t error_size) {
  return dwop::ConvCudaEntry<dwop::ForwardParams>(
      problem, input, filter, output, cuda_stream, error, error_size);
}

dwop_status dwop_input_grad_cuda(const dwop_problem* problem,
                                 const void* filter, const void* out_backprop,
                                 void* in_backprop, void* cuda_stream,
                                 char* error, size_t error_size) {
  return dwop::ConvCudaEntry<dwop::InputGradParams>(
      problem, filter, out_backprop, in_backprop, cuda_stream, error,
      error_size);
}

dwop_status dwop_forward_cuda_emulated(const dwop_problem* problem,
                                       const void* input, const void* filter,
                                       void* output, int32_t sm_count,
                                       char* error, size_t error_size) {
  return dwop::ConvEmulatedEntry<dwop::ForwardParams>(
      problem, input, filter, output, sm_count, error, error_size);
}

dwop_status dwop_input_grad_cuda_emulated(const dwop_problem* problem,
                                          const void* filter,
                                          const void* out_backprop,
                                          void* in_backprop, int32_t sm_count,
                                          char* error, size_t error_size) {
  return dwop::ConvEmulatedEntry<dwop::InputGradParams>(
      problem, filter, out_backprop, in_backprop, sm_count, error, error_size);
}

}  // extern "C"
