// The per-dtype launchers of every CUDA kernel family, for nvcc only.
// Each kernels_<dtype>.cu.cc defines and instantiates them for its type
// (launch_kernels.h), so that nvcc compiles the four types in parallel;
// launcher.cu.cc dispatches on the dtype.
#ifndef DWOP_CC_KERNELS_CUDA_LAUNCH_H_
#define DWOP_CC_KERNELS_CUDA_LAUNCH_H_

#if !defined(__CUDACC__)
#error "cc/kernels/cuda/launch.h is for nvcc (the *.cu.cc files) only"
#endif

#include <cuda_runtime.h>

#include "cc/kernels/common/params.h"
#include "cc/kernels/common/status.h"
#include "cc/kernels/cuda/conv_kernels.h"
#include "cc/kernels/cuda/filter_grad_kernels.h"

namespace dwop {
namespace gpu {

// Ok, or kInternal naming `what` and the CUDA error.
Status CudaError(cudaError_t error, const char* what);

// The filter gradient's kernels of `plan` (a kernel family, not
// kNothing/kZero) for storage type T.
template <typename T>
Status LaunchFilterGrad(const CudaPlan& plan, Layout layout,
                        const KernelArgs& args, cudaStream_t stream);

// The forward's or input gradient's kernel of `plan` (not kNothing/kZero).
template <typename T>
Status LaunchConv(const CudaConvPlan& plan, const ConvArgs& args,
                  cudaStream_t stream);

}  // namespace gpu
}  // namespace dwop

#endif  // DWOP_CC_KERNELS_CUDA_LAUNCH_H_
