// The OpKernels of the three ops: attributes are parsed in the constructor,
// shapes validated in Compute (both by cc/kernels/common/geometry.h, shared
// with every device), the output allocated, then a device launcher runs the
// framework-free kernel (which writes zeros when there is nothing to sum).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <limits>
#include <new>
#include <string>
#include <vector>

#include "cc/kernels/common/geometry.h"
#include "cc/kernels/common/params.h"
#include "cc/kernels/cpu/conv.h"
#include "cc/kernels/cpu/cpu.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/register_types.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "tensorflow/core/framework/types.h"
#include "tensorflow/core/platform/blocking_counter.h"
#include "tensorflow/core/platform/threadpool.h"

#if GOOGLE_CUDA
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
constexpr ::dwop::DType DTypeOf<Eigen::half>() {
  return ::dwop::DType::kHalf;
}
template <>
constexpr ::dwop::DType DTypeOf<bfloat16>() {
  return ::dwop::DType::kBfloat16;
}
template <>
constexpr ::dwop::DType DTypeOf<float>() {
  return ::dwop::DType::kFloat;
}
template <>
constexpr ::dwop::DType DTypeOf<double>() {
  return ::dwop::DType::kDouble;
}

// Checks a kernel's workspace request and allocates it from TensorFlow's
// allocator for the op's device; *data is null when no bytes are needed.
absl::Status AllocateWorkspace(OpKernelContext* ctx,
                               const ::dwop::Geometry& geo, int64_t bytes,
                               ::dwop::OpKind op, Tensor* workspace,
                               void** data) {
  TF_RETURN_IF_ERROR(ToTf(::dwop::CheckWorkspaceBytes(geo, bytes, op)));
  *data = nullptr;
  if (bytes > 0) {
    TF_RETURN_IF_ERROR(
        ctx->allocate_temp(DT_INT8, TensorShape({bytes}), workspace));
    *data = workspace->flat<int8_t>().data();
  }
  return absl::OkStatus();
}

// The op's thread pool as the CPU kernels' ParallelFor: as many workers as
// the pool has threads (fewer for little work: about 10 us of cost units
// each, as TensorFlow's Shard), the calling thread one of them, each
// pulling single units from a shared counter, as the C ABI's threads do.
// With the pool's own ParallelFor (the caller and every pool thread: one
// worker more than cores) the benchmark's calls took up to 1.8x the C ABI's
// time in some rounds and not in others; with this, within about 1.15x.
::dwop::ParallelFor CpuParallelFor(OpKernelContext* ctx) {
  thread::ThreadPool* pool =
      ctx->device()->tensorflow_cpu_worker_threads()->workers;
  return [pool](int64_t n, int64_t cost,
                const std::function<void(int64_t, int64_t)>& fn) {
    constexpr int64_t kMinCostPerWorker = 10000;
    const double total = static_cast<double>(n) *
                         static_cast<double>(std::max<int64_t>(1, cost));
    const int64_t workers = std::max<int64_t>(
        1,
        std::min<double>({static_cast<double>(pool->NumThreads()),
                          static_cast<double>(n), total / kMinCostPerWorker}));
    std::atomic<int64_t> next{0};
    const auto work = [&] {
      for (int64_t i = next++; i < n; i = next++) fn(i, i + 1);
    };
    BlockingCounter done(static_cast<int>(std::max<int64_t>(0, workers - 1)));
    for (int64_t t = 1; t < workers; ++t) {
      pool->Schedule([&] {
        work();
        done.DecrementCount();
      });
    }
    work();
    done.Wait();
  };
}

// Runs a planned CPU kernel (RunCpu of cpu.h or conv.h) with the plan's
// workspace and the op's thread pool.
template <typename Params, typename Plan>
absl::Status RunCpuPlan(OpKernelContext* ctx, const Params& params,
                        const Plan& plan, ::dwop::OpKind op) {
  Tensor workspace;
  void* workspace_data;
  TF_RETURN_IF_ERROR(AllocateWorkspace(ctx, params.geo, plan.workspace_bytes(),
                                       op, &workspace, &workspace_data));
  return ToTf(
      ::dwop::RunCpu(params, plan, workspace_data, CpuParallelFor(ctx)));
}

// Runs the kernel of one device on validated params, one Run per op.
// Specialised per device.
template <typename Device>
struct Launcher;

