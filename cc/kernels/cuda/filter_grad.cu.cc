// The CUDA kernels (bodies in cuda_kernels.h) and their launcher. Framework
// free: compiled by nvcc without TensorFlow's include path.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "cc/kernels/cuda/cuda.h"
#include "cc/kernels/cuda/filter_grad_kernels.h"

namespace dwop {
namespace {

// The register kernels use up to kRegisterThreads threads; at most ~128
// registers each keeps two blocks resident per SM.
template <typename T, int KHT, int KWT, int V>
__global__ void __launch_bounds__(kRegisterThreads, sizeof(gpu::Acc<T>) == 4 ? 2 : 1)
    RegisterNhwcKernel(const gpu::KernelArgs args) {
  extern __shared__ __align__(16) unsigned char smem[];
  gpu::RegisterState<gpu::Acc<T>, KHT, KWT, V> state;
  gpu::DeviceBlock block;
  gpu::RegisterNhwcBlock<T, KHT, KWT, V>(args, blockIdx.x, block, &state,
                                          smem);
}

template <typename T, int KHT, int KWT>
__global__ void __launch_bounds__(kRegisterThreads, sizeof(gpu::Acc<T>) == 4 ? 2 : 1)
    RegisterNchwKernel(const gpu::KernelArgs args) {
  extern __shared__ __align__(16) unsigned char smem[];
  gpu::RegisterState<gpu::Acc<T>, KHT, KWT, 1> state;
  gpu::DeviceBlock block;
  gpu::RegisterNchwBlock<T, KHT, KWT>(args, blockIdx.x, block, &state, smem);
}

template <typename T, bool kNchw>
__global__ void __launch_bounds__(kTiledThreads, sizeof(gpu::Acc<T>) == 4 ? 2 : 1)
    TiledKernel(const gpu::KernelArgs args) {
  extern __shared__ __align__(16) unsigned char smem[];
  gpu::TiledState<gpu::Acc<T>> state;
  gpu::DeviceBlock block;
  gpu::TiledBlock<T, kNchw>(args, blockIdx.x, block, &state, smem);
}

template <typename T>
__global__ void __launch_bounds__(kFinalizeThreads)
    FinalizeKernel(const gpu::KernelArgs args) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       e < args.filter_elements; e += stride) {
    gpu::FinalizeElement<T>(args, e);
  }
}

Status CudaError(cudaError_t error, const char* what) {
  if (error == cudaSuccess) return Status::Ok();
  return Status::Internal(std::string(what) + " failed: " +
                          cudaGetErrorName(error) + ": " +
                          cudaGetErrorString(error));
}

// Checks the launch just made (configuration errors, a missing kernel image
// for this GPU, ...).
Status LaunchError(const char* kernel) {
  return CudaError(cudaGetLastError(), kernel);
}

class Launcher {
 public:
  Launcher(const CudaPlan& plan, const gpu::KernelArgs& args,
           cudaStream_t stream)
      : plan_(plan), args_(args), stream_(stream) {}

  template <typename T, int KHT, int KWT, int V>
  Status Nhwc() {
    RegisterNhwcKernel<T, KHT, KWT, V>
        <<<Grid(), plan_.threads, plan_.smem_bytes, stream_>>>(args_);
    return LaunchError("launching the register NHWC kernel");
  }

  template <typename T, int KHT, int KWT>
  Status Nchw() {
    RegisterNchwKernel<T, KHT, KWT>
        <<<Grid(), plan_.threads, plan_.smem_bytes, stream_>>>(args_);
    return LaunchError("launching the register NCHW kernel");
  }

  template <typename T, bool kNchw>
  Status Tiled() {
    TiledKernel<T, kNchw>
        <<<Grid(), plan_.threads, plan_.smem_bytes, stream_>>>(args_);
    return LaunchError("launching the tiled kernel");
  }

  template <typename T>
  Status Finalize() {
    FinalizeKernel<T><<<static_cast<unsigned>(plan_.finalize_blocks),
                        kFinalizeThreads, 0, stream_>>>(args_);
    return LaunchError("launching the finalize kernel");
  }

 private:
  unsigned Grid() const { return static_cast<unsigned>(plan_.blocks); }

  const CudaPlan& plan_;
  const gpu::KernelArgs& args_;
  cudaStream_t stream_;
};

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
  DWOP_RETURN_IF_ERROR(CudaError(
      cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount,
                             ordinal),
      "cudaDeviceGetAttribute(MultiProcessorCount)"));
  DWOP_RETURN_IF_ERROR(CudaError(
      cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlock,
                             ordinal),
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
          cudaMemsetAsync(params.filter_backprop, 0,
                          params.geo.filter_elements() *
                              DTypeSize(params.dtype),
                          stream),
          "cudaMemsetAsync of the filter gradient");
    default:
      break;
  }
  if (plan.workspace_bytes > 0 &&
      (workspace == nullptr || !Aligned(workspace, 16))) {
    return Status::InvalidArgument(
        "the CUDA plan needs " + std::to_string(plan.workspace_bytes) +
        " bytes of 16-byte aligned workspace");
  }
  const int64_t vector_bytes = plan.vector * DTypeSize(params.dtype);
  if (!BuffersAligned(params, vector_bytes)) {
    return Status::InvalidArgument(
        "the CUDA plan was made for buffers aligned to " +
        std::to_string(vector_bytes) + " bytes; these are not");
  }
  const gpu::KernelArgs args = gpu::MakeKernelArgs(params, plan, workspace);
  Launcher launcher(plan, args, stream);
  return gpu::VisitPlan(plan, params.dtype, params.geo.layout, launcher);
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
  return CudaError(
      cudaFreeAsync(ptr, static_cast<cudaStream_t>(cuda_stream)),
      "cudaFreeAsync of the workspace");
}

}  // namespace dwop
