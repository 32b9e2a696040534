// Runs the CUDA kernels' bodies (cuda_kernels.h) on the host: every block of
// the grid in turn, every thread of a block in turn within each Step. Shared
// memory, per-thread state and the workspace start filled with NaN bytes, so
// a read of something no thread wrote shows up in the result.
#include <cstring>
#include <vector>

#include "cc/kernels/common/geometry.h"
#include "cc/kernels/cuda/conv_kernels.h"
#include "cc/kernels/cuda/cuda.h"
#include "cc/kernels/cuda/filter_grad_kernels.h"

namespace dwop {
namespace {

class Emulator {
 public:
  Emulator(const CudaPlan& plan, const gpu::KernelArgs& args)
      : plan_(plan), args_(args) {}

  template <typename T, int KHT, int KWT, int V>
  Status Nhwc() {
    return Blocks<gpu::RegisterState<gpu::Acc<T>, KHT, KWT, V>>(
        [&](int b, gpu::HostBlock& ex, auto* states, unsigned char* smem) {
          gpu::RegisterNhwcBlock<T, KHT, KWT, V>(args_, b, ex, states, smem);
        });
  }

  template <typename T, int KHT, int KWT>
  Status Nchw() {
    return Blocks<gpu::RegisterState<gpu::Acc<T>, KHT, KWT, 1>>(
        [&](int b, gpu::HostBlock& ex, auto* states, unsigned char* smem) {
          gpu::RegisterNchwBlock<T, KHT, KWT>(args_, b, ex, states, smem);
        });
  }

  template <typename T, bool kNchw>
  Status Tiled() {
    return Blocks<gpu::TiledState<gpu::Acc<T>>>(
        [&](int b, gpu::HostBlock& ex, auto* states, unsigned char* smem) {
          gpu::TiledBlock<T, kNchw>(args_, b, ex, states, smem);
        });
  }

  template <typename T>
  Status Finalize() {
    for (int64_t e = 0; e < args_.filter_elements; ++e) {
      gpu::FinalizeElement<T>(args_, e);
    }
    return Status::Ok();
  }

 private:
  template <class State, class F>
  Status Blocks(F&& run_block) {
    std::vector<State> states(plan_.threads);
    std::vector<double> smem((plan_.smem_bytes + 7) / 8);
    gpu::HostBlock ex(plan_.threads);
    for (int64_t b = 0; b < plan_.blocks; ++b) {
      std::memset(static_cast<void*>(states.data()), 0xFF,
                  states.size() * sizeof(State));
      std::memset(smem.data(), 0xFF, smem.size() * sizeof(double));
      run_block(static_cast<int>(b), ex, states.data(),
                reinterpret_cast<unsigned char*>(smem.data()));
    }
    return Status::Ok();
  }

  const CudaPlan& plan_;
  const gpu::KernelArgs& args_;
};

// The conv kernels: every block, every thread of it, in order; threads past
// the last item do nothing, as on the device.
class ConvEmulator {
 public:
  ConvEmulator(const CudaConvPlan& plan, const gpu::ConvArgs& args)
      : plan_(plan), args_(args) {}

  template <typename T, bool kNchw>
  Status Forward() {
    return Items(
        [&](int64_t item) { gpu::ForwardItem<T, kNchw>(args_, item); });
  }

  template <typename T, bool kNchw>
  Status InputGrad() {
    return Items(
        [&](int64_t item) { gpu::InputGradItem<T, kNchw>(args_, item); });
  }

 private:
  template <class F>
  Status Items(F&& run_item) {
    for (int64_t b = 0; b < plan_.blocks; ++b) {
      for (int64_t t = 0; t < plan_.threads; ++t) {
        const int64_t item = b * plan_.threads + t;
        if (item < args_.items) run_item(item);
      }
    }
    return Status::Ok();
  }

  const CudaConvPlan& plan_;
  const gpu::ConvArgs& args_;
};

template <typename Params>
Status EmulateConv(const Params& params, const CudaConvPlan& plan) {
  // The planner's kNothing and kZero.
  if (WriteZerosIfNothingToSum(params)) return Status::Ok();
  if (plan.kernel == CudaConvKernel::kNothing ||
      plan.kernel == CudaConvKernel::kZero) {
    return Status::Internal(
        "a conv plan without kernels for a problem with "
        "something to sum");
  }
  const gpu::ConvArgs args = gpu::MakeConvArgs(params, plan);
  ConvEmulator emulator(plan, args);
  switch (params.dtype) {
    case DType::kHalf:
      return gpu::VisitConvType<half_t>(plan, emulator);
    case DType::kBfloat16:
      return gpu::VisitConvType<bfloat16_t>(plan, emulator);
    case DType::kFloat:
      return gpu::VisitConvType<float>(plan, emulator);
    case DType::kDouble:
      return gpu::VisitConvType<double>(plan, emulator);
  }
  return Status::InvalidArgument("unknown dtype");
}

}  // namespace

Status EmulateCuda(const ForwardParams& params, const CudaConvPlan& plan) {
  return EmulateConv(params, plan);
}

Status EmulateCuda(const InputGradParams& params, const CudaConvPlan& plan) {
  return EmulateConv(params, plan);
}

Status EmulateCuda(const FilterGradParams& params, const CudaPlan& plan) {
  // The planner's kNothing and kZero.
  if (WriteZerosIfNothingToSum(params)) return Status::Ok();
  // NaN bytes everywhere: a partial sum no block wrote would show.
  std::vector<double> workspace((plan.workspace_bytes + 7) / 8);
  if (!workspace.empty()) {
    std::memset(workspace.data(), 0xFF, workspace.size() * sizeof(double));
  }
  const gpu::KernelArgs args =
      gpu::MakeKernelArgs(params, plan, workspace.data());
  Emulator emulator(plan, args);
  return gpu::VisitPlan(plan, params.dtype, params.geo.layout, emulator);
}

}  // namespace dwop