template <>
struct Launcher<CPUDevice> {
  // Empty problems get zeros first; no kernel sees their huge dimensions.
  static absl::Status Run(OpKernelContext* ctx,
                          const ::dwop::FilterGradParams& params) {
    if (::dwop::WriteZerosIfNothingToSum(params)) return absl::OkStatus();
    return RunCpuPlan(ctx, params, ::dwop::CpuPlan(params),
                      ::dwop::OpKind::kFilterGrad);
  }
  static absl::Status Run(OpKernelContext* ctx,
                          const ::dwop::ForwardParams& params) {
    if (::dwop::WriteZerosIfNothingToSum(params)) return absl::OkStatus();
    return RunCpuPlan(ctx, params, ::dwop::CpuConvPlan(params),
                      ::dwop::OpKind::kForward);
  }
  static absl::Status Run(OpKernelContext* ctx,
                          const ::dwop::InputGradParams& params) {
    if (::dwop::WriteZerosIfNothingToSum(params)) return absl::OkStatus();
    return RunCpuPlan(ctx, params, ::dwop::CpuConvPlan(params),
                      ::dwop::OpKind::kInputGrad);
  }
};

#if GOOGLE_CUDA
// Read by tests/gpu_build_test.py: this library registers the GPU kernels.
__attribute__((used)) extern const char kBuiltWithCuda[] =
    "DWOP_BUILT_WITH_CUDA=1";

// The GPU kernels need no Eigen GPU device: a tag type keeps Eigen's CUDA
// headers out of this file.
struct GpuDevice {};

// The op's stream and the properties of its device, for the CUDA planners.
absl::Status GpuStream(OpKernelContext* ctx, ::stream_executor::Stream** out,
                       ::dwop::CudaDevice* device) {
  DeviceContext* device_context = ctx->op_device_context();
  ::stream_executor::Stream* stream =
      device_context == nullptr ? nullptr : device_context->stream();
  if (stream == nullptr) {
    return absl::InternalError("dwop: the GPU op context has no stream");
  }
  const auto& description = stream->parent()->GetDeviceDescription();
  device->sm_count = std::max(1, description.core_count());
  if (description.shared_memory_per_block() > 0) {
    device->shared_memory_per_block = description.shared_memory_per_block();
  }
  *out = stream;
  return absl::OkStatus();
}

// The CUDA kernels (cc/kernels/cuda/cuda.h) on the op's stream: planned for
// the op's device, with their workspace from TensorFlow's allocator. The
// CUDA planners plan the zeros of an empty problem themselves.
template <>
struct Launcher<GpuDevice> {
  static absl::Status Run(OpKernelContext* ctx,
                          const ::dwop::FilterGradParams& params) {
    ::stream_executor::Stream* stream;
    ::dwop::CudaDevice device;
    TF_RETURN_IF_ERROR(GpuStream(ctx, &stream, &device));
    ::dwop::CudaPlan plan;
    TF_RETURN_IF_ERROR(
        ToTf(::dwop::PlanCuda(params, device, ::dwop::CudaPath::kAuto, &plan)));
    Tensor workspace;
    void* workspace_data;
    TF_RETURN_IF_ERROR(AllocateWorkspace(ctx, params.geo, plan.workspace_bytes,
                                         ::dwop::OpKind::kFilterGrad,
                                         &workspace, &workspace_data));
    return ToTf(::dwop::RunCuda(params, plan, workspace_data,
                                stream->platform_specific_handle().stream));
  }
  // The forward and the input gradient (PlanCuda/RunCuda overloads of
  // cc/kernels/cuda/cuda.h for ForwardParams and InputGradParams): gathers
  // that need no workspace; the planner zero-fills empty problems.
  template <typename Params>
  static absl::Status Run(OpKernelContext* ctx, const Params& params) {
    ::stream_executor::Stream* stream;
    ::dwop::CudaDevice device;
    TF_RETURN_IF_ERROR(GpuStream(ctx, &stream, &device));
    ::dwop::CudaConvPlan plan;
    TF_RETURN_IF_ERROR(ToTf(::dwop::PlanCuda(params, device, &plan)));
    return ToTf(::dwop::RunCuda(params, plan,
                                stream->platform_specific_handle().stream));
  }
};
#endif  // GOOGLE_CUDA

// Runs `body` (which returns an absl::Status) so that no C++ exception
// reaches TensorFlow, as the C ABI's Guarded does: std::bad_alloc (a plan's
// or a kernel's set-up allocating for a huge but valid problem) becomes
// ResourceExhausted, anything else Internal.
template <typename Body>
absl::Status Guarded(const char* op_name, Body body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(std::string(op_name) +
                                        ": out of memory");
  } catch (const std::exception& e) {
    return absl::InternalError(std::string(op_name) +
                               ": unexpected exception: " + e.what());
  } catch (...) {
    return absl::InternalError(std::string(op_name) + ": unexpected exception");
  }
}

::dwop::ShapeRef Ref(const absl::InlinedVector<int64_t, 4>& dims) {
  return {dims.data(), static_cast<int>(dims.size())};
}

