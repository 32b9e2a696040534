// The OpKernel: attributes are parsed in the constructor, shapes validated in
// Compute (both by cc/kernels/common/geometry.h, shared with every device), then a
// device launcher runs the framework-free kernel.
#include <cstdint>
#include <vector>

#include "cc/kernels/cpu/cpu.h"
#include "cc/kernels/common/geometry.h"
#include "cc/kernels/common/params.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/register_types.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/framework/types.h"
#include "tensorflow/core/platform/threadpool.h"

#if GOOGLE_CUDA
#include <algorithm>

#include "cc/kernels/cuda/cuda.h"
#include "xla/stream_executor/device_description.h"
#include "xla/stream_executor/stream.h"
#include "xla/stream_executor/stream_executor.h"
#endif  // GOOGLE_CUDA

namespace tensorflow {
namespace dwop {

using CPUDevice = Eigen::ThreadPoolDevice;

absl::Status ToTf(const ::dwop::Status& status) {
  switch (status.code()) {
    case ::dwop::Status::kOk:
      return absl::OkStatus();
    case ::dwop::Status::kInvalidArgument:
      return absl::InvalidArgumentError(status.message());
    case ::dwop::Status::kResourceExhausted:
      return absl::ResourceExhaustedError(status.message());
    case ::dwop::Status::kInternal:
      return absl::InternalError(status.message());
    case ::dwop::Status::kUnavailable:
      return absl::UnavailableError(status.message());
  }
  return absl::InternalError(status.message());
}

template <typename T>
constexpr ::dwop::DType DTypeOf();
template <>
constexpr ::dwop::DType DTypeOf<Eigen::half>() { return ::dwop::DType::kHalf; }
template <>
constexpr ::dwop::DType DTypeOf<bfloat16>() { return ::dwop::DType::kBfloat16; }
template <>
constexpr ::dwop::DType DTypeOf<float>() { return ::dwop::DType::kFloat; }
template <>
constexpr ::dwop::DType DTypeOf<double>() { return ::dwop::DType::kDouble; }

// Checks a kernel's workspace request and allocates it from TensorFlow's
// allocator for the op's device; *data is null when no bytes are needed.
absl::Status AllocateWorkspace(OpKernelContext* ctx,
                               const ::dwop::Geometry& geo, int64_t bytes,
                               Tensor* workspace, void** data) {
  TF_RETURN_IF_ERROR(ToTf(::dwop::CheckWorkspaceBytes(geo, bytes)));
  *data = nullptr;
  if (bytes > 0) {
    TF_RETURN_IF_ERROR(
        ctx->allocate_temp(DT_INT8, TensorShape({bytes}), workspace));
    *data = workspace->flat<int8_t>().data();
  }
  return absl::OkStatus();
}

// Runs the kernel of one device on validated params. Specialised per device.
template <typename Device>
struct Launcher;

template <>
struct Launcher<CPUDevice> {
  static absl::Status Run(OpKernelContext* ctx,
                          const ::dwop::FilterGradParams& params) {
    // Empty problems get zeros here; no kernel sees their huge dimensions.
    if (::dwop::WriteZerosIfNothingToSum(params)) return absl::OkStatus();
    const ::dwop::CpuPlan plan(params);
    Tensor workspace;
    void* workspace_data;
    TF_RETURN_IF_ERROR(AllocateWorkspace(ctx, params.geo,
                                         plan.workspace_bytes(), &workspace,
                                         &workspace_data));
    thread::ThreadPool* pool =
        ctx->device()->tensorflow_cpu_worker_threads()->workers;
    const ::dwop::ParallelFor parallel_for =
        [pool](int64_t n, int64_t cost,
               const std::function<void(int64_t, int64_t)>& fn) {
          pool->ParallelFor(
              n, thread::ThreadPool::SchedulingParams::Adaptive(cost), fn);
        };
    return ToTf(::dwop::RunCpu(params, plan, workspace_data, parallel_for));
  }
};

#if GOOGLE_CUDA
// Read by tests/gpu_build_test.py: this library registers the GPU kernels.
__attribute__((used)) extern const char kBuiltWithCuda[] =
    "DWOP_BUILT_WITH_CUDA=1";

// The GPU kernels need no Eigen GPU device: a tag type keeps Eigen's CUDA
// headers out of this file.
struct GpuDevice {};

// The CUDA kernel (cc/kernels/cuda/cuda.h) on the op's stream: planned for the
// op's device, with its workspace from TensorFlow's allocator.
template <>
struct Launcher<GpuDevice> {
  static absl::Status Run(OpKernelContext* ctx,
                          const ::dwop::FilterGradParams& params) {
    DeviceContext* device_context = ctx->op_device_context();
    ::stream_executor::Stream* stream =
        device_context == nullptr ? nullptr : device_context->stream();
    if (stream == nullptr) {
      return absl::InternalError("dwop: the GPU op context has no stream");
    }
    const auto& description = stream->parent()->GetDeviceDescription();
    ::dwop::CudaDevice device;
    device.sm_count = std::max(1, description.core_count());
    if (description.shared_memory_per_block() > 0) {
      device.shared_memory_per_block = description.shared_memory_per_block();
    }
    ::dwop::CudaPlan plan;
    TF_RETURN_IF_ERROR(ToTf(
        ::dwop::PlanCuda(params, device, ::dwop::CudaPath::kAuto, &plan)));
    Tensor workspace;
    void* workspace_data;
    TF_RETURN_IF_ERROR(AllocateWorkspace(ctx, params.geo, plan.workspace_bytes,
                                         &workspace, &workspace_data));
    return ToTf(::dwop::RunCuda(params, plan, workspace_data,
                                stream->platform_specific_handle().stream));
  }
};
#endif  // GOOGLE_CUDA

template <typename Device, typename T>
class DepthwiseConv2dBackpropFilterOp : public OpKernel {
 public:
  explicit DepthwiseConv2dBackpropFilterOp(OpKernelConstruction* ctx)
      : OpKernel(ctx) {
    ::dwop::OpAttrs attrs;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("strides", &attrs.strides));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("padding", &attrs.padding));
    OP_REQUIRES_OK(ctx,
                   ctx->GetAttr("explicit_paddings", &attrs.explicit_paddings));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("data_format", &attrs.data_format));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("dilations", &attrs.dilations));
    OP_REQUIRES_OK(ctx, ToTf(::dwop::ParseAttrs(attrs, &attrs_)));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& input = ctx->input(0);
    const Tensor& filter_sizes = ctx->input(1);
    const Tensor& out_backprop = ctx->input(2);

    const auto input_dims = input.shape().dim_sizes();
    const auto out_backprop_dims = out_backprop.shape().dim_sizes();
    const auto sizes_dims = filter_sizes.shape().dim_sizes();
    std::vector<int64_t> sizes;
    if (filter_sizes.dims() == 1) {
      // Validation reads no more values than it echoes, so a hostile length
      // costs no huge copy.
      sizes.resize(std::min<int64_t>(filter_sizes.NumElements(),
                                     ::dwop::kMaxEchoedFilterSizes));
      for (size_t i = 0; i < sizes.size(); ++i) {
        sizes[i] = filter_sizes.dtype() == DT_INT32
                       ? filter_sizes.flat<int32_t>()(i)
                       : filter_sizes.flat<int64_t>()(i);
      }
    }
    ::dwop::FilterGradParams params;
    OP_REQUIRES_OK(
        ctx, ToTf(::dwop::ComputeGeometry(
                 attrs_,
                 {input_dims.data(), static_cast<int>(input_dims.size())},
                 {sizes_dims.data(), static_cast<int>(sizes_dims.size())},
                 sizes.data(),
                 {out_backprop_dims.data(),
                  static_cast<int>(out_backprop_dims.size())},
                 &params.geo)));
    params.dtype = DTypeOf<T>();
    OP_REQUIRES_OK(ctx,
                   ToTf(::dwop::CheckFilterBytes(params.geo, params.dtype)));

    // BuildTensorShape returns a Status where TensorShape's constructor would
    // CHECK-fail (abort) on a bad shape; ComputeGeometry has already refused
    // every such filter_sizes, this keeps the process safe if that changes.
    TensorShape output_shape;
    OP_REQUIRES_OK(ctx, TensorShape::BuildTensorShape(
                            {sizes[0], sizes[1], sizes[2], sizes[3]},
                            &output_shape));
    Tensor* output = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, output_shape, &output));
    params.input = input.flat<T>().data();
    params.out_backprop = out_backprop.flat<T>().data();
    params.filter_backprop = output->flat<T>().data();
    OP_REQUIRES_OK(ctx, Launcher<Device>::Run(ctx, params));
  }

 private:
  ::dwop::ConvAttrs attrs_;
};

