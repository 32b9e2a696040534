// The __global__ kernels of every family and the definitions of the
// launchers declared in launch.h. Included only by the kernels_<dtype>.cu.cc
// files, each of which instantiates the launchers for its type
// (DWOP_INSTANTIATE_LAUNCHERS).
#ifndef DWOP_CC_KERNELS_CUDA_LAUNCH_KERNELS_H_
#define DWOP_CC_KERNELS_CUDA_LAUNCH_KERNELS_H_

#include <cuda_runtime.h>

#include <cstdint>

#include "cc/kernels/cuda/launch.h"

namespace dwop {
namespace gpu {
namespace launch_internal {

// ---- The filter gradient (filter_grad_kernels.h).

// The register kernels use up to kRegisterThreads threads; at most ~128
// registers each keeps two blocks resident per SM.
template <typename T, int KHT, int KWT, int V>
__global__ void __launch_bounds__(kRegisterThreads, sizeof(Acc<T>) == 4 ? 2 : 1)
    RegisterNhwcKernel(const KernelArgs args) {
  extern __shared__ __align__(16) unsigned char smem[];
  RegisterState<Acc<T>, KHT, KWT, V> state;
  DeviceBlock block;
  RegisterNhwcBlock<T, KHT, KWT, V>(args, blockIdx.x, block, &state, smem);
}

template <typename T, int KHT, int KWT>
__global__ void __launch_bounds__(kRegisterThreads, sizeof(Acc<T>) == 4 ? 2 : 1)
    RegisterNchwKernel(const KernelArgs args) {
  extern __shared__ __align__(16) unsigned char smem[];
  RegisterState<Acc<T>, KHT, KWT, 1> state;
  DeviceBlock block;
  RegisterNchwBlock<T, KHT, KWT>(args, blockIdx.x, block, &state, smem);
}

template <typename T, bool kNchw>
__global__ void __launch_bounds__(kTiledThreads, sizeof(Acc<T>) == 4 ? 2 : 1)
    TiledKernel(const KernelArgs args) {
  extern __shared__ __align__(16) unsigned char smem[];
  TiledState<Acc<T>> state;
  DeviceBlock block;
  TiledBlock<T, kNchw>(args, blockIdx.x, block, &state, smem);
}

template <typename T>
__global__ void __launch_bounds__(kFinalizeThreads)
    FinalizeKernel(const KernelArgs args) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       e < args.filter_elements; e += stride) {
    FinalizeElement<T>(args, e);
  }
}

// Checks the launch just made (configuration errors, a missing kernel image
// for this GPU, ...).
inline Status LaunchError(const char* kernel) {
  return CudaError(cudaGetLastError(), kernel);
}

class FilterGradLauncher {
 public:
  FilterGradLauncher(const CudaPlan& plan, const KernelArgs& args,
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
  const KernelArgs& args_;
  cudaStream_t stream_;
};

// ---- The forward and input gradient (conv_kernels.h): one item per thread.
// At least three 256-thread blocks per SM caps registers at 85: enough for
// the column runs' accumulators and windows without spilling (the default
// cap of 64 spilled in the float forward).

template <typename T, bool kNchw>
__global__ void __launch_bounds__(kConvThreads, 3)
    ForwardKernel(const ConvArgs args) {
  const int64_t item =
      static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (item < args.items) ForwardItem<T, kNchw>(args, item);
}

template <typename T, bool kNchw>
__global__ void __launch_bounds__(kConvThreads, 3)
    InputGradKernel(const ConvArgs args) {
  const int64_t item =
      static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (item < args.items) InputGradItem<T, kNchw>(args, item);
}

class ConvLauncher {
 public:
  ConvLauncher(const CudaConvPlan& plan, const ConvArgs& args,
               cudaStream_t stream)
      : plan_(plan), args_(args), stream_(stream) {}

  template <typename T, bool kNchw>
  Status Forward() {
    ForwardKernel<T, kNchw><<<Grid(), plan_.threads, 0, stream_>>>(args_);
    return LaunchError("launching the forward kernel");
  }

  template <typename T, bool kNchw>
  Status InputGrad() {
    InputGradKernel<T, kNchw><<<Grid(), plan_.threads, 0, stream_>>>(args_);
    return LaunchError("launching the input-gradient kernel");
  }

 private:
  unsigned Grid() const { return static_cast<unsigned>(plan_.blocks); }

  const CudaConvPlan& plan_;
  const ConvArgs& args_;
  cudaStream_t stream_;
};

}  // namespace launch_internal

template <typename T>
Status LaunchFilterGrad(const CudaPlan& plan, Layout layout,
                        const KernelArgs& args, cudaStream_t stream) {
  launch_internal::FilterGradLauncher launcher(plan, args, stream);
  return VisitType<T>(plan, layout, launcher);
}

template <typename T>
Status LaunchConv(const CudaConvPlan& plan, const ConvArgs& args,
                  cudaStream_t stream) {
  launch_internal::ConvLauncher launcher(plan, args, stream);
  return VisitConvType<T>(plan, launcher);
}

}  // namespace gpu
}  // namespace dwop

// Instantiates every launcher for storage type T (in namespace dwop::gpu).
#define DWOP_INSTANTIATE_LAUNCHERS(T)                                   \
  namespace dwop {                                                      \
  namespace gpu {                                                       \
  template Status LaunchFilterGrad<T>(const CudaPlan&, Layout,          \
                                      const KernelArgs&, cudaStream_t); \
  template Status LaunchConv<T>(const CudaConvPlan&, const ConvArgs&,   \
                                cudaStream_t);                          \
  }                                                                     \
  }

#endif  // DWOP_CC_KERNELS_CUDA_LAUNCH_KERNELS_H_