// The values of a 1-D int32 or int64 sizes tensor (filter_sizes,
// input_sizes); validation reads no more values than it echoes, so a hostile
// length costs no huge copy. Empty when the tensor is not 1-D.
std::vector<int64_t> SizesValues(const Tensor& sizes_tensor) {
  std::vector<int64_t> sizes;
  if (sizes_tensor.dims() == 1) {
    sizes.resize(std::min<int64_t>(sizes_tensor.NumElements(),
                                   ::dwop::kMaxEchoedFilterSizes));
    for (size_t i = 0; i < sizes.size(); ++i) {
      sizes[i] = sizes_tensor.dtype() == DT_INT32
                     ? sizes_tensor.flat<int32_t>()(i)
                     : sizes_tensor.flat<int64_t>()(i);
    }
  }
  return sizes;
}

// Allocates an op's output of `dims` (4 entries) of T. The byte size is
// checked first: ComputeGeometry bounds the element count by int64, not the
// bytes, and a request TensorFlow's allocator cannot serve is
// ResourceExhausted either way.
template <typename T>
absl::Status AllocateOutput(OpKernelContext* ctx, ::dwop::OpKind op,
                            const int64_t dims[4], Tensor** output) {
  TensorShape shape;
  TF_RETURN_IF_ERROR(TensorShape::BuildTensorShape(
      {dims[0], dims[1], dims[2], dims[3]}, &shape));
  const int64_t elements = shape.num_elements();
  if (elements >
      std::numeric_limits<int64_t>::max() / static_cast<int64_t>(sizeof(T))) {
    return absl::ResourceExhaustedError(
        std::string(::dwop::OpName(op)) + ": the output of shape " +
        ::dwop::FormatDims(dims, 4) + " would need more bytes than int64 " +
        "can count");
  }
  return ctx->allocate_output(0, shape, output);
}

// What the three ops share: the attributes, parsed and validated once in the
// constructor (for the op's OpKind, which names it in messages), and the
// guarded run of Compute.
template <::dwop::OpKind kOp>
class DepthwiseOpBase : public OpKernel {
 public:
  explicit DepthwiseOpBase(OpKernelConstruction* ctx) : OpKernel(ctx) {
    ::dwop::OpAttrs attrs;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("strides", &attrs.strides));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("padding", &attrs.padding));
    OP_REQUIRES_OK(ctx,
                   ctx->GetAttr("explicit_paddings", &attrs.explicit_paddings));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("data_format", &attrs.data_format));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("dilations", &attrs.dilations));
    OP_REQUIRES_OK(ctx, ToTf(::dwop::ParseAttrs(attrs, &attrs_, kOp)));
  }

  void Compute(OpKernelContext* ctx) final {
    OP_REQUIRES_OK(
        ctx, Guarded(::dwop::OpName(kOp), [&] { return ComputeStatus(ctx); }));
  }

 protected:
  // Validates the inputs, allocates the output and runs the launcher.
  virtual absl::Status ComputeStatus(OpKernelContext* ctx) = 0;

  ::dwop::ConvAttrs attrs_;
};

template <typename Device, typename T>
class DepthwiseConv2dBackpropFilterOp
    : public DepthwiseOpBase<::dwop::OpKind::kFilterGrad> {
 public:
  using DepthwiseOpBase::DepthwiseOpBase;

 private:
  absl::Status ComputeStatus(OpKernelContext* ctx) override {
    const Tensor& input = ctx->input(0);
    const Tensor& filter_sizes = ctx->input(1);
    const Tensor& out_backprop = ctx->input(2);
    const std::vector<int64_t> sizes = SizesValues(filter_sizes);
    ::dwop::FilterGradParams params;
    TF_RETURN_IF_ERROR(ToTf(::dwop::ComputeGeometry(
        attrs_, Ref(input.shape().dim_sizes()),
        Ref(filter_sizes.shape().dim_sizes()), sizes.data(),
        Ref(out_backprop.shape().dim_sizes()), &params.geo)));
    params.dtype = DTypeOf<T>();
    TF_RETURN_IF_ERROR(
        ToTf(::dwop::CheckFilterBytes(params.geo, params.dtype)));
    Tensor* output = nullptr;
    TF_RETURN_IF_ERROR(AllocateOutput<T>(ctx, ::dwop::OpKind::kFilterGrad,
                                         sizes.data(), &output));
    params.input = input.flat<T>().data();
    params.out_backprop = out_backprop.flat<T>().data();
    params.filter_backprop = output->flat<T>().data();
    return Launcher<Device>::Run(ctx, params);
  }
};

