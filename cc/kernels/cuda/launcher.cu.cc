// The CUDA host API (cuda.h): device queries, stream-ordered allocation and
// RunCuda of every op, dispatching on the dtype to the per-dtype launchers
// (launch.h; kernels in kernels_<dtype>.cu.cc, bodies in
// filter_grad_kernels.h and conv_kernels.h). Framework free: compiled by
// nvcc without TensorFlow's include path.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "cc/kernels/cuda/cuda.h"
#include "cc/kernels/cuda/launch.h"

namespace dwop {
namespace gpu {

Status CudaError(cudaError_t error, const char* what) {
  if (error == cudaSuccess) return Status::Ok();
  return Status::Internal(std::string(what) +
                          " failed: " + cudaGetErrorName(error) + ": " +
                          cudaGetErrorString(error));
}

}  // namespace gpu

namespace {

using gpu::CudaError;

// Calls launch.template operator()<T>() for the dtype's storage type.
template <class Launch>
Status ForDType(DType dtype, Launch&& launch) {
  switch (dtype) {
    case DType::kHalf:
      return launch(half_t());
    case DType::kBfloat16:
      return launch(bfloat16_t());
    case DType::kFloat:
      return launch(float());
    case DType::kDouble:
      return launch(double());
  }
  return Status::InvalidArgument("unknown dtype");
}

// Runs a forward or input-gradient plan: a memset when there is nothing to
// sum, else the gather kernel.
template <typename Params>
Status RunConv(const Params& params, const CudaConvPlan& plan, void* output,
               void* cuda_stream) {
  cudaStream_t stream = static_cast<cudaStream_t>(cuda_stream);
  switch (plan.kernel) {
    case CudaConvKernel::kNothing:
      return Status::Ok();
    case CudaConvKernel::kZero:
      return CudaError(cudaMemsetAsync(output, 0, plan.output_bytes, stream),
                       "cudaMemsetAsync of the result");
    default:
      break;
  }
  const gpu::ConvArgs args = gpu::MakeConvArgs(params, plan);
  return ForDType(params.dtype, [&](auto t) {
    return gpu::LaunchConv<decltype(t)>(plan, args, stream);
  });
}

}  // namespace

int CudaDeviceCount(std::string* why) {
  int count = 0;
  const cudaError_t error = cudaGetDeviceCount(&count);
  if (error != cudaSuccess) {
    if (why != nullptr) {
      *why = std::string("cudaGetDeviceCount: ") + cudaGetErrorName(error) +
             ": " + cudaGetErrorString(error);
    }
    cudaGetLastError();  // do not leave the error for the next caller
    return 0;
  }
  if (count == 0 && why != nullptr) *why = "no CUDA device is visible";
  return count;
}

Status QueryCudaDevice(CudaDevice* device) {
  int ordinal = 0;
  DWOP_RETURN_IF_ERROR(CudaError(cudaGetDevice(&ordinal), "cudaGetDevice"));
  int sm_count = 0, smem = 0;
  DWOP_RETURN_IF_ERROR(
      CudaError(cudaDeviceGetAttribute(&sm_count,
                                       cudaDevAttrMultiProcessorCount, ordinal),
                "cudaDeviceGetAttribute(MultiProcessorCount)"));
  DWOP_RETURN_IF_ERROR(
      CudaError(cudaDeviceGetAttribute(
                    &smem, cudaDevAttrMaxSharedMemoryPerBlock, ordinal),
                "cudaDeviceGetAttribute(MaxSharedMemoryPerBlock)"));
  device->sm_count = sm_count;
  device->shared_memory_per_block = smem;
  return Status::Ok();
}

Status RunCuda(const FilterGradParams& params, const CudaPlan& plan,
               void* workspace, void* cuda_stream) {
  cudaStream_t stream = static_cast<cudaStream_t>(cuda_stream);
  switch (plan.kernel) {
    case CudaKernel::kNothing:
      return Status::Ok();
    case CudaKernel::kZero:
      return CudaError(
          cudaMemsetAsync(
              params.filter_backprop, 0,
              params.geo.filter_elements() * DTypeSize(params.dtype), stream),
          "cudaMemsetAsync of the filter gradient");
    default:
      break;
  }
  if (plan.workspace_bytes > 0 &&
      (workspace == nullptr || !Aligned(workspace, 16))) {
    return Status::InvalidArgument("the CUDA plan needs " +
                                   std::to_string(plan.workspace_bytes) +
                                   " bytes of 16-byte aligned workspace");
  }
  const int64_t vector_bytes = plan.vector * DTypeSize(params.dtype);
  if (!BuffersAligned(params, vector_bytes)) {
    return Status::InvalidArgument(
        "the CUDA plan was made for buffers aligned to " +
        std::to_string(vector_bytes) + " bytes; these are not");
  }
  const gpu::KernelArgs args = gpu::MakeKernelArgs(params, plan, workspace);
  return ForDType(params.dtype, [&](auto t) {
    return gpu::LaunchFilterGrad<decltype(t)>(plan, params.geo.layout, args,
                                              stream);
  });
}

Status RunCuda(const ForwardParams& params, const CudaConvPlan& plan,
               void* cuda_stream) {
  return RunConv(params, plan, params.output, cuda_stream);
}

Status RunCuda(const InputGradParams& params, const CudaConvPlan& plan,
               void* cuda_stream) {
  return RunConv(params, plan, params.in_backprop, cuda_stream);
}

Status CudaAllocAsync(int64_t bytes, void* cuda_stream, void** ptr) {
  *ptr = nullptr;
  if (bytes <= 0) return Status::Ok();
  const cudaError_t error = cudaMallocAsync(
      ptr, static_cast<size_t>(bytes), static_cast<cudaStream_t>(cuda_stream));
  if (error == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    return Status::ResourceExhausted("could not allocate " +
                                     std::to_string(bytes) +
                                     " bytes of CUDA workspace");
  }
  return CudaError(error, "cudaMallocAsync of the workspace");
}

Status CudaFreeAsync(void* ptr, void* cuda_stream) {
  if (ptr == nullptr) return Status::Ok();
  return CudaError(cudaFreeAsync(ptr, static_cast<cudaStream_t>(cuda_stream)),
                   "cudaFreeAsync of the workspace");
}

}  // namespace dwop
