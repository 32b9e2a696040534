// The CUDA kernels' host API without CUDA types, so that the glue (cc/tf,
// cc/c_api) compiles with a plain C++ compiler.
//
// Filter gradient: PlanCuda (plan.h) on the validated params and the device,
// give the kernels plan.workspace_bytes of device memory, then RunCuda on a
// stream. Forward and input gradient: PlanCuda (conv_plan.h), then RunCuda;
// they need no workspace (gathers: one thread per output element).
//
// The kernels (cuda.cu.cc, bodies in cuda_kernels.h) never use float atomics:
// every block writes its partial sums to the workspace and a second kernel adds
// them in a fixed order, so the result is bitwise identical from run to run.
// half and bfloat16 accumulate in float32, float in float32, double in double.
//
// RunCuda, QueryCudaDevice and the allocation helpers exist only in builds
// with CUDA (DWOP_WITH_CUDA / GOOGLE_CUDA); EmulateCuda always exists.
#ifndef DWOP_CC_KERNELS_CUDA_CUDA_H_
#define DWOP_CC_KERNELS_CUDA_CUDA_H_

#include <cstdint>
#include <string>

#include "cc/kernels/common/params.h"
#include "cc/kernels/common/status.h"
#include "cc/kernels/cuda/conv_plan.h"
#include "cc/kernels/cuda/plan.h"

namespace dwop {

// Number of CUDA devices visible to the process; 0 (and the reason in
// *why, may be NULL) without a driver or a device. Never fails otherwise.
int CudaDeviceCount(std::string* why);

// The properties of the calling thread's current CUDA device.
Status QueryCudaDevice(CudaDevice* device);

// Runs `plan` (made by PlanCuda for these params) asynchronously on
// `cuda_stream` (a cudaStream_t; nullptr is the legacy default stream).
// params' pointers are device pointers; `workspace` holds
// plan.workspace_bytes bytes of device memory (may be null when that is 0),
// 16-byte aligned. Writes every element of params.filter_backprop (zeros when
// there is nothing to sum). Launch errors come back as kInternal with the
// CUDA error string; errors of the running kernels surface at the next
// synchronisation, as usual in CUDA.
Status RunCuda(const FilterGradParams& params, const CudaPlan& plan,
               void* workspace, void* cuda_stream);

// The forward and the input gradient of `plan` (made by PlanCuda for these
// params) asynchronously on `cuda_stream`; device pointers. Write every
// element of params.output / params.in_backprop (a memset of zeros when there
// is nothing to sum). Bitwise identical from run to run, on any GPU. Errors
// as for the filter gradient.
Status RunCuda(const ForwardParams& params, const CudaConvPlan& plan,
               void* cuda_stream);
Status RunCuda(const InputGradParams& params, const CudaConvPlan& plan,
               void* cuda_stream);

// Stream-ordered device memory (cudaMallocAsync / cudaFreeAsync), for callers
// that do not own an allocator (the C ABI).
Status CudaAllocAsync(int64_t bytes, void* cuda_stream, void** ptr);
Status CudaFreeAsync(void* ptr, void* cuda_stream);

// Runs the CUDA kernels' code on the host, block after block and thread after
// thread (cuda_emulator.cc): the same plan, the same per-thread arithmetic
// (fused multiply-adds, float32 accumulation) and the same reduction order,
// on host buffers. The result is meant to equal RunCuda's bit for bit; it
// lets tests check the kernels' indexing, bounds and reductions on machines
// without a GPU. Slow: for small problems only.
Status EmulateCuda(const FilterGradParams& params, const CudaPlan& plan);

// The forward and input-gradient kernels run on the host likewise (host
// buffers; same bits as RunCuda).
Status EmulateCuda(const ForwardParams& params, const CudaConvPlan& plan);
Status EmulateCuda(const InputGradParams& params, const CudaConvPlan& plan);

}  // namespace dwop

#endif  // DWOP_CC_KERNELS_CUDA_CUDA_H_