template <typename Device, typename T>
class DepthwiseConv2dNativeOp
    : public DepthwiseOpBase<::dwop::OpKind::kForward> {
 public:
  using DepthwiseOpBase::DepthwiseOpBase;

 private:
  absl::Status ComputeStatus(OpKernelContext* ctx) override {
    const Tensor& input = ctx->input(0);
    const Tensor& filter = ctx->input(1);
    ::dwop::ForwardParams params;
    TF_RETURN_IF_ERROR(ToTf(::dwop::ComputeForwardGeometry(
        attrs_, Ref(input.shape().dim_sizes()), Ref(filter.shape().dim_sizes()),
        &params.geo)));
    params.dtype = DTypeOf<T>();
    int64_t dims[4];
    ::dwop::OutputDims(params.geo, dims);
    Tensor* output = nullptr;
    TF_RETURN_IF_ERROR(
        AllocateOutput<T>(ctx, ::dwop::OpKind::kForward, dims, &output));
    params.input = input.flat<T>().data();
    params.filter = filter.flat<T>().data();
    params.output = output->flat<T>().data();
    return Launcher<Device>::Run(ctx, params);
  }
};

template <typename Device, typename T>
class DepthwiseConv2dBackpropInputOp
    : public DepthwiseOpBase<::dwop::OpKind::kInputGrad> {
 public:
  using DepthwiseOpBase::DepthwiseOpBase;

 private:
  absl::Status ComputeStatus(OpKernelContext* ctx) override {
    const Tensor& input_sizes = ctx->input(0);
    const Tensor& filter = ctx->input(1);
    const Tensor& out_backprop = ctx->input(2);
    const std::vector<int64_t> sizes = SizesValues(input_sizes);
    ::dwop::InputGradParams params;
    TF_RETURN_IF_ERROR(ToTf(::dwop::ComputeInputGradGeometry(
        attrs_, Ref(input_sizes.shape().dim_sizes()), sizes.data(),
        Ref(filter.shape().dim_sizes()), Ref(out_backprop.shape().dim_sizes()),
        &params.geo)));
    params.dtype = DTypeOf<T>();
    Tensor* output = nullptr;
    TF_RETURN_IF_ERROR(AllocateOutput<T>(ctx, ::dwop::OpKind::kInputGrad,
                                         sizes.data(), &output));
    params.filter = filter.flat<T>().data();
    params.out_backprop = out_backprop.flat<T>().data();
    params.in_backprop = output->flat<T>().data();
    return Launcher<Device>::Run(ctx, params);
  }
};

#define DWOP_REGISTER_CPU(T)                                              \
  REGISTER_KERNEL_BUILDER(Name("Dwop>DepthwiseConv2dBackpropFilter")      \
                              .Device(DEVICE_CPU)                         \
                              .TypeConstraint<T>("T"),                    \
                          DepthwiseConv2dBackpropFilterOp<CPUDevice, T>); \
  REGISTER_KERNEL_BUILDER(Name("Dwop>DepthwiseConv2dNative")              \
                              .Device(DEVICE_CPU)                         \
                              .TypeConstraint<T>("T"),                    \
                          DepthwiseConv2dNativeOp<CPUDevice, T>);         \
  REGISTER_KERNEL_BUILDER(Name("Dwop>DepthwiseConv2dBackpropInput")       \
                              .Device(DEVICE_CPU)                         \
                              .TypeConstraint<T>("T"),                    \
                          DepthwiseConv2dBackpropInputOp<CPUDevice, T>);
TF_CALL_half(DWOP_REGISTER_CPU);
TF_CALL_bfloat16(DWOP_REGISTER_CPU);
TF_CALL_float(DWOP_REGISTER_CPU);
TF_CALL_double(DWOP_REGISTER_CPU);
#undef DWOP_REGISTER_CPU

#if GOOGLE_CUDA
#define DWOP_REGISTER_GPU(T)                                              \
  REGISTER_KERNEL_BUILDER(Name("Dwop>DepthwiseConv2dBackpropFilter")      \
                              .Device(DEVICE_GPU)                         \
                              .TypeConstraint<T>("T")                     \
                              .HostMemory("filter_sizes"),                \
                          DepthwiseConv2dBackpropFilterOp<GpuDevice, T>); \
  REGISTER_KERNEL_BUILDER(Name("Dwop>DepthwiseConv2dNative")              \
                              .Device(DEVICE_GPU)                         \
                              .TypeConstraint<T>("T"),                    \
                          DepthwiseConv2dNativeOp<GpuDevice, T>);         \
  REGISTER_KERNEL_BUILDER(Name("Dwop>DepthwiseConv2dBackpropInput")       \
                              .Device(DEVICE_GPU)                         \
                              .TypeConstraint<T>("T")                     \
                              .HostMemory("input_sizes"),                 \
                          DepthwiseConv2dBackpropInputOp<GpuDevice, T>);
TF_CALL_half(DWOP_REGISTER_GPU);
TF_CALL_bfloat16(DWOP_REGISTER_GPU);
TF_CALL_float(DWOP_REGISTER_GPU);
TF_CALL_double(DWOP_REGISTER_GPU);
#undef DWOP_REGISTER_GPU
#endif  // GOOGLE_CUDA

}  // namespace dwop
}  // namespace tensorflow