#define DWOP_REGISTER_CPU(T)                                        \
  REGISTER_KERNEL_BUILDER(Name("Dwop>DepthwiseConv2dBackpropFilter") \
                              .Device(DEVICE_CPU)                   \
                              .TypeConstraint<T>("T"),              \
                          DepthwiseConv2dBackpropFilterOp<CPUDevice, T>);
TF_CALL_half(DWOP_REGISTER_CPU);
TF_CALL_bfloat16(DWOP_REGISTER_CPU);
TF_CALL_float(DWOP_REGISTER_CPU);
TF_CALL_double(DWOP_REGISTER_CPU);
#undef DWOP_REGISTER_CPU

#if GOOGLE_CUDA
#define DWOP_REGISTER_GPU(T)                                        \
  REGISTER_KERNEL_BUILDER(Name("Dwop>DepthwiseConv2dBackpropFilter") \
                              .Device(DEVICE_GPU)                   \
                              .TypeConstraint<T>("T")               \
                              .HostMemory("filter_sizes"),          \
                          DepthwiseConv2dBackpropFilterOp<GpuDevice, T>);
TF_CALL_half(DWOP_REGISTER_GPU);
TF_CALL_bfloat16(DWOP_REGISTER_GPU);
TF_CALL_float(DWOP_REGISTER_GPU);
TF_CALL_double(DWOP_REGISTER_GPU);
#undef DWOP_REGISTER_GPU
#endif  // GOOGLE_CUDA

}  // namespace dwop
}  // namespace tensorflow
